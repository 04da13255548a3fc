"""End-of-turn detection from VAD probabilities: a pure state machine, fed one 32 ms chunk at a time.

It emits the events the session reacts to:
- `SpeechStarted` once `min_speech_ms` of speech is seen (this is also what interrupts a speaking avatar);
- `SpeechPaused` at the first `pause_ms` of silence, carrying the utterance so far, so transcription (and the
  whole reply) can start speculatively while we still wait to know whether the user is done;
- `SpeechResumed` if the user goes on after such a pause (the speculative work is discarded);
- `SpeechEnded` after `hangover_ms` of silence (or `max_utterance_s`): the turn is the user's no longer;
  or already after `complete_end_ms` once the session calls `end_early()` because the speculative transcript
  is a complete sentence (the transcript, not only the silence, says the user is done).
The utterance audio includes `preroll_ms` before the onset, because VAD fires after the first phoneme began.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..config import VADConfig

CHUNK_MS = 32  # 512 samples at 16 kHz


@dataclass(frozen=True)
class SpeechStarted:
    at_s: float  # stream time of the first speech chunk


@dataclass(frozen=True)
class SpeechPaused:
    utterance: np.ndarray
    speech_end_s: float  # stream time where the last speech chunk ended


@dataclass(frozen=True)
class SpeechResumed:
    at_s: float


@dataclass(frozen=True)
class SpeechEnded:
    utterance: np.ndarray
    speech_end_s: float
    speculated: bool  # True if a SpeechPaused for exactly this audio was emitted (no resume since)


TurnEvent = SpeechStarted | SpeechPaused | SpeechResumed | SpeechEnded


class TurnDetector:
    """Feed `(chunk, probability)` pairs in stream order; get the turn events each chunk causes."""

    def __init__(self, config: VADConfig) -> None:
        self._config = config
        # Holds the onset chunks themselves plus `preroll_ms` before them.
        onset_chunks = -(-config.min_speech_ms // CHUNK_MS)
        self._preroll: deque[np.ndarray] = deque(maxlen=onset_chunks + config.preroll_ms // CHUNK_MS)
        self._utterance: list[np.ndarray] = []
        self._speaking = False  # inside an utterance (speech started, not yet ended)
        self._onset_chunks = 0  # consecutive speech chunks before an utterance is confirmed
        self._silent_chunks = 0  # consecutive silent chunks inside an utterance
        self._speech_chunks_total = 0
        self._paused = False
        self._early_end = False
        self._chunks_seen = 0

    @property
    def in_speech(self) -> bool:
        return self._speaking

    @property
    def now_s(self) -> float:
        """Stream time: how much audio has been fed, in seconds."""
        return self._chunks_seen * CHUNK_MS / 1000.0

    def push(self, chunk: np.ndarray, probability: float) -> list[TurnEvent]:
        self._chunks_seen += 1
        cfg = self._config
        if not self._speaking:
            return self._push_idle(chunk, probability)

        self._utterance.append(chunk)
        events: list[TurnEvent] = []
        is_speech = probability >= (cfg.release_threshold if self._silent_chunks == 0 else cfg.threshold)
        if is_speech:
            self._speech_chunks_total += 1
            if self._paused:
                events.append(SpeechResumed(at_s=self.now_s))
                self._paused = False
                self._early_end = False
            self._silent_chunks = 0
        else:
            self._silent_chunks += 1
        silence_ms = self._silent_chunks * CHUNK_MS
        too_long = len(self._utterance) * CHUNK_MS >= cfg.max_utterance_s * 1000
        end_after_ms = cfg.complete_end_ms if self._early_end else cfg.hangover_ms
        if silence_ms >= end_after_ms or too_long:
            events.append(self._end())
        elif silence_ms >= cfg.pause_ms and not self._paused:
            self._paused = True
            events.append(SpeechPaused(utterance=self._speech_audio(), speech_end_s=self._speech_end_s()))
        return events

    def end_early(self) -> None:
        """The current pause follows a complete sentence: end the turn after `complete_end_ms` of silence."""
        if self._speaking and self._paused:
            self._early_end = True

    def _push_idle(self, chunk: np.ndarray, probability: float) -> list[TurnEvent]:
        cfg = self._config
        self._preroll.append(chunk)
        if probability < cfg.threshold:
            self._onset_chunks = 0
            return []
        self._onset_chunks += 1
        if self._onset_chunks * CHUNK_MS < cfg.min_speech_ms:
            return []
        self._speaking = True
        self._utterance = list(self._preroll)
        self._preroll.clear()
        self._silent_chunks = 0
        self._speech_chunks_total = self._onset_chunks
        self._paused = False
        onset_s = self.now_s - self._onset_chunks * CHUNK_MS / 1000.0
        self._onset_chunks = 0
        return [SpeechStarted(at_s=onset_s)]

    def _speech_end_s(self) -> float:
        return self.now_s - self._silent_chunks * CHUNK_MS / 1000.0

    def _speech_audio(self) -> np.ndarray:
        # Keep a little of the trailing silence (ASR likes a clean ending) but not the whole hangover.
        keep_silent = min(self._silent_chunks, 3)
        end = len(self._utterance) - self._silent_chunks + keep_silent
        return np.concatenate(self._utterance[:end]) if end > 0 else np.zeros(0, dtype=np.float32)

    def _end(self) -> SpeechEnded:
        event = SpeechEnded(utterance=self._speech_audio(), speech_end_s=self._speech_end_s(), speculated=self._paused)
        self._speaking = False
        self._utterance = []
        self._silent_chunks = 0
        self._paused = False
        self._early_end = False
        return event


_SENTENCE_END = (".", "?", "!", "。", "？", "！")


def looks_complete(transcript: str) -> bool:
    """Whether ASR punctuated the utterance as a finished sentence (a trailing "..." means it trailed off)."""
    text = transcript.strip().rstrip("\"')")
    return len(text.split()) >= 2 and text.endswith(_SENTENCE_END) and not text.endswith(("...", "…"))
