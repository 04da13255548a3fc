"""Small PCM helpers shared by the stages: format conversion and resampling."""

from __future__ import annotations

import numpy as np


def int16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM → float32 in -1..1."""
    return pcm.astype(np.float32) / 32768.0


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float32 in -1..1 → int16 PCM, clipped."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono float32 audio by linear interpolation.

    Good enough for speech between 16/22.05/24/48 kHz; each call is independent, so callers resample whole
    chunks (TTS sentences, VAD windows) rather than 20 ms slices to keep boundary error negligible.
    """
    if src_rate == dst_rate or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    n_out = int(round(len(samples) * dst_rate / src_rate))
    src_positions = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    return np.interp(src_positions, np.arange(len(samples)), samples).astype(np.float32)


def rms_dbfs(samples: np.ndarray) -> float:
    """Loudness of float audio in dBFS (-120 for silence)."""
    if len(samples) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-6))


def trim_leading_silence(
    samples: np.ndarray, sample_rate: int, threshold: float = 2e-3, keep_ms: float = 5.0
) -> np.ndarray:
    """Drop near-silent samples before the first sound (keeping `keep_ms`): every ms there is reply latency."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not len(loud):
        return samples
    start = max(0, int(loud[0]) - int(sample_rate * keep_ms / 1000))
    return samples[start:]
