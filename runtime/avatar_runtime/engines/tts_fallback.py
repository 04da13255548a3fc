"""Online voices fail; the avatar must keep talking: a primary TTS with an embedded fallback.

`FallbackTTS` speaks through the primary (Edge, CosyVoice) and, when it raises `TTSUnavailable` (no network,
DNS failure, refused or stalled connection, HTTP/WebSocket error, a failed synthesis task), logs one warning
naming the cause and speaks the sentence with the fallback (Piper, eSpeak) instead. The primary is left
alone for `retry_after_s`, so an outage costs one failed attempt per interval rather than one per sentence,
and is then tried again with the next sentence.

Mid-sentence failures: when the primary has already delivered part of a sentence, repeating the whole
sentence would make the avatar say the start twice, and dropping the rest would lose words. Instead the
fallback speaks only the part not yet heard, estimated from how much audio the primary delivered and typical
speaking rates (`unspoken_rest`). The estimate errs towards skipping a partly spoken word rather than
repeating it. Online voices stream faster than real time, so in practice such a cut is rare (the server
must die inside a sentence) and most failures happen before any audio, where the whole sentence is spoken.

This module also holds what the online engines share: the `TTSUnavailable` error the wrapper understands,
and `deadline_stream`, which turns a silent network stall into that error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import TypeVar

from .base import EngineUnavailable, SpeechChunk, TTSEngine

log = logging.getLogger(__name__)

T = TypeVar("T")


class TTSUnavailable(EngineUnavailable):
    """An online voice cannot speak right now; the message names the engine and the cause (never a secret)."""


def describe(exc: BaseException) -> str:
    """`ExceptionType: message` (some network errors have an empty message, the type then says it all)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def deadline_stream(
    source: AsyncIterator[T],
    *,
    what: str,
    first_timeout_s: float,
    stall_timeout_s: float,
    errors: tuple[type[BaseException], ...] = (),
) -> AsyncIterator[T]:
    """Re-yield `source`, raising `TTSUnavailable` when it is too slow or fails.

    The first item must come within `first_timeout_s` of the first request (this covers DNS, connecting and
    the server's time to first audio), every later one within `stall_timeout_s` of asking for it. Time the
    consumer spends between items does not count. Exceptions of the types in `errors` (the transport's
    network errors) become `TTSUnavailable` naming `what`; others propagate unchanged. `source` is closed
    when this generator ends, also on early exit (barge-in).
    """
    first, timeout_s = True, first_timeout_s
    async with aclosing(source) as items:  # type: ignore[type-var]  # every source here is an async generator
        while True:
            deadline = asyncio.timeout(timeout_s)
            try:
                async with deadline:
                    item = await anext(items)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                if deadline.expired():
                    waited = "the first audio" if first else "more audio"
                    raise TTSUnavailable(f"{what}: no answer within {timeout_s:g} s waiting for {waited}") from exc
                raise TTSUnavailable(f"{what}: {describe(exc)}") from exc
            except errors as exc:
                raise TTSUnavailable(f"{what}: {describe(exc)}") from exc
            yield item
            first, timeout_s = False, stall_timeout_s


# Typical speaking rates of neural voices at their default speed, for `unspoken_rest`: Chinese/Japanese
# voices speak about 4-5 characters a second, English ones about 15 characters (~170 words a minute), and
# punctuation costs a short pause.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_PUNCTUATION = ",.;:!?，。；：！？、"
CJK_CHARS_PER_S = 4.5
OTHER_CHARS_PER_S = 15.0
PAUSE_S = 0.15


def _char_seconds(char: str) -> float:
    if char in _PUNCTUATION:
        return PAUSE_S
    return 1.0 / CJK_CHARS_PER_S if _CJK.match(char) else 1.0 / OTHER_CHARS_PER_S


def _inside_word(text: str, i: int) -> bool:
    """True when position `i` continues a word that started before it."""
    return 0 < i < len(text) and text[i].isalnum() and text[i - 1].isalnum() and not _CJK.match(text[i])


def unspoken_rest(text: str, spoken_s: float) -> str:
    """The part of `text` a voice has probably not said yet after `spoken_s` seconds of its audio.

    Walks the text at typical speaking rates until `spoken_s` is used up, then moves on to the next word
    boundary (a partly spoken word is skipped, not repeated; CJK characters are words of their own).
    Returns "" when nothing speakable is left.
    """
    if spoken_s <= 0:
        return text.strip()
    elapsed, cut = 0.0, len(text)
    for i, char in enumerate(text):
        if elapsed >= spoken_s:
            cut = i
            break
        elapsed += _char_seconds(char)
    # Finish the word the estimate landed in (CJK characters are words of their own, so no need there).
    while _inside_word(text, cut):
        cut += 1
    rest = text[cut:].lstrip(" " + _PUNCTUATION)
    return rest.strip() if any(c.isalnum() for c in rest) else ""


class FallbackTTS:
    """`TTSEngine` that speaks with `primary` and, when it is unavailable, with `fallback` (see module doc).

    retry_after_s: after a failure, sentences go straight to the fallback for this long, then the primary is
    tried again. Only `EngineUnavailable` errors (which include `TTSUnavailable`) trigger the fallback; any
    other error is a bug and propagates. clock: the time source for the retry interval (monotonic seconds).
    """

    def __init__(
        self,
        primary: TTSEngine,
        fallback: TTSEngine,
        retry_after_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_after_s = float(retry_after_s)
        self.name = f"{primary.name}+{fallback.name}"
        self._clock = clock
        self._retry_at: float | None = None  # set while the primary is considered down
        self.failures = 0  # primary failures so far (a retry that fails again counts too)

    @property
    def primary_down(self) -> bool:
        """True while sentences go to the fallback without trying the primary."""
        return self._retry_at is not None and self._clock() < self._retry_at

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text` with the primary, or with the fallback when the primary is down or fails."""
        if not text.strip():
            return
        if self.primary_down:
            async with aclosing(self.fallback.synthesize(text)) as stream:
                async for chunk in stream:
                    yield chunk
            return
        spoken_s = 0.0
        try:
            async with aclosing(self.primary.synthesize(text)) as stream:
                async for chunk in stream:
                    spoken_s += chunk.duration_s
                    yield chunk
        except EngineUnavailable as exc:
            self._primary_failed(exc)
            rest = unspoken_rest(text, spoken_s) if spoken_s > 0 else text
            if spoken_s > 0:
                log.info("TTS: %s stopped after %.2f s of audio; %s speaks the rest: %r", self.primary.name,
                         spoken_s, self.fallback.name, rest)  # fmt: skip
            if rest:
                async with aclosing(self.fallback.synthesize(rest)) as stream:
                    async for chunk in stream:
                        yield chunk
            return
        self._primary_ok()

    def _primary_failed(self, exc: BaseException) -> None:
        self.failures += 1
        was_down = self._retry_at is not None
        self._retry_at = self._clock() + self.retry_after_s
        if was_down:  # a retry failed again: the outage was already reported, keep the log quiet
            log.info("TTS: %s still unavailable (%s); retrying in %g s", self.primary.name, exc, self.retry_after_s)
        else:
            log.warning("TTS: %s unavailable (%s); speaking with %s, retrying %s in %g s", self.primary.name, exc,
                        self.fallback.name, self.primary.name, self.retry_after_s)  # fmt: skip

    def _primary_ok(self) -> None:
        if self._retry_at is not None:
            log.info("TTS: %s is back; %s no longer needed", self.primary.name, self.fallback.name)
            self._retry_at = None
