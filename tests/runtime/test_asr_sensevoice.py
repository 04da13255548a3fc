"""SenseVoice ASR engine: funasr's real loading and decoding path on a tiny random model in a real model directory.

The weights are random, so what the model says is noise; what is tested is everything around it: loading from
a directory laid out like the published model, tags parsed out of the decoded text, errors that name the
problem quickly, settings that reach the model, and one shared model serving concurrent sessions in batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from avatar_runtime.engines.asr_sensevoice import SenseVoiceASR, parse_rich_text, sanitize
from avatar_runtime.engines.base import ASREngine, EngineUnavailable, Transcription
from avatar_runtime.engines.batching import BatcherClosed
from avatar_runtime.models.cache import ModelMissing

from tests.support.speech import speak
from tests.support.tiny_sensevoice import build_tiny_sensevoice

REAL_FILES = ["model.pt", "config.yaml", "configuration.json", "am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model"]
SENTENCES = [
    "Hello there, how are you doing today?",
    "The weather is lovely this morning.",
    "Could you tell me the time, please?",
    "I think we should go for a walk in the park.",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_sensevoice(tmp_path_factory.mktemp("cache") / "sensevoice-small")


@pytest.fixture(scope="module")
def engine(model_dir) -> Iterator[SenseVoiceASR]:
    asr = SenseVoiceASR(model_dir, tags="expose", device="cpu")
    yield asr
    asr.close()


@pytest.fixture
def patient(model_dir) -> Iterator[SenseVoiceASR]:
    """An engine that waits long for a batch to fill, so that on a busy machine concurrent calls still share one."""
    asr = SenseVoiceASR(model_dir, tags="expose", device="cpu", max_batch=8, max_wait_ms=300)
    yield asr
    asr.close()


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    return [speak(text) for text in SENTENCES]


# --- tag parsing (pure) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<|en|><|HAPPY|><|Speech|><|withitn|>Hello there.", Transcription("Hello there.", "en", "happy")),
        ("<|zh|><|NEUTRAL|><|Speech|><|woitn|>你好世界", Transcription("你好世界", "zh", "neutral")),
        (
            "<|en|><|EMO_UNKNOWN|><|Laughter|><|withitn|>Ha, that's funny!",
            Transcription("Ha, that's funny!", "en", None, ("laughter",)),
        ),
        ("<|ja|><|SAD|><|BGM|><|woitn|>", Transcription("", "ja", "sad", ("bgm",))),
        (
            "<|yue|><|ANGRY|><|Applause|><|Laughter|><|withitn|>好嘢",
            Transcription("好嘢", "yue", "angry", ("applause", "laughter")),
        ),
        ("<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|>", Transcription("")),
        (
            "<|ko|><|SURPRISED|><|Cough|><|withitn|>  Hello   world  ",
            Transcription("Hello world", "ko", "surprised", ("cough",)),
        ),
        ("plain words, no tags", Transcription("plain words, no tags")),
        ("", Transcription("")),
    ],
)
def test_parse_rich_text(raw, expected):
    assert parse_rich_text(raw) == expected


def test_parse_rich_text_first_language_and_emotion_win_and_events_are_deduplicated():
    raw = "<|en|><|HAPPY|><|Laughter|><|withitn|>One.<|zh|><|SAD|><|Laughter|><|Cough|><|withitn|>Two."
    assert parse_rich_text(raw) == Transcription("One.Two.", "en", "happy", ("laughter", "cough"))


def test_sanitize_zeroes_non_finite_samples_and_clips():
    out = sanitize(np.array([0.5, np.nan, np.inf, -np.inf, 2.0, -3.0], dtype=np.float64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0.5, 0, 0, 0, 1.0, -1.0], dtype=np.float32))


# --- the engine on the tiny model ------------------------------------------------------------------------


async def test_transcribes_real_speech_without_markup(engine, speech):
    assert isinstance(engine, ASREngine) and engine.name == "sensevoice"
    raw = await engine.transcribe_raw(speech[0])
    assert "<|" in raw, "the tiny model's raw output should carry SenseVoice tags, or stripping goes untested"
    result = await engine.transcribe(speech[0])
    assert isinstance(result, Transcription)
    assert result.text and "<|" not in result.text and "|>" not in result.text
    assert result == parse_rich_text(raw)
    assert await engine.transcribe(speech[0]) == result, "same audio, same transcript (no dither)"


async def test_strip_mode_returns_text_only(model_dir, engine, speech):
    stripping = SenseVoiceASR(model_dir, tags="strip", device="cpu")
    exposed, stripped = await engine.transcribe(speech[1]), await stripping.transcribe(speech[1])
    stripping.close()
    assert stripped == Transcription(exposed.text)


@pytest.mark.parametrize(
    ("piece", "expected"),
    [
        ("<|HAPPY|>", Transcription("", None, "happy")),
        ("<|Laughter|>", Transcription("", None, None, ("laughter",))),
        ("<|en|>", Transcription("", "en")),
        ("<|EMO_UNKNOWN|>", Transcription("")),
        ("▁please", Transcription("please")),
    ],
)
async def test_what_the_model_emits_reaches_the_transcription(tmp_path, speech, piece, expected):
    """A model whose CTC head always emits one piece: decode, collapse and tag parsing end to end, alone and in
    a batch of utterances of different lengths (padding must not add frames that decode to anything)."""
    directory = build_tiny_sensevoice(tmp_path / "sensevoice-small", force_piece=piece)
    asr = SenseVoiceASR(directory, tags="expose", device="cpu", max_wait_ms=300)
    try:
        assert await asr.transcribe(speech[0]) == expected
        assert await asyncio.gather(*(asr.transcribe(audio) for audio in speech)) == [expected] * len(speech)
        assert asr.batch_sizes == {1: 1, len(speech): 1}
    finally:
        asr.close()


async def test_short_utterance_is_empty_and_not_decoded(patient):
    assert await patient.transcribe(np.full(1599, 0.1, dtype=np.float32)) == Transcription("")
    assert await patient.transcribe(np.zeros(0, dtype=np.float32)) == Transcription("")
    assert patient.batch_sizes == {}, "under 0.1 s must not reach the model (nor wait for a batch)"
    assert (await patient.transcribe(np.full(1600, 0.1, dtype=np.float32))).text


async def test_non_finite_samples_are_sanitised(engine, speech):
    audio = speech[2].copy()
    broken = audio.copy()
    broken[1000:1100], broken[5000], broken[9000] = np.nan, np.inf, -np.inf
    audio[1000:1100], audio[5000], audio[9000] = 0.0, 0.0, 0.0
    assert await engine.transcribe(broken) == await engine.transcribe(audio)


async def test_concurrent_sessions_get_their_own_results(engine, speech):
    sequential = [await engine.transcribe(audio) for audio in speech]
    assert len({r.text for r in sequential}) == len(speech), "distinct inputs should give distinct outputs"
    concurrent = await asyncio.gather(*(engine.transcribe(audio) for audio in speech * 3))
    assert concurrent == sequential * 3


async def test_concurrent_utterances_are_decoded_in_one_forward_pass_per_batch(engine, patient, speech):
    """Batches form, each is one encoder forward over all its utterances, and every session gets the transcript
    it would have got alone. Padding is masked, so batched logits differ from solo ones by float rounding only
    (≤ 1e-6 measured); this tiny model's two best pieces are ≥ 3e-5 apart on these inputs, so the text is equal."""
    utterances = [*speech, speech[0][:2400], np.concatenate([speech[3], speech[1]]), speech[2][::-1].copy()]
    alone = [await engine.transcribe(audio) for audio in utterances]  # awaited one by one: batches of 1
    assert len({r.text for r in alone}) == len(utterances), "distinct outputs, or a mix-up could go unseen"
    encoder_batches: list[int] = []
    hook = patient._model.model.encoder.register_forward_hook(lambda _m, args, _o: encoder_batches.append(len(args[0])))
    try:
        together = await asyncio.gather(*(patient.transcribe(audio) for audio in utterances * 2))
    finally:
        hook.remove()
    assert together == alone * 2
    assert patient.batch_sizes == {8: 1, 6: 1}, "14 utterances at once should make batches of 8 and 6"
    assert encoder_batches == [8, 6], "one encoder forward per batch, over the whole batch"


