"""Embedded Audio2Expression engine (`engines/a2e_audio.py`) on real espeak-ng speech made at test time."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from avatar_runtime.audio import resample
from avatar_runtime.engines.a2e_audio import AudioExpressionEngine, viseme_class
from avatar_runtime.engines.base import ExpressionEngine, ExpressionStream, PhonemeMark, SpeechChunk
from avatar_runtime.protocol import ARKIT_BLENDSHAPES, EXPRESSION_FPS, INDEX

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng CLI")

SENTENCE = "Hello world, the quick brown fox jumps over the lazy dog. Should we sip soup or smooth ice tea?"
BLINKS = [INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]]
NON_BLINK = [i for i in range(len(ARKIT_BLENDSHAPES)) if i not in BLINKS]


def espeak(tmp_dir: Path, text: str, voice: str = "en") -> tuple[np.ndarray, int]:
    """Speak `text` with espeak-ng; returns mono float32 samples and the sample rate (22050)."""
    path = tmp_dir / f"speech{abs(hash((text, voice)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0), wav.getframerate()


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("espeak")


@pytest.fixture(scope="module")
def sentence(tmp_dir: Path) -> tuple[np.ndarray, int]:
    return espeak(tmp_dir, SENTENCE)


def run(samples: np.ndarray, rate: int, sizes: list[int] | None = None, seed: int = 1, **chunk_kw) -> np.ndarray:
    """Feed audio in chunks of `sizes` (cycled; None = one chunk) through a fresh stream; (n, 52) frames."""
    stream = AudioExpressionEngine(seed=seed).stream()
    frames, pos, i = [], 0, 0
    while pos < len(samples) or (pos == 0 and len(samples) == 0):
        size = len(samples) if sizes is None else sizes[i % len(sizes)]
        frames += stream.process(SpeechChunk(samples[pos : pos + size], rate, **chunk_kw))
        pos, i = pos + max(size, 1), i + 1
    frames += stream.finish()
    return np.array(frames)


def frame_rms(samples: np.ndarray, rate: int, n: int) -> np.ndarray:
    """RMS of the input audio in each frame period [k/30, (k+1)/30)."""
    edges = [round(k * rate / EXPRESSION_FPS) for k in range(n + 1)]
    spans = zip(edges[:-1], edges[1:], strict=True)
    return np.array([np.sqrt(np.mean(np.square(samples[a:b]))) if b > a else 0.0 for a, b in spans])


def pad(samples: np.ndarray, rate: int, before_s: float, after_s: float) -> np.ndarray:
    zeros = np.zeros
    return np.concatenate([zeros(int(before_s * rate), np.float32), samples, zeros(int(after_s * rate), np.float32)])


def test_engine_implements_the_protocols() -> None:
    engine = AudioExpressionEngine()
    assert isinstance(engine, ExpressionEngine)
    assert engine.name == "audio" and engine.fps == EXPRESSION_FPS == 30
    assert isinstance(engine.stream(), ExpressionStream)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 48000])
@pytest.mark.parametrize("sizes", [[1, 7, 313, 1001, 4097], [733], [12345, 3]])
def test_frame_count_contract(sentence: tuple[np.ndarray, int], rate: int, sizes: list[int]) -> None:
    samples, src_rate = sentence
    samples = resample(samples, src_rate, rate)[: int(1.7771 * rate)]  # a duration that is no whole frame count
    stream = AudioExpressionEngine(seed=0).stream()
    emitted, pos, i = 0, 0, 0
    while pos < len(samples):
        chunk = samples[pos : pos + sizes[i % len(sizes)]]
        emitted += len(stream.process(SpeechChunk(chunk, rate)))
        pos, i = pos + len(chunk), i + 1
        # Every whole period covered so far, no more, no later.
        assert emitted == math.floor(Fraction(pos, rate) * EXPRESSION_FPS)
    emitted += len(stream.finish())
    assert emitted == math.ceil(Fraction(len(samples), rate) * EXPRESSION_FPS) == 54
    assert stream.finish() == []


def test_frame_count_with_rate_change_and_low_rate(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    stream = AudioExpressionEngine().stream()
    a, b = samples[:10001], resample(samples[10001:20000], rate, 8000)
    n = len(stream.process(SpeechChunk(a, rate))) + len(stream.process(SpeechChunk(b, 8000)))
    duration = Fraction(len(a), rate) + Fraction(len(b), 8000)
    assert math.floor(duration * EXPRESSION_FPS) - 1 <= n <= math.floor(duration * EXPRESSION_FPS)
    assert n + len(stream.finish()) == math.ceil(duration * EXPRESSION_FPS)


def test_frames_are_float32_arkit_vectors_in_range(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    stream = AudioExpressionEngine().stream()
    frames = stream.process(SpeechChunk(samples * 3.0, rate)) + stream.finish()  # clipped-loud input too
    assert frames
    for frame in frames:
        assert frame.dtype == np.float32 and frame.shape == (52,)
        assert np.all(np.isfinite(frame)) and frame.min() >= 0.0 and frame.max() <= 1.0
    bad = samples[:5000].copy()
    bad[100:200] = np.nan
    out = run(bad, rate)
    assert np.all(np.isfinite(out)) and out.min() >= 0.0


@pytest.mark.parametrize("rate", [22050, 48000])
def test_chunking_does_not_change_frames(sentence: tuple[np.ndarray, int], rate: int) -> None:
    samples, src_rate = sentence
    samples = resample(samples, src_rate, rate)
    whole = run(samples, rate)
    sizes = np.random.default_rng(3).integers(1, 5000, size=64).tolist()
    for chunking in (sizes, [rate // 50], [rate // 30]):  # random, 20 ms, exactly one frame period
        assert np.abs(run(samples, rate, chunking) - whole).max() < 1e-3


def test_jaw_follows_loudness(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    samples = pad(samples, rate, 0.8, 1.0)
    frames = run(samples, rate)
    jaw = frames[:, INDEX["jawOpen"]]
    rms = frame_rms(samples, rate, len(frames))
    assert np.corrcoef(rms, jaw)[0, 1] > 0.5
    speech = rms > 10 ** (-35 / 20)
    padding = np.concatenate([np.arange(20), np.arange(len(frames) - 20, len(frames))])
    assert jaw[speech].mean() > 0.08 and jaw[speech].mean() > 5 * jaw[padding].mean() + 1e-6
    assert 0.05 <= np.percentile(jaw[speech], 95) <= 0.45  # LAM's real sequence: p95 0.23, max 0.30
    lower = frames[:, INDEX["mouthLowerDownLeft"]]
    assert np.corrcoef(lower, jaw)[0, 1] > 0.9  # the lips part with the jaw


def test_vowel_and_consonant_shapes(tmp_dir: Path) -> None:
    """Rounded /u/ puckers, open /a/ drops the jaw, spread /i/ and sibilant /s/ stretch the mouth."""

    def mean_shape(phonemes: str) -> dict[str, float]:
        samples, rate = espeak(tmp_dir, f"[[{phonemes}]]")
        frames = run(samples, rate)
        rms = frame_rms(samples, rate, len(frames))
        loud = 20 * np.log10(rms + 1e-9) > 20 * np.log10(rms.max()) - 8  # the steady part of the sound
        return {name: float(frames[loud, INDEX[name]].mean()) for name in INDEX}

    u, a, i, s = (mean_shape(p) for p in ("u:", "A:", "i:", "ss"))
    assert u["mouthPucker"] > a["mouthPucker"] + 0.05 and u["mouthPucker"] > i["mouthPucker"] + 0.05
    assert a["jawOpen"] > u["jawOpen"] + 0.1 and a["jawOpen"] > i["jawOpen"] + 0.1 and a["jawOpen"] > s["jawOpen"]
    assert i["mouthStretchLeft"] > u["mouthStretchLeft"] + 0.03
    assert s["mouthStretchLeft"] > a["mouthStretchLeft"] + 0.03


def test_silence_and_noise_below_gate_give_a_neutral_face() -> None:
    rate = 22050
    silence = np.zeros(2 * rate, np.float32)
    noise = (np.random.default_rng(0).standard_normal(2 * rate) * 10 ** (-60 / 20)).astype(np.float32)
    for samples in (silence, noise):
        frames = run(samples, rate, [rate // 10])
        assert np.abs(frames[:, NON_BLINK]).max() < 0.02


def test_mouth_returns_to_neutral_after_speech(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    samples = pad(samples, rate, 0.0, 1.5)
    frames = run(samples, rate)
    speech_end = np.nonzero(frame_rms(samples, rate, len(frames)) > 10 ** (-45 / 20))[0].max()
    assert frames[: speech_end + 1, INDEX["jawOpen"]].max() > 0.2
    assert np.abs(frames[speech_end + 15 :, NON_BLINK]).max() < 0.02  # 0.5 s after the last sound


def test_blinks_at_plausible_intervals() -> None:
    rate = 16000
    samples = np.zeros(20 * rate, np.float32)
    for seed in (1, 2, 3):
        frames = run(samples, rate, [rate], seed=seed)
        assert np.all(np.isfinite(frames))
        left, right = frames[:, INDEX["eyeBlinkLeft"]], frames[:, INDEX["eyeBlinkRight"]]
        assert np.array_equal(left, right)  # both eyes together
        closed = left > 0.5
        onsets = np.nonzero(closed[1:] & ~closed[:-1])[0] + 1
        assert 3 <= len(onsets) <= 8
        assert onsets[0] / EXPRESSION_FPS < 4.5
        intervals = np.diff(onsets) / EXPRESSION_FPS
        assert intervals.min() >= 2.5 and intervals.max() <= 6.5
        for onset in onsets:  # one blink lasts ~150–250 ms and nearly closes the lids
            start, end = onset, onset
            while start > 0 and left[start - 1] > 0.02:
                start -= 1
            while end < len(left) and left[end] > 0.02:
                end += 1
            assert 4 <= end - start <= 8 and left[start:end].max() > 0.8
    assert not np.array_equal(run(samples, rate, seed=1), run(samples, rate, seed=2))


def test_brows_rise_on_emphasis_only(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    quiet_then_loud = np.concatenate([samples * 0.25, samples[: len(samples) // 3] * 2.0])
    frames = run(quiet_then_loud, rate)
    brow = frames[:, INDEX["browInnerUp"]]
    boundary = int(len(samples) / rate * EXPRESSION_FPS)
    assert brow[boundary:].max() > 0.1  # the suddenly louder phrase stands out
    assert np.mean(brow > 0.05) < 0.3  # …but brows stay calm most of the time


def test_phoneme_marks_shape_the_lips(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    part = samples[: int(2.0 * rate)]
    marks = [PhonemeMark(ms, ph) for ms in (300, 800, 1300) for ph in ("b",)] + [
        PhonemeMark(ms + 90, "ˈaʊ") for ms in (300, 800, 1300)
    ]
    marks.sort(key=lambda m: m.start_ms)
    plain, marked = run(part, rate), run(part, rate, phonemes=marks)
    at = [round(ms / 1000 * EXPRESSION_FPS) + 1 for ms in (300, 800, 1300)]  # frames inside the 90 ms closure
    for k in at:
        assert marked[k, INDEX["mouthPressLeft"]] > plain[k, INDEX["mouthPressLeft"]] + 0.1
        assert marked[k, INDEX["mouthClose"]] > plain[k, INDEX["mouthClose"]] + 0.08
        assert marked[k, INDEX["jawOpen"]] < plain[k, INDEX["jawOpen"]] + 0.01
    far = np.r_[0:5, 60 : len(plain)]  # no mark near: same as audio-only
    assert np.abs(marked[far] - plain[far]).max() < 1e-6

    # Marks are relative to their chunk: the same mark in a second chunk lands at the same turn time.
    split = int(0.5 * rate)
    stream = AudioExpressionEngine(seed=1).stream()
    frames = stream.process(SpeechChunk(part[:split], rate))
    frames += stream.process(
        SpeechChunk(part[split:], rate, phonemes=[PhonemeMark(ms - 500, "m") for ms in (800, 1300)])
    )
    frames = np.array(frames + stream.finish())
    single = run(part, rate, phonemes=[PhonemeMark(ms, "m") for ms in (800, 1300)])
    assert np.abs(frames - single).max() < 1e-3


@pytest.mark.parametrize(
    ("phoneme", "cls"),
    [("b", "bilabial"), ("m", "bilabial"), ("p", "bilabial"), ("f", "labiodental"), ("v", "labiodental"),
     ("uː", "rounded"), ("u:", "rounded"), ("w", "rounded"), ("əʊ", "rounded"), ("oU", "rounded"), ("ˈɔː", "rounded"),
     ("ɑː", "open"), ("A:", "open"), ("ˈaɪ", "open"), ("iː", "spread"), ("I", "spread"), ("s", "alveolar"),
     ("ʃ", "postalveolar"), ("S", "postalveolar"), ("tʃ", "postalveolar"), ("ə", None), ("_", None), ("", None)],
)  # fmt: skip
def test_viseme_classes_from_ipa_and_espeak(phoneme: str, cls: str | None) -> None:
    assert viseme_class(phoneme) == cls


def test_cpu_cost_is_small(sentence: tuple[np.ndarray, int]) -> None:
    samples, rate = sentence
    samples = np.tile(samples, 2)  # ~12 s
    run(samples[:rate], rate)  # warm up numpy's FFT
    start = time.process_time()
    run(samples, rate, [rate // 10])  # 100 ms chunks, a typical TTS stream
    per_audio_second = (time.process_time() - start) / (len(samples) / rate)
    assert per_audio_second < 0.005, f"{per_audio_second * 1000:.2f} ms CPU per second of audio"
