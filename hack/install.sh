#!/usr/bin/env bash
# Installs everything the product needs on a fresh Debian 12 machine, idempotently:
#   - Debian packages: espeak-ng (TTS + test speech), sox, nodejs/npm if missing
#   - .venv with avatar-runtime and avatar-operator (editable) and the embedded offline models from PyPI wheels
#   - the web client (npm ci + vite build → web/dist) and the generated default avatar (avatars/default.zip)
# Re-running is cheap: each step checks what is already there. Usage: bash hack/install.sh [--production]
#   --production  also the production engines (torch 2.13.0, transformers, funasr, edge-tts, websockets: ~1.5 GB)
#                 for SenseVoice / LAM Audio2Expression / edge-tts / CosyVoice; weights: `avatar-runtime models pull`
# (hack/install-test.sh adds what only the tests need: Chromium for the browser tests.)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng libespeak-ng1 sox)
PYTHON=${PYTHON:-python3}
EXTRAS=embedded
for arg in "$@"; do
  case "$arg" in
    --production) EXTRAS=embedded,production ;;
    *) echo "usage: bash hack/install.sh [--production]" >&2; exit 2 ;;
  esac
done

source "$(dirname "$0")/lib.sh"

command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)
apt_install "${APT_PACKAGES[@]}"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
say "installing Python packages into .venv: runtime[$EXTRAS] (first run: ~1-2 min; production engines +1 min)"
# torch==2.13.0 (pinned in the production extra and the constraints): an unpinned torch would pull GBs of CUDA.
"${PIP[@]}" install -c hack/constraints.txt -e "runtime[$EXTRAS]" -e operator -r hack/requirements-test.txt
# silero-vad's metadata requires torch; we only use the ONNX file inside the wheel (run by onnxruntime).
"${PIP[@]}" install -c hack/constraints.txt --no-deps silero-vad==6.2.3

say "checking the embedded models"
.venv/bin/python - <<'PY'
from avatar_runtime.engines.asr_whisper import bundled_model_dir
from avatar_runtime.engines.vad_silero import bundled_model_path
print("  VAD:", bundled_model_path())
print("  ASR:", bundled_model_dir(), "(sha256 ok)")
PY
say "building the web client (web/dist)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npx vite build --logLevel warn)

if [ ! -f avatars/default.zip ] || [ hack/make_default_avatar.py -nt avatars/default.zip ]; then
  say "generating the default avatar (avatars/default.zip)"
  .venv/bin/python hack/make_default_avatar.py --out avatars/default.zip
fi
say "installed: .venv/bin/avatar-runtime, web/dist, avatars/default.zip"