async def test_an_utterance_funasr_cannot_decode_fails_only_its_own_request(engine, patient, speech):
    # `transcribe` sanitises every input into decodable mono audio, so the broken one goes in behind it: a 2-D
    # array makes funasr raise in a batch (padding) and alone (fbank), like an utterance the model cannot take.
    # Straight from the batcher, a failure retried alone comes back as the outcome (`transcribe` raises it).
    expected = [await engine.transcribe(audio) for audio in speech]
    broken = np.zeros((2, 16000), dtype=np.float32)
    results = await asyncio.gather(
        *(patient.transcribe(audio) for audio in speech[:2]),
        patient._batcher.submit(broken),
        *(patient.transcribe(audio) for audio in speech[2:]),
    )
    assert patient.batch_sizes.get(len(speech) + 1) == 1, "the broken utterance should have shared a batch"
    assert [*results[:2], *results[3:]] == expected, "the others in its batch still get their transcripts"
    assert isinstance(results[2], ValueError) and "1-D or 2-D" in str(results[2]), results[2]
    with pytest.raises(ValueError, match="1-D or 2-D"):  # alone: the batch's exception reaches its one waiter
        await patient._batcher.submit(broken)
    assert await asyncio.gather(*(patient.transcribe(audio) for audio in speech)) == expected, "still working"


