"""Small PCM helpers shared by the stages: format conversion and resampling."""

from __future__ import annotations

from fractions import Fraction

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


def trim_trailing_silence(
    samples: np.ndarray, sample_rate: int, threshold: float = 2e-3, keep_ms: float = 60.0
) -> np.ndarray:
    """Shorten near-silence after the last sound to `keep_ms` (a phrase pause), leaving shorter tails alone."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not len(loud):
        return samples
    end = int(loud[-1]) + 1 + int(sample_rate * keep_ms / 1000)
    return samples[:end]


STREAM_RATE = 16_000  # what the expression engines analyse


class StreamResampler:
    """Streaming linear-interpolation resampler to 16 kHz whose output does not depend on chunk boundaries.

    Output sample j sits at input position j*src/16000; it is produced once the input sample after that
    position has arrived, so a chunk boundary never changes a value (unlike resampling each chunk alone).
    """

    def __init__(self, src_rate: int) -> None:
        self.src = src_rate
        self.buf = np.zeros(0, np.float32)
        self.base = 0  # absolute input index of buf[0]
        self.n_out = 0  # next output index

    def _emit(self, j_end: int) -> np.ndarray:
        # Position j*src/STREAM_RATE in float64 has an exact floor (j*src is exact and the quotient is never within
        # 1e-12 of the next integer), so values never depend on where a chunk ended.
        pos = np.arange(self.n_out, j_end, dtype=np.float64) * float(self.src) / STREAM_RATE
        whole = pos.astype(np.int64)
        frac = (pos - whole).astype(np.float32)
        idx = whole - self.base
        nxt = np.minimum(idx + 1, len(self.buf) - 1)  # past the end (only in finish): hold the last sample
        out = self.buf[idx] + frac * (self.buf[nxt] - self.buf[idx])
        self.n_out = max(self.n_out, j_end)
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        if self.src == STREAM_RATE:  # already 16 kHz: pass through (a copy: the caller may reuse its buffer)
            return x.copy()
        self.buf = np.concatenate([self.buf, x])
        avail = self.base + len(self.buf)
        if avail == 0:
            return self.buf[:0]
        out = self._emit((avail - 1) * STREAM_RATE // self.src + 1)  # every j with position <= avail-1
        keep = min(self.n_out * self.src // STREAM_RATE, avail - 1)  # first input sample the next output needs
        self.buf, self.base = self.buf[keep - self.base :], keep
        return out

    def finish(self) -> np.ndarray:
        """Outputs for the remaining positions < input length (the last input sample is held)."""
        avail = self.base + len(self.buf)
        return self._emit(-(-avail * STREAM_RATE // self.src)) if len(self.buf) else self.buf[:0]


class TurnResampler:
    """A turn's reply audio, from chunks at any rate (even changing mid-turn), as one 16 kHz stream.

    Keeps the exact input duration (a Fraction of seconds), which decides how many expression frames the turn
    gets, independent of resampling rounding. Non-finite samples become 0 (one NaN would poison every frame or
    model window it falls into).
    """

    def __init__(self) -> None:
        self._resampler: StreamResampler | None = None
        self._samples_per_rate: dict[int, int] = {}

    @property
    def duration(self) -> Fraction:
        return sum((Fraction(n, rate) for rate, n in self._samples_per_rate.items()), Fraction(0))

    def push(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Add input audio; returns the 16 kHz samples it completes (a rate change first finishes the old rate)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.isfinite(samples).all():
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        done = self.finish() if self._resampler is not None and self._resampler.src != rate else None
        if self._resampler is None:
            self._resampler = StreamResampler(rate)
        self._samples_per_rate[rate] = self._samples_per_rate.get(rate, 0) + len(samples)
        out = self._resampler.push(samples)
        return np.concatenate([done, out]) if done is not None and len(done) else out

    def finish(self) -> np.ndarray:
        """The 16 kHz samples still held back (the end of the input)."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        rest, self._resampler = self._resampler.finish(), None
        return rest
