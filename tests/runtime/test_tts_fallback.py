"""FallbackTTS: online primaries (CosyVoice, Edge) that are down, stalled or die mid-sentence, with the real
embedded eSpeak voice as fallback; real local servers on 127.0.0.1, no mocked clients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import edge_tts.communicate
import numpy as np
import pytest
from avatar_runtime.audio import float_to_int16
from avatar_runtime.engines.base import SpeechChunk, TTSEngine
from avatar_runtime.engines.tts_cosyvoice import CosyVoiceTTS
from avatar_runtime.engines.tts_edge import EdgeTTS
from avatar_runtime.engines.tts_espeak import EspeakTTS
from avatar_runtime.engines.tts_fallback import FallbackTTS, unspoken_rest

from tests.support.cosyvoice_server import CosyVoiceServerStandIn
from tests.support.edge_tts_server import EdgeStandIn, encode_mp3
from tests.support.net import free_port
from tests.support.speech import speak
from tests.support.speech_chunks import collect

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
FALLBACK_LOG = "avatar_runtime.engines.tts_fallback"


@pytest.fixture(scope="module")
def espeak() -> EspeakTTS:
    return EspeakTTS()


@pytest.fixture(scope="module")
def pcm22() -> bytes:
    return float_to_int16(speak(SENTENCE, 22050)).tobytes()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == FALLBACK_LOG and r.levelno >= logging.WARNING]


def cosyvoice_at(url: str, timeout_s: float = 0.5) -> CosyVoiceTTS:
    return CosyVoiceTTS(
        "server", url=url, sample_rate=22050, first_audio_timeout_s=timeout_s, stall_timeout_s=timeout_s
    )


async def test_closed_port_falls_back_at_once_with_one_warning(espeak: EspeakTTS, caplog) -> None:
    caplog.set_level(logging.INFO)
    tts = FallbackTTS(cosyvoice_at(f"http://127.0.0.1:{free_port()}"), espeak, retry_after_s=30)
    assert isinstance(tts, TTSEngine) and tts.name == "cosyvoice+espeak"
    started = time.perf_counter()
    chunks = await collect(tts.synthesize(SENTENCE))
    elapsed = time.perf_counter() - started
    assert chunks and all(c.sample_rate == espeak.sample_rate for c in chunks)  # eSpeak spoke it
    assert sum(c.duration_s for c in chunks) > 2.0 and chunks[0].text == SENTENCE
    assert elapsed < 1.0, f"fallback audio after {elapsed:.2f} s"
    (warning,) = warnings(caplog)
    assert "cosyvoice TTS (server): ConnectError" in warning and "espeak" in warning and "30 s" in warning
    assert tts.primary_down and tts.failures == 1
    await collect(tts.synthesize("Second sentence."))  # goes straight to the fallback: no second warning
    assert len(warnings(caplog)) == 1 and tts.failures == 1


async def test_stalled_primary_then_retry_after_the_interval(espeak: EspeakTTS, pcm22: bytes, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with CosyVoiceServerStandIn(pcm22, behaviour="stall") as server:
        tts = FallbackTTS(cosyvoice_at(server.url, timeout_s=0.5), espeak, retry_after_s=0.6)

        started = time.perf_counter()
        first = await collect(tts.synthesize(SENTENCE))
        elapsed = time.perf_counter() - started
        assert first and first[0].sample_rate == espeak.sample_rate
        assert 0.5 <= elapsed < 0.5 + 0.7, f"fallback audio after {elapsed:.2f} s for a 0.5 s first-audio deadline"
        (warning,) = warnings(caplog)
        assert "no answer within 0.5 s waiting for the first audio" in warning

        # While the primary is down, sentences skip it: no waiting, no new request.
        started = time.perf_counter()
        assert await collect(tts.synthesize("While it is down."))
        assert time.perf_counter() - started < 0.4 and len(server.requests) == 1

        # After retry_after_s the primary is asked again; it has recovered and speaks the sentence itself.
        await asyncio.sleep(0.65)
        server.behaviour = "ok"
        again = await collect(tts.synthesize(SENTENCE))
        assert len(server.requests) == 2 and server.requests[1].form["tts_text"] == SENTENCE
        np.testing.assert_array_equal(
            np.concatenate([c.samples for c in again]), np.frombuffer(pcm22, "<i2").astype(np.float32) / 32768
        )
        assert not tts.primary_down and len(warnings(caplog)) == 1
        assert any("is back" in r.getMessage() for r in caplog.records if r.name == FALLBACK_LOG)


async def test_failed_retry_stays_quiet(espeak: EspeakTTS, caplog) -> None:
    caplog.set_level(logging.INFO)
    tts = FallbackTTS(cosyvoice_at(f"http://127.0.0.1:{free_port()}"), espeak, retry_after_s=0.1)
    await collect(tts.synthesize("One."))
    await asyncio.sleep(0.15)
    assert await collect(tts.synthesize("Two."))  # the retry fails again: logged at INFO, still spoken
    assert tts.failures == 2 and len(warnings(caplog)) == 1
    assert any("still unavailable" in r.getMessage() for r in caplog.records if r.name == FALLBACK_LOG)


async def test_mid_sentence_failure_speaks_only_the_rest(
    espeak: EspeakTTS, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    caplog.set_level(logging.INFO)
    mp3 = encode_mp3(speak(SENTENCE, 24000))
    async with EdgeStandIn(mp3, message_bytes=1000, behaviour="close_mid", cut_after=6) as server:
        # edge-tts has no endpoint option; its module constant is pointed at the stand-in (see test_tts_edge.py).
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", server.wss_url)
        tts = FallbackTTS(EdgeTTS("en-US-AriaNeural"), espeak, retry_after_s=30)
        chunks = await collect(tts.synthesize(SENTENCE))
    primary = [c for c in chunks if c.sample_rate == 24000]
    fallback = [c for c in chunks if c.sample_rate == espeak.sample_rate]
    assert chunks == primary + fallback and primary and fallback, "primary audio first, then the fallback's"
    spoken_s = sum(c.duration_s for c in primary)
    rest = fallback[0].text
    assert rest == unspoken_rest(SENTENCE, spoken_s)
    assert rest and SENTENCE.endswith(rest) and len(rest) < len(SENTENCE) - 10, rest
    (warning,) = warnings(caplog)
    assert "closed before the end of the sentence" in warning


async def test_closing_early_closes_the_primarys_connection(espeak: EspeakTTS, pcm22: bytes) -> None:
    # Barge-in through the wrapper must reach the network: the server sees the client leave mid-stream.
    async with CosyVoiceServerStandIn(pcm22, piece_delay_s=0.1) as server:
        tts = FallbackTTS(cosyvoice_at(server.url), espeak)
        stream = tts.synthesize(SENTENCE)
        assert (await anext(stream)).sample_rate == 22050
        await stream.aclose()
        for _ in range(100):  # the stand-in notices on its next write
            if server.requests[0].client_left_early:
                break
            await asyncio.sleep(0.02)
        assert server.requests[0].client_left_early and not tts.primary_down


async def test_errors_that_are_not_unavailability_propagate(espeak: EspeakTTS) -> None:
    class Broken:  # a bug in an engine must surface, not be papered over by the fallback
        name = "broken"

        async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
            raise ZeroDivisionError("bug")
            yield  # pragma: no cover

    tts = FallbackTTS(Broken(), espeak)
    with pytest.raises(ZeroDivisionError):
        await collect(tts.synthesize(SENTENCE))
    assert not tts.primary_down


@pytest.mark.parametrize(
    ("text", "spoken_s", "rest"),
    [
        ("Hello world, how are you today?", 0.0, "Hello world, how are you today?"),
        ("Hello world, how are you today?", 0.5, "how are you today?"),  # ~7 chars said: finish "world"
        ("Hello world, how are you today?", 0.8, "how are you today?"),  # stopped at the comma
        ("Hello world, how are you today?", 30.0, ""),
        ("Hello world!", 0.75, ""),  # only punctuation left
        ("你好，很高兴见到你。", 0.5, "很高兴见到你。"),  # CJK: ~4.5 characters a second, then a pause
        ("你好，很高兴见到你。", 0.7, "高兴见到你。"),  # 很 was 85% said: skipped, not repeated
    ],
)
def test_unspoken_rest(text: str, spoken_s: float, rest: str) -> None:
    assert unspoken_rest(text, spoken_s) == rest
