"""One reply of the avatar: ASR → LLM (streaming) → sentences → TTS → Audio2Expression → playout.

A `ReplyHandle` (after livekit's SpeechHandle) owns the reply's tasks. It may start *speculatively*, at the
user's first pause: everything runs, but what it produces (events, audio, frames) is held back until the
session `commit()`s it at the end of the user's turn, or thrown away by `cancel()` if the user goes on.
Interrupting a committed reply is the same `cancel()`: the LLM stream closes, TTS and A2E stop, and the
session clears the playout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..audio import resample, trim_leading_silence, trim_trailing_silence
from ..engines.base import ASREngine, ExpressionEngine, LLMEngine, SpeechChunk, Transcription, TTSEngine
from ..expression.cues import ExpressionCue, InlineCueFilter
from .playout import Playout
from .sentences import SentenceChunker, ends_sentence

log = logging.getLogger(__name__)


@dataclass
class Engines:
    """The process-wide models every session shares."""

    vad: Any
    asr: ASREngine
    llm: LLMEngine
    tts: TTSEngine
    a2e: ExpressionEngine


@dataclass
class ReplyTimings:
    """Stage latencies in seconds (wall clock), filled as the reply runs; names as in the metrics."""

    vad: float | None = None  # end of user speech → end of turn detected
    asr: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    a2e_first_frame: float | None = None


class ReplyFailed(Exception):
    """A stage failed; `code` is the error code sent to the browser."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ReplyHandle:
    turn: int
    utterance: np.ndarray | None = None  # user audio to transcribe, or None for a typed turn
    user_text: str = ""
    heard: Transcription | None = None  # the ASR result (language, emotion, events) for a spoken turn
    timings: ReplyTimings = field(default_factory=ReplyTimings)
    committed: bool = False
    cancelled: bool = False
    produced_text: list[str] = field(default_factory=list)
    transcribed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the worker finished producing (not playing)
    error: ReplyFailed | None = None
    _held: list[Callable[[], None]] = field(default_factory=list)
    _task: asyncio.Task | None = None

    def deliver(self, action: Callable[[], None]) -> None:
        """Run `action` now if committed, else hold it until `commit()` (or drop it on `cancel()`)."""
        if self.cancelled:
            return
        if self.committed:
            action()
        else:
            self._held.append(action)

    def commit(self) -> None:
        self.committed = True
        held, self._held = self._held, []
        for action in held:
            action()

    def cancel(self) -> None:
        self.cancelled = True
        self._held.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()


