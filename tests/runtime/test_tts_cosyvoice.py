"""CosyVoiceTTS against local stand-ins (tests/support/cosyvoice_server.py) of DashScope's CosyVoice WebSocket
API and of CosyVoice's self-hosted FastAPI server, over real sockets on 127.0.0.1, with real speech as PCM.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest
from avatar_runtime.audio import float_to_int16
from avatar_runtime.engines.base import EngineUnavailable, SpeechChunk, TTSEngine
from avatar_runtime.engines.tts_cosyvoice import DEFAULT_DASHSCOPE_VOICE, DEFAULT_SPEAKER, CosyVoiceTTS
from avatar_runtime.engines.tts_fallback import TTSUnavailable

from tests.support.cosyvoice_server import CosyVoiceServerStandIn, DashScopeStandIn
from tests.support.net import free_port
from tests.support.speech import speak, write_wav
from tests.support.speech_chunks import collect, joined

KEY = "sk-test-0123456789abcdef"
TEXT = "Good morning, the weather is lovely today."


@pytest.fixture(scope="module")
def pcm24() -> bytes:
    return float_to_int16(speak(TEXT, 24000)).tobytes()


@pytest.fixture(scope="module")
def pcm22() -> bytes:
    return float_to_int16(speak(TEXT, 22050)).tobytes()


def expected(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def dashscope(server: DashScopeStandIn, **options) -> CosyVoiceTTS:
    settings = {"url": server.url, "api_key": KEY, "sample_rate": 24000, "first_audio_timeout_s": 2.0,
                "stall_timeout_s": 2.0, **options}  # fmt: skip
    return CosyVoiceTTS("dashscope", **settings)


def self_hosted(url: str, **options) -> CosyVoiceTTS:
    settings = {"url": url, "sample_rate": 22050, "first_audio_timeout_s": 2.0, "stall_timeout_s": 2.0, **options}
    return CosyVoiceTTS("server", **settings)


# --- DashScope WebSocket API ----------------------------------------------------------------------------------


async def test_dashscope_task_protocol_and_audio(pcm24: bytes) -> None:
    async with DashScopeStandIn(pcm24, api_key=KEY, model="cosyvoice-v2") as server:
        tts = dashscope(server, model="cosyvoice-v2", voice="longhua")
        assert isinstance(tts, TTSEngine) and tts.name == "cosyvoice"
        chunks = await collect(tts.synthesize(TEXT))

    (task,) = server.tasks
    assert task.headers["Authorization"] == f"Bearer {KEY}"
    run = task.run_task
    task_id = run["header"]["task_id"]
    assert run["header"] == {"action": "run-task", "task_id": task_id, "streaming": "duplex"}
    assert run["payload"] == {
        "task_group": "audio", "task": "tts", "function": "SpeechSynthesizer", "model": "cosyvoice-v2",
        "parameters": {"text_type": "PlainText", "voice": "longhua", "format": "pcm", "sample_rate": 24000},
        "input": {},
    }  # fmt: skip
    continue_task, finish_task = task.commands
    assert continue_task["header"] == {"action": "continue-task", "task_id": task_id, "streaming": "duplex"}
    assert continue_task["payload"]["input"]["text"] == TEXT
    assert finish_task["header"]["action"] == "finish-task" and finish_task["header"]["task_id"] == task_id
    assert task.finished and not task.client_left_early

    assert len(chunks) == task.audio_messages_sent > 5  # one chunk per binary message
    assert all(c.sample_rate == 24000 and c.samples.dtype == np.float32 for c in chunks)
    np.testing.assert_array_equal(joined(chunks), expected(pcm24))  # PCM passes through bit-exact
    assert chunks[0].text == TEXT and all(c.text == "" for c in chunks[1:])


async def test_dashscope_streams_audio_as_it_arrives(pcm24: bytes) -> None:
    async with DashScopeStandIn(pcm24, api_key=KEY, message_bytes=9600, message_delay_s=0.1) as server:
        arrivals = [time.perf_counter() async for _ in dashscope(server).synthesize(TEXT)]
    task = server.tasks[0]
    assert task.audio_messages_sent >= 8
    assert arrivals[0] < task.last_audio_sent_at - 0.5, "first audio only came after the last message was sent"


async def test_dashscope_defaults_and_key_from_environment(pcm24: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    async with DashScopeStandIn(pcm24, api_key=KEY, model="cosyvoice-v1") as server:
        tts = CosyVoiceTTS("dashscope", url=server.url, sample_rate=22050)
        assert await collect(tts.synthesize(TEXT))
    params = server.tasks[0].run_task["payload"]["parameters"]
    assert (params["voice"], params["sample_rate"]) == (DEFAULT_DASHSCOPE_VOICE, 22050) == ("longxiaochun", 22050)
    assert server.tasks[0].run_task["payload"]["model"] == "cosyvoice-v1"


def test_dashscope_without_a_key_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(EngineUnavailable, match="DASHSCOPE_API_KEY"):
        CosyVoiceTTS("dashscope")
    with pytest.raises(ValueError, match="44100"):
        CosyVoiceTTS("dashscope", api_key=KEY, sample_rate=44000)


async def test_dashscope_wrong_key_is_refused_without_echoing_it(pcm24: bytes) -> None:
    async with DashScopeStandIn(pcm24, api_key="sk-the-right-one") as server:
        with pytest.raises(TTSUnavailable, match="401") as info:
            await collect(dashscope(server).synthesize(TEXT))
    assert server.rejected_handshakes == 1 and KEY not in str(info.value)


async def test_dashscope_task_failed_is_reported(pcm24: bytes) -> None:
    async with DashScopeStandIn(pcm24, api_key=KEY, behaviour="fail") as server:
        with pytest.raises(TTSUnavailable, match="task-failed InvalidParameter: Model not found"):
            await collect(dashscope(server).synthesize(TEXT))


async def test_dashscope_rejects_a_bad_run_task(pcm24: bytes) -> None:
    # The stand-in validates run-task like the service; a model it does not serve gets task-failed.
    async with DashScopeStandIn(pcm24, api_key=KEY, model="cosyvoice-v2") as server:
        with pytest.raises(TTSUnavailable, match="task-failed InvalidParameter: invalid payload.model"):
            await collect(dashscope(server, model="cosyvoice-v9").synthesize(TEXT))


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        ("fail_mid", "task-failed InternalError: engine crashed"),
        ("close_mid", "ConnectionClosedError"),
        ("stall_mid", "no answer within 0.5 s waiting for more audio"),
    ],
)
async def test_dashscope_failure_mid_sentence(pcm24: bytes, behaviour: str, cause: str) -> None:
    chunks: list[SpeechChunk] = []
    async with DashScopeStandIn(pcm24, api_key=KEY, behaviour=behaviour, cut_after=3) as server:
        started = time.perf_counter()
        with pytest.raises(TTSUnavailable, match=cause):
            async for chunk in dashscope(server, stall_timeout_s=0.5).synthesize(TEXT):
                chunks.append(chunk)
    assert time.perf_counter() - started < 1.0
    np.testing.assert_array_equal(joined(chunks), expected(pcm24)[: 3 * 2400])  # the 3 messages sent, no more


async def test_dashscope_stall_and_refusal_fail_fast(pcm24: bytes) -> None:
    async with DashScopeStandIn(pcm24, api_key=KEY, behaviour="stall") as server:
        started = time.perf_counter()
        with pytest.raises(TTSUnavailable, match="no answer within 0.5 s waiting for the first audio"):
            await collect(dashscope(server, first_audio_timeout_s=0.5).synthesize(TEXT))
        assert 0.5 <= time.perf_counter() - started < 1.0
    tts = CosyVoiceTTS("dashscope", url=f"ws://127.0.0.1:{free_port()}/api-ws/v1/inference", api_key=KEY)
    started = time.perf_counter()
    with pytest.raises(TTSUnavailable, match="cosyvoice TTS \\(dashscope\\): .*(Connect|refused)"):
        await collect(tts.synthesize(TEXT))
    assert time.perf_counter() - started < 1.0


async def test_dashscope_early_close_ends_the_task(pcm24: bytes) -> None:
    async with DashScopeStandIn(pcm24, api_key=KEY, message_delay_s=0.05) as server:
        tts = dashscope(server)
        stream = tts.synthesize(TEXT)
        await anext(stream)
        await stream.aclose()  # barge-in
        for _ in range(100):
            if server.tasks[0].client_left_early:
                break
            await asyncio.sleep(0.02)
        assert server.tasks[0].client_left_early and not server.tasks[0].finished
        assert await collect(tts.synthesize("Next sentence."))  # a fresh connection per sentence


async def test_api_key_never_reaches_the_log(pcm24: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # websockets logs request headers at DEBUG
    async with DashScopeStandIn(pcm24, api_key=KEY) as server:
        await collect(dashscope(server).synthesize(TEXT))
    async with DashScopeStandIn(pcm24, api_key=KEY, behaviour="fail") as server:
        with pytest.raises(TTSUnavailable):
            await collect(dashscope(server).synthesize(TEXT))
    ours = [r for r in caplog.records if not r.name.startswith("tests.support")]  # the stand-in logs what it got
    assert any("Authorization: Bearer ***" in r.getMessage() for r in ours), "header debug log was not exercised"
    leaked = [r.getMessage() for r in ours if KEY in r.getMessage()]
    assert not leaked
    assert KEY not in repr(dashscope(server))


# --- self-hosted CosyVoice server -----------------------------------------------------------------------------


async def test_server_sft_streams_pcm_split_mid_sample(pcm22: bytes) -> None:
    async with CosyVoiceServerStandIn(pcm22, piece_bytes=4801, piece_delay_s=0.05) as server:
        tts = self_hosted(server.url)
        arrivals, chunks = [], []
        async for chunk in tts.synthesize(TEXT):
            arrivals.append(time.perf_counter())
            chunks.append(chunk)
    (request,) = server.requests
    assert request.path == "/inference_sft"
    assert request.form == {"tts_text": TEXT, "spk_id": DEFAULT_SPEAKER}
    assert request.bytes_sent == len(pcm22)
    assert all(c.sample_rate == 22050 for c in chunks)
    np.testing.assert_array_equal(joined(chunks), expected(pcm22))  # odd piece sizes: samples re-joined exactly
    assert len(chunks) >= 5 and arrivals[0] < request.last_audio_sent_at - 0.2


async def test_server_zero_shot_uploads_the_reference(pcm22: bytes, tmp_path) -> None:
    prompt = tmp_path / "prompt.wav"
    write_wav(prompt, speak("This is my voice.", 16000), 16000)
    async with CosyVoiceServerStandIn(pcm22) as server:
        # The URL may name the endpoint, as OpenAvatarChat's config does.
        tts = self_hosted(f"{server.url}/inference_zero_shot", prompt_wav=prompt, prompt_text="This is my voice.")
        audio = joined(await collect(tts.synthesize(TEXT)))
    (request,) = server.requests
    assert request.path == "/inference_zero_shot"
    assert request.form == {"tts_text": TEXT, "prompt_text": "This is my voice."}
    assert request.prompt_wav == prompt.read_bytes()
    np.testing.assert_array_equal(audio, expected(pcm22))


@pytest.mark.parametrize(
    ("behaviour", "cause", "audio_before"),
    [
        ("fail", "HTTP 500 from http://127.0.0.1:\\d+/inference_sft: Internal Server Error", False),
        ("stall", "no answer within 0.5 s waiting for the first audio", False),
        ("stall_mid", "no answer within 0.5 s waiting for more audio", True),
        ("close_mid", "RemoteProtocolError", True),
    ],
)
async def test_server_failures(pcm22: bytes, behaviour: str, cause: str, audio_before: bool) -> None:
    chunks: list[SpeechChunk] = []
    async with CosyVoiceServerStandIn(pcm22, behaviour=behaviour) as server:
        tts = self_hosted(server.url, first_audio_timeout_s=0.5, stall_timeout_s=0.5)
        started = time.perf_counter()
        with pytest.raises(TTSUnavailable, match=cause):
            async for chunk in tts.synthesize(TEXT):
                chunks.append(chunk)
        assert time.perf_counter() - started < 1.0
    assert bool(chunks) == audio_before


async def test_server_refused_connection() -> None:
    started = time.perf_counter()
    with pytest.raises(TTSUnavailable, match="cosyvoice TTS \\(server\\): ConnectError"):
        await collect(self_hosted(f"http://127.0.0.1:{free_port()}").synthesize(TEXT))
    assert time.perf_counter() - started < 1.0


def test_server_mode_configuration_errors(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="URL"):
        CosyVoiceTTS("server")
    with pytest.raises(EngineUnavailable, match="not found"):
        CosyVoiceTTS("server", url="http://127.0.0.1:1", prompt_wav=tmp_path / "missing.wav", prompt_text="hi")
    with pytest.raises(ValueError, match="prompt_text"):
        CosyVoiceTTS("server", url="http://127.0.0.1:1", prompt_wav=tmp_path / "missing.wav")
    assert CosyVoiceTTS("server", url="http://h:50000/").url == "http://h:50000/inference_sft"