async def test_close_fails_queued_utterances_and_later_ones(model_dir, speech):
    asr = SenseVoiceASR(model_dir, device="cpu", max_batch=1)  # one at a time, so the rest queue behind it
    long = np.concatenate(speech)
    alone = await asr.transcribe(long)
    decoding = threading.Event()
    asr._model.model.encoder.register_forward_hook(lambda *_: decoding.set())
    tasks = [asyncio.create_task(asr.transcribe(long)) for _ in range(6)]
    assert await asyncio.to_thread(decoding.wait, 30), "the first utterance never reached the encoder"
    await asyncio.to_thread(asr.close)  # returns once the utterance in progress is done
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    assert 1 <= len(finished) < len(tasks) and finished == [alone] * len(finished)
    assert outcomes[: len(finished)] == finished, "the queue runs in order: those that ran came first"
    assert all(isinstance(o, BatcherClosed) for o in outcomes[len(finished) :]), outcomes
    with pytest.raises(BatcherClosed):
        await asr.transcribe(long)


@pytest.mark.parametrize("setting", ["language", "use_itn"])
async def test_settings_reach_the_model(model_dir, speech, setting):
    values = ["zh", "en", "yue", "ja", "ko"] if setting == "language" else [True, False]
    outputs = set()
    for value in values:
        asr = SenseVoiceASR(model_dir, device="cpu", **{setting: value})
        outputs.add(await asr.transcribe_raw(speech[3]))
        asr.close()
    assert len(outputs) > 1, f"every {setting} gave the same output: the setting does not reach the model"


def test_no_network_during_load_and_transcription(model_dir, speech, monkeypatch):
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    asr = SenseVoiceASR(model_dir, device="cpu")
    asyncio.run(asr.transcribe(speech[0]))
    asr.close()
    assert attempts == []


# --- errors ---------------------------------------------------------------------------------------------


