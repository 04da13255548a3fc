#!/usr/bin/env bash
# Prepares this checkout for `docker compose up` (docker-compose.yml), idempotently:
#   - .env from .env.example, if there is none;
#   - AVATAR_PUBLIC_HOST in .env, if empty: the argument, else this host's first address (`hostname -I`);
#   - AVATAR_TURN_SECRET in .env, if empty: 32 random bytes, URL-safe base64 (coturn's static-auth-secret);
#   - certs/tls.crt + certs/tls.key, if missing: a self-signed certificate for AVATAR_PUBLIC_HOST (and localhost),
#     readable by the runtime container's user (uid 1000). Put a trusted pair there instead when you have one.
# Never overwrites a value or a file that exists. Needs bash, openssl and coreutils (no Python, no Docker).
# A script on the host rather than an init container: the secret must be in .env before Compose interpolates the
# file (coturn's command line and the runtime's environment both read it), and the certificate is the user's file.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: bash hack/compose-init.sh [PUBLIC_HOST]
  PUBLIC_HOST  DNS name or IP address browsers use to reach this host (default: AVATAR_PUBLIC_HOST from .env,
               else the first address of `hostname -I`)
Creates .env (from .env.example) with a random AVATAR_TURN_SECRET, and a self-signed certs/tls.crt + tls.key.
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) usage >&2; exit 2 ;;
esac
(($# <= 1)) || { usage >&2; exit 2; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
ENV_FILE=.env
CERT_DIR=certs
RUNTIME_UID=1000 # the runtime image's user (Dockerfile.runtime)

# env_get KEY: the value of KEY in .env (empty if absent)
env_get() { sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1; }
# env_set KEY VALUE: set KEY in .env (replacing an empty or existing line, else appending)
env_set() {
  if grep -q "^$1=" "$ENV_FILE"; then
    local tmp
    tmp=$(mktemp "$ENV_FILE.XXXXXX")
    awk -v key="$1" -v value="$2" 'index($0, key "=") == 1 { print key "=" value; next } { print }' "$ENV_FILE" >"$tmp"
    cat "$tmp" >"$ENV_FILE" # keep .env's inode and mode
    rm -f "$tmp"
  else
    printf '%s=%s\n' "$1" "$2" >>"$ENV_FILE"
  fi
}

if [ ! -f "$ENV_FILE" ]; then
  (umask 077 && cp .env.example "$ENV_FILE") # it will hold API keys and the TURN secret
  say "created $ENV_FILE from .env.example (mode 600)"
fi

host=$(env_get AVATAR_PUBLIC_HOST)
if [ -n "${1:-}" ] && [ "$1" != "$host" ]; then
  [ -z "$host" ] || { echo "AVATAR_PUBLIC_HOST is already '$host' in $ENV_FILE: edit it there" >&2; exit 2; }
  host=$1
fi
if [ -z "$host" ]; then
  host=$(hostname -I 2>/dev/null | awk '{print $1}')
  [ -n "$host" ] || { echo "cannot tell this host's address: bash hack/compose-init.sh PUBLIC_HOST" >&2; exit 2; }
fi
[[ $host =~ ^[A-Za-z0-9.:-]+$ ]] || { echo "PUBLIC_HOST '$host' is not a DNS name or an IP address" >&2; exit 2; }
if [ "$(env_get AVATAR_PUBLIC_HOST)" != "$host" ]; then
  env_set AVATAR_PUBLIC_HOST "$host"
  say "AVATAR_PUBLIC_HOST=$host"
fi

if [ -z "$(env_get AVATAR_TURN_SECRET)" ]; then
  # 32 random bytes as URL-safe base64 without padding: 43 characters coturn, Compose and a shell take verbatim.
  secret=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  env_set AVATAR_TURN_SECRET "$secret"
  say "generated AVATAR_TURN_SECRET"
fi

if [ ! -f "$CERT_DIR/tls.crt" ] || [ ! -f "$CERT_DIR/tls.key" ]; then
  mkdir -p "$CERT_DIR"
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san="IP:$host"; else san="DNS:$host"; fi
  say "creating a self-signed certificate for $host in $CERT_DIR/ (browsers ask to accept it once)"
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
      -subj "/CN=$host" -addext "subjectAltName=$san,DNS:localhost,IP:127.0.0.1" \
      -keyout "$CERT_DIR/tls.key" -out "$CERT_DIR/tls.crt" 2>/dev/null
  )
  chmod 644 "$CERT_DIR/tls.crt"
  # The container runs as uid 1000 and must read the key.
  if [ "$(id -u)" -eq 0 ]; then
    chown "$RUNTIME_UID:$RUNTIME_UID" "$CERT_DIR/tls.key"
  elif [ "$(id -u)" -ne "$RUNTIME_UID" ]; then
    chmod 644 "$CERT_DIR/tls.key"
    echo "note: $CERT_DIR/tls.key is readable by everyone on this host so that the container's uid $RUNTIME_UID" \
      "can read it; 'sudo chown $RUNTIME_UID $CERT_DIR/tls.key && chmod 600 $CERT_DIR/tls.key' restricts it" >&2
  fi
fi
port=$(env_get AVATAR_PORT)
say "next: docker compose --profile models run --rm models && docker compose up -d  →  https://$host:${port:-8282}"
