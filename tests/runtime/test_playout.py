"""The playout clock: frames leave with the audio they belong to, stamped on the track's timeline."""

import numpy as np
from avatar_runtime.pipeline.playout import Playout

RATE, FPS, PULL = 48000, 30, 960


def _frames(n: int) -> list[np.ndarray]:
    return [np.full(52, i / 100, dtype=np.float32) for i in range(n)]


def _pull_all(playout: Playout, pulls: int):
    return [playout.pull(PULL) for _ in range(pulls)]


def test_silence_when_idle_and_origin_at_first_reply_sample():
    playout = Playout(RATE, FPS)
    for result in _pull_all(playout, 5):
        assert not result.samples.any() and not result.frames
    playout.add_audio(1, np.ones(RATE // 2, dtype=np.float32), "hello there")  # 0.5 s → 15 frames
    playout.add_frames(1, _frames(15))
    playout.end_turn(1)
    results = _pull_all(playout, 30)
    assert results[0].started_turn == 1
    frames = [f for r in results for f in r.frames]
    assert [f.index for f in frames] == list(range(15))
    # pts is measured from the session's first reply sample, so the first frame is at 0 and they step 1/30 s.
    assert [f.pts_ms for f in frames] == [round(i * 1000 / 30) for i in range(15)]
    assert frames[-1].last and not any(f.last for f in frames[:-1])
    finished = [r.finished_turn for r in results if r.finished_turn is not None]
    assert finished == [1]
    played = np.concatenate([r.samples for r in results])
    assert played.sum() == RATE // 2


def test_each_frame_is_released_in_the_pull_that_plays_its_first_sample():
    playout = Playout(RATE, FPS)
    playout.add_audio(1, np.ones(RATE, dtype=np.float32))
    playout.add_frames(1, _frames(30))
    playout.end_turn(1)
    for pull_index in range(50):
        result = playout.pull(PULL)
        start, end = pull_index * PULL, (pull_index + 1) * PULL
        for frame in result.frames:
            assert start <= round(frame.index * RATE / FPS) < end


def test_underrun_delays_the_timeline_instead_of_misaligning_frames():
    playout = Playout(RATE, FPS)
    playout.add_audio(1, np.ones(1600, dtype=np.float32))  # exactly frame 0's period
    playout.add_frames(1, _frames(1))
    first = _pull_all(playout, 3)  # 1600 samples of audio, then the buffer runs dry: silence
    assert [f.pts_ms for r in first for f in r.frames] == [0]
    playout.add_audio(1, np.ones(1600, dtype=np.float32))
    playout.add_frames(1, [np.ones(52, dtype=np.float32)])
    later = playout.pull(PULL)
    # Frame 1 plays now, at track sample 3·960 = 2880 → 60 ms, not at its nominal 33 ms.
    assert [f.pts_ms for f in later.frames] == [60]


def test_interrupt_reports_what_was_heard_and_clears():
    playout = Playout(RATE, FPS)
    playout.add_audio(1, np.ones(RATE, dtype=np.float32), "one two three four")
    playout.add_audio(1, np.ones(RATE, dtype=np.float32), "five six seven eight")
    playout.add_frames(1, _frames(60))
    _pull_all(playout, 75)  # 1.5 s: the first sentence and half of the second
    heard = playout.interrupt()
    assert heard == {1: "one two three four five six"}
    assert not playout.busy
    assert not playout.pull(PULL).samples.any()


def test_pieces_of_one_sentence_count_once_in_what_was_heard():
    """The reply worker queues each sentence in 200 ms pieces, all carrying the sentence's text."""
    playout = Playout(RATE, FPS)
    for sentence, text in enumerate(["one two three four", "five six seven eight"]):
        for _ in range(5):
            playout.add_audio(1, np.ones(RATE // 5, dtype=np.float32), text, sentence)
    playout.add_frames(1, _frames(60))
    _pull_all(playout, 75)  # 1.5 s: the first sentence and half of the second
    assert playout.interrupt() == {1: "one two three four five six"}


def test_a_turn_without_audio_still_finishes():
    playout = Playout(RATE, FPS)
    playout.end_turn(3)
    assert playout.pull(PULL).finished_turn == 3


def test_cues_leave_with_the_first_sample_after_them():
    playout = Playout(RATE, FPS)
    playout.add_cue(1, "before everything")
    playout.add_audio(1, np.ones(PULL * 3, dtype=np.float32), "first")
    playout.add_cue(1, "between")
    playout.add_audio(1, np.ones(PULL * 2, dtype=np.float32), "second")
    playout.add_cue(1, "after the audio")
    assert not playout.speaking
    results = _pull_all(playout, 4)
    assert playout.speaking
    assert [r.cues for r in results] == [[(1, "before everything")], [], [], [(1, "between")]]
    playout.end_turn(1)
    late = _pull_all(playout, 2)
    assert late[0].cues == [(1, "after the audio")] and late[0].finished_turn == 1 and not playout.speaking


def test_interrupt_drops_cues_not_yet_reached():
    playout = Playout(RATE, FPS)
    playout.add_audio(1, np.ones(PULL, dtype=np.float32))
    playout.add_cue(1, "never")
    playout.add_audio(1, np.ones(PULL, dtype=np.float32))
    playout.pull(PULL // 2)
    playout.interrupt()
    assert all(not r.cues for r in _pull_all(playout, 3))


def test_a_timeline_started_before_the_first_reply_stamps_it_later():
    playout = Playout(RATE, FPS)
    playout.pull(PULL)
    assert playout.pull(PULL).start_ms is None  # no origin yet
    playout.start_timeline()
    quiet = _pull_all(playout, 10)
    assert [r.start_ms for r in quiet[:3]] == [0.0, 20.0, 40.0]
    playout.add_audio(1, np.ones(RATE // 10, dtype=np.float32))
    playout.add_frames(1, _frames(3))
    playout.end_turn(1)
    frames = [f for r in _pull_all(playout, 10) for f in r.frames]
    assert [f.pts_ms for f in frames] == [200, 233, 267]  # on the same timeline as the quiet pulls