class ReplyWorker:
    """Produces one reply into the session's playout; callbacks are the session's way to speak to the client."""

    def __init__(
        self,
        engines: Engines,
        playout: Playout,
        messages_for: Callable[[ReplyHandle], list[dict]],
        send_event: Callable[[dict], None],
    ) -> None:
        self._engines = engines
        self._playout = playout
        self._messages_for = messages_for
        self._send_event = send_event

    def start(self, handle: ReplyHandle) -> ReplyHandle:
        handle._task = asyncio.create_task(self._run(handle), name=f"reply-{handle.turn}")
        return handle

    async def _run(self, handle: ReplyHandle) -> None:
        try:
            if handle.utterance is not None:
                started = time.perf_counter()
                heard = await self._engines.asr.transcribe(handle.utterance)
                handle.user_text, handle.heard = heard.text, heard
                handle.timings.asr = time.perf_counter() - started
            handle.transcribed.set()
            if not handle.user_text.strip():
                return
            await self._speak_reply(handle)
        except ReplyFailed as failure:
            handle.error = failure
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken engine must end this reply, not the session
            log.exception("reply %d failed", handle.turn)
            handle.error = ReplyFailed("internal", f"the reply failed: {exc}")
        finally:
            handle.transcribed.set()
            handle.done.set()

    async def _speak_reply(self, handle: ReplyHandle) -> None:
        sentences: asyncio.Queue[str | ExpressionCue | None] = asyncio.Queue()
        llm = asyncio.create_task(self._stream_llm(handle, sentences), name=f"llm-{handle.turn}")
        try:
            await self._synthesize(handle, sentences)
            await llm  # re-raises an LLM failure
        finally:
            if not llm.done():
                llm.cancel()
                await asyncio.gather(llm, return_exceptions=True)

    async def _stream_llm(self, handle: ReplyHandle, sentences: asyncio.Queue[str | ExpressionCue | None]) -> None:
        chunker = SentenceChunker()
        tags = InlineCueFilter()  # inline [mood:happy] tags never reach TTS, the browser or the history
        started = time.perf_counter()
        turn = handle.turn

        def take(items: list[str | ExpressionCue]) -> None:
            for item in items:
                if isinstance(item, ExpressionCue):
                    # Queued ahead of the sentence in progress: it takes effect as that sentence starts playing.
                    sentences.put_nowait(item)
                    continue
                handle.produced_text.append(item)
                handle.deliver(lambda d=item: self._send_event({"type": "reply", "turn": turn, "text": d}))
                for sentence in chunker.push(item):
                    sentences.put_nowait(sentence)

        try:
            stream = self._engines.llm.stream(self._messages_for(handle))
            try:
                async for delta in stream:
                    if handle.timings.llm_first_token is None:
                        handle.timings.llm_first_token = time.perf_counter() - started
                    take([delta] if isinstance(delta, ExpressionCue) else tags.push(delta))
            finally:
                await _aclose(stream)
            take(tags.flush())
            for rejected in tags.rejected:
                log.info("reply %d: tag without effect: %s", turn, rejected)
            for sentence in chunker.flush():
                sentences.put_nowait(sentence)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ReplyFailed("llm_unavailable", str(exc)) from exc
        finally:
            sentences.put_nowait(None)

    async def _synthesize(self, handle: ReplyHandle, sentences: asyncio.Queue[str | ExpressionCue | None]) -> None:
        expression = self._engines.a2e.stream()
        turn, rate = handle.turn, self._playout.sample_rate
        index = 0
        trim_lead = True  # the reply's first audio, or a piece that continues a sentence cut for latency
        while (sentence := await sentences.get()) is not None:
            if isinstance(sentence, ExpressionCue):
                handle.deliver(lambda c=sentence: self._playout.add_cue(turn, c))
                continue
            index += 1
            asked = time.perf_counter()
            # A first piece cut before a phrase opener ends mid-sentence: the voice's end-of-utterance silence
            # would make the seam a full stop, so each chunk's trailing silence is cut to a phrase pause.
            mid_sentence = sentence[-1:].isalnum()
            stream = self._engines.tts.synthesize(sentence)
            try:
                async for chunk in stream:
                    if handle.timings.tts_first_audio is None:
                        handle.timings.tts_first_audio = time.perf_counter() - asked
                    if trim_lead:
                        # TTS voices start with tens of ms of near-silence: at the reply's start it is pure
                        # latency, inside a sentence it would stretch the seam into a long pause.
                        chunk, trim_lead = _trim_leading_silence(chunk), False
                    if mid_sentence:
                        chunk = _trim_trailing_silence(chunk)
                    # Slice so frames (and the audio they go with) leave every few hundred ms, not per sentence.
                    for piece in chunk.split(self._engines.a2e.max_push_s):
                        a2e_started = time.perf_counter()
                        frames = await self._expression(expression.push(piece))
                        if handle.timings.a2e_first_frame is None and frames:
                            handle.timings.a2e_first_frame = time.perf_counter() - a2e_started
                        audio = resample(piece.samples, piece.sample_rate, rate)
                        handle.deliver(lambda a=audio, f=frames, t=sentence, i=index: self._queue(turn, a, f, t, i))
            except (asyncio.CancelledError, ReplyFailed):
                raise
            except Exception as exc:
                raise ReplyFailed("tts_failed", f"speech synthesis failed: {exc}") from exc
            finally:
                await _aclose(stream)
            trim_lead = not ends_sentence(sentence)
        tail = await self._expression(expression.flush())
        handle.deliver(lambda: self._finish(turn, tail))

    @staticmethod
    async def _expression(call: Awaitable[list[np.ndarray]]) -> list[np.ndarray]:
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ReplyFailed("a2e_failed", f"the expression model failed: {exc}") from exc

    def _queue(self, turn: int, audio: np.ndarray, frames: list[np.ndarray], text: str, sentence: int) -> None:
        self._playout.add_audio(turn, audio, text, sentence)
        self._playout.add_frames(turn, frames)

    def _finish(self, turn: int, tail: list[np.ndarray]) -> None:
        self._playout.add_frames(turn, tail)
        self._playout.end_turn(turn)


def _trim_leading_silence(chunk: SpeechChunk) -> SpeechChunk:
    trimmed = trim_leading_silence(chunk.samples, chunk.sample_rate)
    shift_ms = (len(chunk.samples) - len(trimmed)) * 1000 / chunk.sample_rate
    marks = [replace(p, start_ms=p.start_ms - shift_ms) for p in chunk.phonemes]
    return SpeechChunk(trimmed, chunk.sample_rate, chunk.text, [m for m in marks if m.start_ms >= 0])


def _trim_trailing_silence(chunk: SpeechChunk) -> SpeechChunk:
    trimmed = trim_trailing_silence(chunk.samples, chunk.sample_rate)
    end_ms = len(trimmed) * 1000 / chunk.sample_rate
    return SpeechChunk(trimmed, chunk.sample_rate, chunk.text, [m for m in chunk.phonemes if m.start_ms < end_ms])


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
