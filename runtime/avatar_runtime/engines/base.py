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

from ..expression.cues import ExpressionCue


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

    def split(self, max_s: float | None) -> list[SpeechChunk]:
        """Consecutive pieces of at most `max_s` seconds (phoneme marks go with their piece, re-timed)."""
        step = len(self.samples) if not max_s else max(1, int(max_s * self.sample_rate))
        if len(self.samples) <= step:
            return [self]
        pieces = []
        for start in range(0, len(self.samples), step):
            start_ms, end_ms = start * 1000 / self.sample_rate, (start + step) * 1000 / self.sample_rate
            marks = [
                PhonemeMark(m.start_ms - start_ms, m.phoneme) for m in self.phonemes if start_ms <= m.start_ms < end_ms
            ]
            pieces.append(SpeechChunk(self.samples[start : start + step], self.sample_rate, self.text, marks))
        return pieces


@dataclass(frozen=True)
class Transcription:
    """What ASR heard in one utterance. Engines that detect more (SenseVoice) fill the optional fields."""

    text: str  # plain text, '' for nothing recognised; never carries engine markup such as <|HAPPY|>
    language: str | None = None  # detected language code (en, zh, ja, ko, yue), if the engine knows
    emotion: str | None = None  # speaker emotion, lower case (happy, sad, angry, neutral, ...), if detected
    events: tuple[str, ...] = ()  # audio events heard besides speech (laughter, applause, cough, ...)


@runtime_checkable
class ASREngine(Protocol):
    name: str

    async def transcribe(self, samples_16k: np.ndarray) -> Transcription:
        """Transcribe one utterance (mono float32, 16 kHz)."""
        ...


@runtime_checkable
class LLMEngine(Protocol):
    name: str
    embedded: bool  # True for the offline stand-in, so the UI and the log can say so

    def stream(self, messages: Sequence[dict]) -> AsyncIterator[str | ExpressionCue]:
        """Stream the reply to an OpenAI-style message list as text deltas, with the expression cues the model
        asked for (tool calls) in their place; inline tags may stay in the text (the reply strips them)."""
        ...


@runtime_checkable
class TTSEngine(Protocol):
    name: str

    def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text` (one sentence or clause), yielding audio as soon as each piece is ready."""
        ...


@runtime_checkable
class ExpressionStream(Protocol):
    """Per-turn Audio2Expression state: audio in, ARKit-52 frames out at a fixed frame rate.

    Async because a neural engine hands the work to a process-wide batching worker; the stream itself only
    keeps the per-session state (audio context, smoothing, blink timer).
    """

    async def push(self, chunk: SpeechChunk) -> list[np.ndarray]:
        """Add reply audio; returns the frames (float32, shape (52,)) the engine can emit so far (whole periods)."""
        ...

    async def flush(self) -> list[np.ndarray]:
        """End of the reply: the remaining frames (audio padded to a whole period), ceil(duration * fps) in all."""
        ...


@runtime_checkable
class ExpressionEngine(Protocol):
    name: str
    fps: int
    # Longest audio a push should carry: the pipeline slices TTS output to this so frames (and the audio they
    # go with) are released every slice, not once per sentence. None = any size.
    max_push_s: float | None

    def stream(self) -> ExpressionStream:
        """A fresh per-turn stream; frame k covers audio [k/fps, (k+1)/fps) of the turn's reply."""
        ...
