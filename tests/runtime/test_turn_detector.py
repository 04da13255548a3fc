"""End-of-turn detection from VAD probabilities: onset, speculative pause, resume, hangover."""

import numpy as np
import pytest
from avatar_runtime.config import VADConfig
from avatar_runtime.pipeline.turn_detector import (
    CHUNK_MS,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    looks_complete,
)


def _run(detector: TurnDetector, probabilities: list[float]):
    events = []
    for i, p in enumerate(probabilities):
        chunk = np.full(512, i, dtype=np.float32)  # each chunk tagged with its index
        events += [(i, e) for e in detector.push(chunk, p)]
    return events


def _ms(n_ms: int) -> int:
    return n_ms // CHUNK_MS


def test_onset_pause_and_end_with_speculation():
    cfg = VADConfig(min_speech_ms=96, pause_ms=192, hangover_ms=448, preroll_ms=128)
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 20
    events = _run(TurnDetector(cfg), probs)
    kinds = [type(e).__name__ for _, e in events]
    assert kinds == ["SpeechStarted", "SpeechPaused", "SpeechEnded"]
    (i_start, started), (i_pause, paused), (i_end, ended) = events
    assert i_start == 10 + _ms(96) - 1
    assert started.at_s == pytest.approx(10 * CHUNK_MS / 1000)
    assert i_pause == 29 + _ms(192)
    assert i_end == 29 + _ms(448)
    assert ended.speculated
    np.testing.assert_array_equal(paused.utterance, ended.utterance)
    # The utterance starts with the preroll before the onset and keeps at most 3 chunks of trailing silence.
    tags = ended.utterance[::512]
    assert tags[0] == 10 - _ms(128)
    assert tags[-1] == 29 + 3
    assert abs(ended.speech_end_s - 30 * CHUNK_MS / 1000) < 1e-9


def test_resume_after_pause_discards_speculation():
    cfg = VADConfig(pause_ms=192, hangover_ms=448)
    probs = [0.9] * 10 + [0.0] * 8 + [0.9] * 10 + [0.0] * 20
    events = [e for _, e in _run(TurnDetector(cfg), probs)]
    assert [type(e) for e in events] == [SpeechStarted, SpeechPaused, SpeechResumed, SpeechPaused, SpeechEnded]
    assert events[-1].speculated
    assert len(events[-1].utterance) > len(events[1].utterance)


def test_short_blips_are_not_speech_and_max_length_forces_an_end():
    cfg = VADConfig(min_speech_ms=96, max_utterance_s=2.0)
    blips = [0.9, 0.9, 0.0] * 10
    assert _run(TurnDetector(cfg), blips) == []
    events = [e for _, e in _run(TurnDetector(cfg), [0.9] * 200)]
    assert isinstance(events[0], SpeechStarted) and isinstance(events[1], SpeechEnded)
    assert not events[1].speculated


def test_a_complete_sentence_ends_the_turn_early_and_a_resume_cancels_that():
    cfg = VADConfig(pause_ms=160, complete_end_ms=224, hangover_ms=448)
    detector = TurnDetector(cfg)
    events = _run(detector, [0.9] * 10 + [0.0] * _ms(160))
    assert isinstance(events[-1][1], SpeechPaused)
    detector.end_early()  # the speculative transcript was a whole sentence
    more = _run(detector, [0.0] * (_ms(224) - _ms(160)))
    assert [type(e) for _, e in more] == [SpeechEnded]

    # After a resume the early end no longer applies: the full hangover is needed again.
    detector = TurnDetector(cfg)
    _run(detector, [0.9] * 10 + [0.0] * _ms(160))
    detector.end_early()
    events = [e for _, e in _run(detector, [0.9] * 3 + [0.0] * (_ms(448) - 1))]
    assert [type(e) for e in events] == [SpeechResumed, SpeechPaused]


def test_looks_complete():
    assert looks_complete("What is the weather like today in Paris?")
    assert looks_complete("Stop, please.")
    assert not looks_complete("I want to go to")
    assert not looks_complete("So I was thinking...")
    assert not looks_complete("Hi.")  # one word: too little to be sure
