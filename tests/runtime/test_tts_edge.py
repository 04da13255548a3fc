"""EdgeTTS against a local stand-in of Edge's read-aloud WebSocket service (tests/support/edge_tts_server.py).

The real edge-tts client code runs unchanged: its service URL is a module constant with no option to change
it, so the tests point that constant (`edge_tts.communicate.WSS_URL`) at the stand-in on 127.0.0.1. Everything
after that (request signing, speech.config and SSML messages, binary audio parsing, turn.end) is edge-tts's.
The stand-in sends real speech (espeak-ng) as real MP3, so decoding, streaming and failures are all real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import edge_tts.communicate
import numpy as np
import pytest
from avatar_runtime.engines.base import SpeechChunk, TTSEngine
from avatar_runtime.engines.tts_edge import DEFAULT_VOICE, SAMPLE_RATE, EdgeTTS
from avatar_runtime.engines.tts_fallback import TTSUnavailable
from scipy.signal import correlate

from tests.support.edge_tts_server import MP3_FORMAT, EdgeStandIn, encode_mp3
from tests.support.net import free_port
from tests.support.speech import speak
from tests.support.speech_chunks import collect, joined

TEXT = "Hello there, this is the avatar speaking through the stand-in service."
ARIA = "Microsoft Server Speech Text to Speech Voice (en-US, AriaNeural)"
Serve = Callable[..., AbstractAsyncContextManager[EdgeStandIn]]


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    """The speech the stand-in serves (24 kHz, as Edge sends it)."""
    return speak(TEXT, SAMPLE_RATE)


@pytest.fixture(scope="module")
def mp3(source: np.ndarray) -> bytes:
    return encode_mp3(source, SAMPLE_RATE, 48000)


@pytest.fixture
def serve(mp3: bytes, monkeypatch: pytest.MonkeyPatch) -> Serve:
    """`async with serve(**stand_in_options) as server:` — edge-tts talks to `server` inside the block."""

    class _Serving(EdgeStandIn):
        async def __aenter__(self) -> EdgeStandIn:
            await super().__aenter__()
            # edge-tts has no supported way to change its endpoint: point its module constant at the stand-in.
            monkeypatch.setattr(edge_tts.communicate, "WSS_URL", self.wss_url)
            return self

    return lambda **options: _Serving(mp3, **options)


def engine(**options) -> EdgeTTS:
    return EdgeTTS(**{"voice": "en-US-AriaNeural", "first_audio_timeout_s": 2.0, "stall_timeout_s": 2.0, **options})


async def test_speaks_through_edge_tts_protocol(serve: Serve) -> None:
    tts = engine(rate="+10%", volume="-5%", pitch="+2Hz")
    assert isinstance(tts, TTSEngine) and tts.name == "edge"
    text = 'Fish & chips <for> "two", please.'  # needs XML escaping in the SSML
    async with serve() as server:
        chunks = await collect(tts.synthesize(text))

    (request,) = server.requests
    assert request.voice == ARIA
    assert request.prosody == {"rate": "+10%", "volume": "-5%", "pitch": "+2Hz"}
    assert request.text == text  # escaped by the client, unescaped by the XML parser: the same text
    assert request.config["context"]["synthesis"]["audio"]["outputFormat"] == MP3_FORMAT
    assert request.query["ConnectionId"] and request.query["Sec-MS-GEC"]
    assert request.turn_ended and not request.client_left_early
    assert len(chunks) >= 5, "each network message should be decoded and handed on separately"
    for chunk in chunks:
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert chunk.sample_rate == SAMPLE_RATE and np.abs(chunk.samples).max() <= 1.0
        assert chunk.phonemes == []
    assert chunks[0].text == text and all(c.text == "" for c in chunks[1:])


async def test_decoded_audio_matches_the_source(serve: Serve, source: np.ndarray) -> None:
    async with serve(message_bytes=1001) as server:  # odd sizes: MP3 frames split across messages
        audio = joined(await collect(engine().synthesize(TEXT)))
    assert server.requests[0].audio_messages_sent > 10

    # MP3 adds the encoder's delay and pads the last frame: ~50-100 ms more, never less.
    extra_s = (len(audio) - len(source)) / SAMPLE_RATE
    assert 0.0 <= extra_s < 0.12, f"decoded {len(audio) / SAMPLE_RATE:.3f} s for {len(source) / SAMPLE_RATE:.3f} s"
    lag = int(np.argmax(correlate(audio, source, mode="valid", method="fft")))
    aligned = audio[lag : lag + len(source)]
    rms_db = 20 * np.log10(np.sqrt(np.mean(aligned**2)) / np.sqrt(np.mean(source**2)))
    assert abs(rms_db) < 1.0, f"loudness differs by {rms_db:.2f} dB"
    assert np.corrcoef(aligned, source)[0, 1] > 0.9, "decoded waveform does not match the speech that was sent"


async def test_first_audio_arrives_before_the_service_has_sent_the_sentence(serve: Serve) -> None:
    tts = engine()
    started = time.perf_counter()
    async with serve(message_delay_s=0.1) as server:
        arrivals = [time.perf_counter() async for _ in tts.synthesize(TEXT)]
    request = server.requests[0]
    assert request.audio_messages_sent >= 10
    assert arrivals[0] < request.last_audio_sent_at - 0.5, (
        f"first audio after {arrivals[0] - started:.2f} s, last message sent at "
        f"{request.last_audio_sent_at - started:.2f} s: not streamed"
    )
    assert len(arrivals) >= request.audio_messages_sent - 1  # about one chunk per message, as they come


async def test_default_voice_is_the_seeds(serve: Serve) -> None:
    tts = EdgeTTS()
    assert tts.voice == DEFAULT_VOICE == "zh-CN-XiaoxiaoNeural"
    async with serve() as server:
        assert await collect(tts.synthesize("你好，很高兴见到你。"))
    assert server.requests[0].voice == "Microsoft Server Speech Text to Speech Voice (zh-CN, XiaoxiaoNeural)"
    assert server.requests[0].text == "你好，很高兴见到你。"


async def test_refused_connection_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{free_port()}/edge/v1?x=1")
    started = time.perf_counter()
    with pytest.raises(TTSUnavailable, match="edge TTS: .*(Connect|refused)"):
        await collect(engine().synthesize(TEXT))
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        ("reject", "503"),  # WebSocket upgrade refused by the service
        ("close", "NoAudioReceived"),  # connection closed after the request
        ("stall", "no answer within 0.5 s waiting for the first audio"),
    ],
)
async def test_failures_before_audio_raise_within_the_deadline(serve: Serve, behaviour: str, cause: str) -> None:
    tts = engine(first_audio_timeout_s=0.5)
    started = time.perf_counter()
    async with serve(behaviour=behaviour):
        with pytest.raises(TTSUnavailable, match=cause):
            await collect(tts.synthesize(TEXT))
    assert time.perf_counter() - started < 0.5 + 0.5


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [("close_mid", "closed before the end of the sentence"), ("stall_mid", "no answer within 0.5 s waiting for more")],
)
async def test_failures_mid_sentence_raise_after_the_audio_so_far(serve: Serve, behaviour: str, cause: str) -> None:
    tts = engine(stall_timeout_s=0.5)
    chunks: list[SpeechChunk] = []
    async with serve(behaviour=behaviour, cut_after=4) as server:
        started = time.perf_counter()
        with pytest.raises(TTSUnavailable, match=cause):
            async for chunk in tts.synthesize(TEXT):
                chunks.append(chunk)
    assert time.perf_counter() - started < 0.5 + 0.5
    assert server.requests[0].audio_messages_sent == 4
    assert 0 < sum(c.duration_s for c in chunks) < 1.5  # the audio of 4 messages was handed on before the error


async def test_server_that_never_answers_the_handshake_cannot_hang_a_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    # A black hole: TCP accepted, not a byte back (a half-dead proxy or firewall). Only the deadline can end it.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/edge/v1?x=1")
        started = time.perf_counter()
        with pytest.raises(TTSUnavailable, match="no answer within 0.5 s waiting for the first audio"):
            await collect(engine(first_audio_timeout_s=0.5).synthesize(TEXT))
        assert 0.5 <= time.perf_counter() - started < 1.0


async def test_closing_early_hangs_up_and_the_engine_stays_usable(serve: Serve) -> None:
    # Barge-in: the consumer stops after the first chunk; the request must be abandoned, not finished.
    tts = engine()
    async with serve(message_delay_s=0.05) as server:
        stream = tts.synthesize(TEXT)
        assert (await anext(stream)).duration_s > 0
        await stream.aclose()
        for _ in range(100):  # the stand-in notices on its next send
            if server.requests[0].client_left_early:
                break
            await asyncio.sleep(0.02)
        assert server.requests[0].client_left_early
        assert joined(await collect(tts.synthesize("Again."))).size > 0
    assert server.requests[1].turn_ended


async def test_empty_text_sends_nothing(serve: Serve) -> None:
    async with serve() as server:
        assert await collect(engine().synthesize("  ")) == []
    assert server.requests == []


def test_invalid_settings_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="voice"):
        EdgeTTS(voice="not a voice")
    with pytest.raises(ValueError, match="rate"):
        EdgeTTS(rate="fast")
