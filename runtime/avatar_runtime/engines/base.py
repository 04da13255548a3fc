"""Interfaces every engine implements (one module per engine, behind these protocols).

Engines are loaded once per process and shared by all sessions; anything per-conversation lives in the
objects they hand out (`ExpressionEngine.stream()`, VAD state) or in the session. CPU-heavy calls are made
off the event loop by the engine itself (`asyncio.to_thread`), so callers can simply `await` them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


class EngineUnavailable(RuntimeError):
    """An engine cannot be built here (missing package, missing weights, no network); the message says which."""


@dataclass(frozen=True)
class PhonemeMark:
    """A phoneme the TTS engine spoke, `start_ms` from the start of the chunk it belongs to."""

    start_ms: float
    phoneme: str


@dataclass
class SpeechChunk:
    """A piece of synthesised speech: mono float32 in -1..1 at `sample_rate`, plus optional phoneme timing."""

    samples: np.ndarray
    sample_rate: int
    text: str = ""
    phonemes: list[PhonemeMark] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@runtime_checkable
class ASREngine(Protocol):
    name: str

    async def transcribe(self, samples_16k: np.ndarray) -> str:
        """Transcribe one utterance (mono float32, 16 kHz); returns the text, '' for nothing recognised."""
        ...


@runtime_checkable
class LLMEngine(Protocol):
    name: str
    embedded: bool  # True for the offline stand-in, so the UI and the log can say so

    def stream(self, messages: Sequence[dict[str, str]]) -> AsyncIterator[str]:
        """Stream the reply to an OpenAI-style message list as text deltas."""
        ...


@runtime_checkable
class TTSEngine(Protocol):
    name: str

    def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text` (one sentence or clause), yielding audio as soon as each piece is ready."""
        ...


@runtime_checkable
class ExpressionStream(Protocol):
    """Per-turn Audio2Expression state: audio in, ARKit-52 frames out at a fixed frame rate."""

    def push(self, chunk: SpeechChunk) -> list[np.ndarray]:
        """Add reply audio; returns the frames (float32, shape (52,)) for every whole frame period covered so far."""
        ...

    def flush(self) -> list[np.ndarray]:
        """End of the reply: frames for the remaining partial period (audio is padded to a whole period)."""
        ...


@runtime_checkable
class ExpressionEngine(Protocol):
    name: str
    fps: int

    def stream(self) -> ExpressionStream:
        """A fresh per-turn stream; frame k covers audio [k/fps, (k+1)/fps) of the turn's reply."""
        ...