def test_missing_directory_names_every_file_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(ModelMissing) as error:
        SenseVoiceASR(tmp_path / "sensevoice-small")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"took {elapsed:.1f} s: it waited for funasr's hub retries"
    assert isinstance(error.value, EngineUnavailable)
    for name in REAL_FILES:
        assert str(tmp_path / "sensevoice-small" / name) in str(error.value)
    assert "models pull" in str(error.value)


def test_incomplete_directory_names_only_what_is_missing(tmp_path, model_dir):
    partial = shutil.copytree(model_dir, tmp_path / "sensevoice-small")
    (partial / "am.mvn").unlink()
    (partial / "configuration.json").unlink()
    with pytest.raises(ModelMissing) as error:
        SenseVoiceASR(partial)
    assert error.value.missing == ["configuration.json", "am.mvn"]
    assert "model.pt" not in str(error.value)


def test_truncated_weights_are_an_engine_error(tmp_path, model_dir):
    broken = shutil.copytree(model_dir, tmp_path / "sensevoice-small")
    weights = (broken / "model.pt").read_bytes()
    (broken / "model.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(EngineUnavailable, match="could not be loaded"):
        SenseVoiceASR(broken, device="cpu")


def test_weights_that_do_not_fit_the_config_are_an_error_not_random_layers(tmp_path, model_dir):
    other = shutil.copytree(model_dir, tmp_path / "sensevoice-small")
    config = (other / "config.yaml").read_text()
    assert "output_size: 64" in config
    (other / "config.yaml").write_text(config.replace("output_size: 64", "output_size: 32"))
    with pytest.raises(EngineUnavailable, match="size mismatch"):
        SenseVoiceASR(other, device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"language": "de"}, "language must be one of auto, zh, en, yue, ja, ko; got 'de'"),
        ({"language": "EN"}, "got 'EN'"),
        ({"tags": "emoji"}, "tags must be one of strip, expose"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda"),
        ({"threads": 0}, "threads must be at least 1"),
        ({"max_batch": 0}, "max_batch must be at least 1"),
        ({"max_wait_ms": -1}, "max_wait_ms must not be negative"),
    ],
)
def test_invalid_settings_are_rejected_before_loading(tmp_path, kwargs, message):
    # The directory does not exist: a ValueError (not ModelMissing) shows the check came first.
    with pytest.raises(ValueError, match=message):
        SenseVoiceASR(tmp_path / "sensevoice-small", **kwargs)


def test_device_resolution(model_dir):
    assert SenseVoiceASR(model_dir).device == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EngineUnavailable, match="no CUDA device"):
            SenseVoiceASR(model_dir, device="cuda")


def test_loading_leaves_logging_and_warnings_alone(model_dir):
    """In a fresh interpreter: importing and loading funasr must not configure the app's logging or warnings,
    nor write its INFO chatter into logging the app did configure."""
    script = textwrap.dedent(
        f"""
        import json, logging, warnings
        from avatar_runtime.engines.asr_sensevoice import SenseVoiceASR  # imports numpy, not funasr
        root, filters = logging.getLogger(), list(warnings.filters)
        SenseVoiceASR({str(model_dir)!r}, device="cpu")  # first load: imports funasr, logging unconfigured
        bare = {{"handlers": len(root.handlers), "level": root.level, "filters_kept": warnings.filters == filters}}
        records = []
        app_handler = logging.Handler()
        app_handler.emit = records.append
        root.addHandler(app_handler)
        root.setLevel(logging.INFO)
        SenseVoiceASR({str(model_dir)!r}, device="cpu")  # second load: the app has configured logging
        messages = [r.getMessage() for r in records]
        configured = {{"handlers": len(root.handlers), "level": root.level, "records": messages}}
        print(json.dumps({{"bare": bare, "configured": configured}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Loading pretrained params" not in done.stderr, "funasr's INFO lines reached stderr"
    assert report["bare"] == {"handlers": 0, "level": logging.WARNING, "filters_kept": True}, report
    assert report["configured"] == {"handlers": 1, "level": logging.INFO, "records": []}, report
