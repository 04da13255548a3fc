#!/usr/bin/env bash
# Installs everything the runtime and its tests need on a fresh Debian 12 machine, idempotently:
#   - Debian packages: espeak-ng (TTS + test speech), sox
#   - .venv with avatar-runtime (editable) and the embedded offline models that ship inside PyPI wheels
# Re-running is cheap: each step checks what is already there. Usage: bash hack/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng libespeak-ng1 sox)
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
say "installing Python packages into .venv (first run: ~1-2 min, ~600 MB)"
"${PIP[@]}" install -c hack/constraints.txt -e "runtime[embedded]" -r hack/requirements-test.txt
# silero-vad's metadata requires torch; we only use the ONNX file inside the wheel (run by onnxruntime).
"${PIP[@]}" install -c hack/constraints.txt --no-deps silero-vad==6.2.3

say "checking the embedded models"
.venv/bin/python - <<'PY'
from avatar_runtime.engines.asr_whisper import bundled_model_dir
from avatar_runtime.engines.vad_silero import bundled_model_path
print("  VAD:", bundled_model_path())
print("  ASR:", bundled_model_dir(), "(sha256 ok)")
PY
say "installed: .venv/bin/avatar-runtime"
