"""Media tracks at the WebRTC edge: the paced reply-audio track and the microphone reader.

The reply track paces itself against an absolute clock (start + samples/rate − now, as aiortc's own
AudioStreamTrack does), plays silence when idle and does no inference in `recv()`: it only pulls 20 ms from
the `Playout` and hands the expression frames released with that audio to `on_pull` for sending.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Awaitable, Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ..audio import float_to_int16
from ..pipeline.playout import Playout, PullResult

log = logging.getLogger(__name__)

OUTPUT_RATE = 48000
PTIME_S = 0.020
_SAMPLES_PER_PACKET = int(OUTPUT_RATE * PTIME_S)
_TIME_BASE = fractions.Fraction(1, OUTPUT_RATE)


class ReplyAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, playout: Playout, on_pull: Callable[[PullResult], None]) -> None:
        super().__init__()
        self._playout = playout
        self._on_pull = on_pull
        self._start: float | None = None
        self._timestamp = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += _SAMPLES_PER_PACKET
            wait = self._start + self._timestamp / OUTPUT_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        pulled = self._playout.pull(_SAMPLES_PER_PACKET)
        try:
            self._on_pull(pulled)
        except Exception:  # a failing consumer must not stop the audio clock
            log.exception("reply track consumer failed")
        frame = av.AudioFrame.from_ndarray(float_to_int16(pulled.samples)[None, :], format="s16", layout="mono")
        frame.sample_rate = OUTPUT_RATE
        frame.pts = self._timestamp
        frame.time_base = _TIME_BASE
        return frame


async def read_microphone(
    track: MediaStreamTrack, on_audio: Callable[[np.ndarray], Awaitable[None] | None], rate: int = 16000
) -> None:
    """Receive the browser's microphone, resample to mono `rate` float32 and hand each piece to `on_audio`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for converted in resampler.resample(frame):
            pcm = converted.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            maybe = on_audio(pcm)
            if maybe is not None:
                await maybe
