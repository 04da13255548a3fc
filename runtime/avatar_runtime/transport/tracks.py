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


class PacketClock:
    """When each 20 ms audio packet is due: start + samples/rate − now, so sleeps never accumulate drift."""

    def __init__(self, rate: int = OUTPUT_RATE, samples_per_packet: int = _SAMPLES_PER_PACKET) -> None:
        self.rate = rate
        self.samples_per_packet = samples_per_packet
        self._start: float | None = None
        self._timestamp = 0

    async def next_packet(self) -> int:
        """Sleep until the next packet is due; returns its pts in samples (0 for the first)."""
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += self.samples_per_packet
            wait = self._start + self._timestamp / self.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._timestamp


def audio_frame(samples: np.ndarray, pts: int, rate: int = OUTPUT_RATE) -> av.AudioFrame:
    """Mono float32 samples → an s16 AudioFrame stamped with `pts` in 1/rate units."""
    frame = av.AudioFrame.from_ndarray(float_to_int16(samples)[None, :], format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, rate)
    return frame


class ReplyAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, playout: Playout, on_pull: Callable[[PullResult], None]) -> None:
        super().__init__()
        self._playout = playout
        self._on_pull = on_pull
        self._clock = PacketClock()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._clock.next_packet()
        pulled = self._playout.pull(_SAMPLES_PER_PACKET)
        try:
            self._on_pull(pulled)
        except Exception:  # a failing consumer must not stop the audio clock
            log.exception("reply track consumer failed")
        return audio_frame(pulled.samples, pts)


async def receive_audio(
    track: MediaStreamTrack, on_audio: Callable[[np.ndarray], Awaitable[None] | None], rate: int = 16000
) -> None:
    """Receive an audio track (the browser's microphone), resample to mono float32 at `rate`, pass each piece on."""
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
