"""`--tts-realtime`: hand TTS audio on at the pace a streaming TTS service delivers it, for both modes alike.

Piper synthesises a whole sentence ~10x faster than real time and yields it in one piece, so buffering 0.5 s or
1 s of its output costs nothing. Cloud voices (CosyVoice on DashScope, which OpenAvatarChat's LAM config uses,
or Edge) stream their audio at about real time after the first packet. This wrapper keeps the real engine's
audio and first-audio latency, and releases the rest in 100 ms pieces no faster than real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

PIECE_S = 0.1


class RealTimeTTS:
    def __init__(self, inner) -> None:
        self._inner = inner
        self.name = f"{inner.name} (real-time streaming)"

    async def synthesize(self, text: str) -> AsyncIterator:
        started: float | None = None
        sent_s = 0.0
        stream = self._inner.synthesize(text)
        try:
            async for chunk in stream:
                if started is None:
                    started = time.perf_counter()
                for piece in chunk.split(PIECE_S):
                    wait = started + sent_s - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    yield piece
                    sent_s += piece.duration_s
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
