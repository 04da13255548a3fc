"""Collecting what a TTS engine streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
from avatar_runtime.engines.base import SpeechChunk


async def collect(stream: AsyncIterator[SpeechChunk]) -> list[SpeechChunk]:
    return [chunk async for chunk in stream]


def joined(chunks: list[SpeechChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks])
