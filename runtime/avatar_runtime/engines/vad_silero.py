"""Silero VAD through onnxruntime, using the ONNX file the `silero-vad` wheel ships (no torch needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .base import EngineUnavailable

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 512  # the model only accepts 32 ms windows at 16 kHz
_CONTEXT_SAMPLES = 64  # each window is fed with the tail of the previous one, as silero's own wrapper does


def bundled_model_path() -> Path:
    """Locate silero_vad.onnx inside the installed wheel without importing the package (which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable("the silero-vad package is not installed (hack/install.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise EngineUnavailable(f"silero-vad is installed but {path} is missing")
    return path


class SileroVAD:
    """The shared model; `stream()` gives each session its own recurrent state."""

    name = "silero"

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread per call: calls are tiny (~0.2 ms) and many sessions share the cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or bundled_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def stream(self) -> SileroVADStream:
        return SileroVADStream(self._session)


class SileroVADStream:
    """Per-session VAD state: feed 512-sample float32 chunks at 16 kHz, get speech probabilities."""

    def __init__(self, session) -> None:
        self._session = session
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)

    def probability(self, chunk: np.ndarray) -> float:
        if chunk.shape != (CHUNK_SAMPLES,):
            raise ValueError(f"silero VAD needs {CHUNK_SAMPLES} samples at 16 kHz, got {chunk.shape}")
        window = np.concatenate([self._context, chunk.astype(np.float32, copy=False)])[None, :]
        out, self._state = self._session.run(
            None, {"input": window, "state": self._state, "sr": np.array(SAMPLE_RATE, dtype=np.int64)}
        )
        self._context = window[0, -_CONTEXT_SAMPLES:]
        return float(out[0, 0])
