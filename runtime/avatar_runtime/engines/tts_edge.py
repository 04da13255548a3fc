"""Microsoft Edge's online neural voices through the `edge-tts` package, streamed and decoded as they arrive.

edge-tts speaks Edge's "read aloud" WebSocket protocol (its URL, token and request signing change now and
then, and are kept up to date by that package, which is why it is used rather than a copy of the protocol).
The service answers a sentence with MP3 (24 kHz mono, 48 kbit/s) in many small binary messages; each one is
decoded at once, so the avatar starts speaking after the first message, not after the whole sentence.

What edge-tts does not do for us, and this module adds:
- deadlines: edge-tts only takes whole-second socket timeouts and has no overall limit, so a stalled
  server could hang a reply; here the first audio must come within `first_audio_timeout_s` and no gap may
  exceed `stall_timeout_s`, else `TTSUnavailable` (which `FallbackTTS` turns into the embedded voice);
- truncation: when the connection drops after some audio, edge-tts simply ends the stream as if the
  sentence were complete; this engine notices the missing end-of-turn and raises `TTSUnavailable`, so the
  fallback can say the rest;
- errors: DNS, refused, TLS and HTTP errors and edge-tts's own exceptions all become `TTSUnavailable`.

The voice is the seed's (OpenAvatarChat) default, a Mandarin voice that also reads English; pick another with
`voice=` (`edge-tts --list-voices` lists them).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import numpy as np

from .base import EngineUnavailable, SpeechChunk
from .tts_fallback import TTSUnavailable, deadline_stream, describe

DEFAULT_VOICE = "zh-CN-XiaoxiaoNeural"  # OpenAvatarChat's config/chat_with_openai_compatible_edge_tts.yaml
SAMPLE_RATE = 24000  # "audio-24khz-48kbitrate-mono-mp3", the format edge-tts requests


class EdgeTTS:
    """`TTSEngine` for Edge's online voices; yields each decoded network message as a SpeechChunk (24 kHz).

    voice: a short name such as "en-US-AriaNeural"; rate / volume: "+10%", "-5%"; pitch: "+0Hz".
    connect_timeout_s: TCP connect limit. first_audio_timeout_s: limit from the request to the first audio
    (DNS, TLS, WebSocket upgrade and the service's synthesis start included). stall_timeout_s: longest
    gap between two audio messages. proxy: an HTTP proxy URL, if the host needs one.

    No phoneme timing (Edge's word boundaries are not phonemes); the first chunk carries `text`, later ones "".
    """

    name = "edge"

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        rate: str = "+0%",
        volume: str = "+0%",
        pitch: str = "+0Hz",
        *,
        connect_timeout_s: float = 5.0,
        first_audio_timeout_s: float = 8.0,
        stall_timeout_s: float = 5.0,
        proxy: str | None = None,
    ) -> None:
        try:
            import aiohttp
            import edge_tts
            import edge_tts.exceptions
            from edge_tts.data_classes import TTSConfig
        except ImportError as exc:
            raise EngineUnavailable(f"edge TTS: the edge-tts package is not installed ({exc})") from exc
        try:
            import av  # noqa: F401  # the MP3 decoder; checked now so a missing PyAV fails at start-up
        except ImportError as exc:
            raise EngineUnavailable(f"edge TTS: PyAV (package av) is needed to decode MP3 ({exc})") from exc
        try:
            TTSConfig(voice, rate, volume, pitch, "SentenceBoundary")  # edge-tts's own validation, at start-up
        except (TypeError, ValueError) as exc:
            raise ValueError(f"edge TTS: {exc}") from exc
        self.voice, self.rate, self.volume, self.pitch = voice, rate, volume, pitch
        self.connect_timeout_s = float(connect_timeout_s)
        self.first_audio_timeout_s = float(first_audio_timeout_s)
        self.stall_timeout_s = float(stall_timeout_s)
        self.proxy = proxy
        self.sample_rate = SAMPLE_RATE
        self._edge: Any = edge_tts
        self._aiohttp: Any = aiohttp
        # OSError covers refused/reset connections and DNS failures that escape aiohttp's wrappers.
        self._errors: tuple[type[BaseException], ...] = (
            aiohttp.ClientError, edge_tts.exceptions.EdgeTTSException, OSError,
        )  # fmt: skip

    def _communicate(self, text: str) -> Any:
        edge, aiohttp = self._edge, self._aiohttp
        communicate = edge.Communicate(
            text, self.voice, rate=self.rate, volume=self.volume, pitch=self.pitch, proxy=self.proxy,
            # edge-tts only accepts whole seconds here; the float limits are set just below.
            connect_timeout=max(1, math.ceil(self.connect_timeout_s)),
            receive_timeout=max(1, math.ceil(self.stall_timeout_s)),
        )  # fmt: skip
        # Communicate keeps its aiohttp timeouts in this public attribute: set the exact (float) connect limit.
        # No read limit: `deadline_stream` times the reads (first audio, then stalls) and names which one failed.
        communicate.session_timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=self.connect_timeout_s, sock_read=None
        )
        return communicate

    async def _mp3(self, text: str) -> AsyncIterator[bytes]:
        """The service's MP3 for `text`, message by message; raises if the turn did not end properly."""
        communicate = self._communicate(text)
        async for message in communicate.stream():
            if message.get("type") == "audio" and message.get("data"):
                yield message["data"]
        # On a clean turn.end edge-tts moves this sentence's byte count into its running total and resets it;
        # bytes still counted here mean the socket closed mid-sentence (edge-tts ends the stream silently).
        if communicate.state.get("chunk_audio_bytes", 0):
            raise TTSUnavailable("edge TTS: the connection closed before the end of the sentence")

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak `text`, yielding audio as each MP3 message arrives and decodes."""
        if not text.strip():
            return
        from ..audio_codec import Mp3Stream

        decoder = Mp3Stream()
        mp3 = deadline_stream(
            self._mp3(text), what="edge TTS", first_timeout_s=self.first_audio_timeout_s,
            stall_timeout_s=self.stall_timeout_s, errors=self._errors,
        )  # fmt: skip
        label = text  # the first chunk carries the text, later ones ""
        async with aclosing(mp3):
            async for data in mp3:
                samples = _decode(decoder.feed, data)
                if samples.size:
                    yield SpeechChunk(samples, decoder.sample_rate or SAMPLE_RATE, label)
                    label = ""
        tail = _decode(decoder.flush)
        if tail.size:
            yield SpeechChunk(tail, decoder.sample_rate or SAMPLE_RATE, label)


def _decode(step: Callable[..., np.ndarray], *data: bytes) -> np.ndarray:
    """Run one decoder step; undecodable data (a broken or impostor server) makes the voice unavailable."""
    try:
        return step(*data)
    except ValueError as exc:
        raise TTSUnavailable(f"edge TTS: {describe(exc)}") from exc
