"""Per-turn streaming state of the LAM engine (implements `ExpressionStream`).

The turn's audio (any rate, resampled to 16 kHz) is cut on a fixed grid of slices of `slice_frames` frames
(≤ 200 ms). For every complete slice the network sees one window of `window_samples` (published: 64 frames,
34133 samples) ending where the slice ends — the slice plus the audio before it, zeros before the turn's
start — and the last frames of its output are the slice's frames. Because the grid is fixed, how the audio
was chunked on its way here changes nothing: the same windows are computed either way.

Frame k covers 16 kHz samples [k*16000//30, (k+1)*16000//30), i.e. audio [k/30, (k+1)/30) of the turn.
Inference happens in the engine's process-wide batcher; this object only keeps the session's state.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from avatar_runtime.audio import TurnResampler
from avatar_runtime.engines.base import SpeechChunk
from avatar_runtime.engines.lam.postprocess import PostState, frame_rms, postprocess
from avatar_runtime.protocol import EXPRESSION_FPS

RATE = 16_000


@dataclass(frozen=True)
class WindowRequest:
    """One network call: a window of 16 kHz audio and how many frames at its end are wanted."""

    audio: np.ndarray  # float32 (window_samples,)
    take: int  # frames wanted from the end of the window's output
    identity: int


# The batcher's submit: returns the window's last take + 1 frames (the frame before the slice, then the slice).
Submit = Callable[[WindowRequest], Awaitable[np.ndarray]]


def frame_start(k: int | np.ndarray) -> int | np.ndarray:
    """First 16 kHz sample of frame k."""
    return k * RATE // EXPRESSION_FPS


class LAMExpressionStream:
    """Audio in, post-processed ARKit-52 frames out, one slice at a time."""

    def __init__(self, submit: Submit, *, slice_frames: int, window_samples: int, identity: int, seed: int) -> None:
        if window_samples < frame_start(slice_frames + 1):
            raise ValueError("the window must hold the slice and the frame before it")
        self._submit, self._slice, self._window_samples, self._identity = submit, slice_frames, window_samples, identity
        self._input = TurnResampler()
        self._pcm = np.zeros(0, np.float32)  # 16 kHz audio still needed (current window's context onward)
        self._pcm_start = 0  # absolute 16 kHz index of _pcm[0]
        self._frame = 0  # next frame to emit
        self._post = PostState.start(seed)
        self._done = False

    async def push(self, chunk: SpeechChunk) -> list[np.ndarray]:
        """Add reply audio; returns the frames of every slice completed so far."""
        self._add(chunk)
        end = self._pcm_start + len(self._pcm)
        slices = []
        f0 = self._frame
        while frame_start(f0 + self._slice) <= end:
            slices.append((f0, f0 + self._slice))
            f0 += self._slice
        return await self._emit(slices)

    async def flush(self) -> list[np.ndarray]:
        """End of the turn: the rest, audio zero-padded to whole frames; ceil(duration * 30) frames in all."""
        if self._done:
            return []
        self._append(self._input.finish())
        total = math.ceil(self._input.duration * EXPRESSION_FPS)
        missing = frame_start(total) - (self._pcm_start + len(self._pcm))
        if missing > 0:
            self._append(np.zeros(missing, np.float32))
        spans = [(f, min(f + self._slice, total)) for f in range(self._frame, total, self._slice)]
        frames = await self._emit(spans)
        self._done = True
        return frames

    # -- internals ---------------------------------------------------------------------------------
    def _add(self, chunk: SpeechChunk) -> None:
        if self._done:
            raise RuntimeError("push after flush: a stream serves one turn")
        self._append(self._input.push(chunk.samples, chunk.sample_rate))

    def _append(self, pcm: np.ndarray) -> None:
        self._pcm = np.concatenate([self._pcm, pcm.astype(np.float32, copy=False)]) if len(self._pcm) else pcm

    def _window(self, f_end: int) -> np.ndarray:
        """The `window_samples` of audio ending where frame f_end starts (zeros before the turn)."""
        end = int(frame_start(f_end))
        start = end - self._window_samples
        lo = max(start, self._pcm_start)
        window = self._pcm[lo - self._pcm_start : end - self._pcm_start]
        if lo > start:
            window = np.concatenate([np.zeros(lo - start, np.float32), window])
        return window

    async def _emit(self, spans: list[tuple[int, int]]) -> list[np.ndarray]:
        if not spans:
            return []
        # All windows of this push go to the batcher at once (they only need audio); post-processing then
        # runs in order, since each slice continues from the state the previous one left.
        requests = [WindowRequest(self._window(f1), f1 - f0, self._identity) for f0, f1 in spans]
        outputs = await asyncio.gather(*(self._submit(r) for r in requests))
        frames: list[np.ndarray] = []
        for (f0, f1), out in zip(spans, outputs, strict=True):
            bounds = np.asarray(frame_start(np.arange(f0, f1 + 1))) - self._pcm_start
            volume = frame_rms(self._pcm, bounds)
            processed, self._post = postprocess(out[1:], out[0], volume, self._post)
            frames.extend(processed)
            self._frame = f1
        # Keep only what a later window can reach back to (the earliest ends one frame on, at flush).
        drop = max(0, int(frame_start(self._frame + 1)) - self._window_samples - self._pcm_start)
        self._pcm, self._pcm_start = self._pcm[drop:], self._pcm_start + drop
        return frames
