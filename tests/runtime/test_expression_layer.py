"""The expression layer: moods and gestures on speech frames, ambient life, cross-fades (pure, timeline seconds)."""

from __future__ import annotations

import numpy as np
import pytest
from avatar_runtime.expression.ambient import AmbientMotion
from avatar_runtime.expression.catalogue import GESTURES, MOODS, SPEECH_INDICES, SPEECH_SHAPES
from avatar_runtime.expression.cues import ExpressionCue
from avatar_runtime.expression.layer import ExpressionLayer, SparseAmbient, frames_due
from avatar_runtime.protocol import INDEX, NUM_BLENDSHAPES

FPS = 30
SMILE = [INDEX["mouthSmileLeft"], INDEX["mouthSmileRight"]]
BROWS_UP = [INDEX["browInnerUp"], INDEX["browOuterUpLeft"], INDEX["browOuterUpRight"]]
GAZE = [INDEX[n] for n in ("eyeLookOutRight", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookInRight")]


def speech_frames(n: int, seed: int = 0) -> np.ndarray:
    """Speech-like A2E frames: jaw and lip shapes moving, everything else small."""
    rng = np.random.default_rng(seed)
    frames = rng.uniform(0.0, 0.05, (n, NUM_BLENDSHAPES)).astype(np.float32)
    t = np.arange(n) / FPS
    frames[:, INDEX["jawOpen"]] = 0.25 + 0.2 * np.sin(2 * np.pi * 3 * t)
    frames[:, INDEX["mouthFunnel"]] = np.clip(0.3 * np.sin(2 * np.pi * 1.3 * t), 0, None)
    frames[:, INDEX["mouthClose"]] = np.clip(0.2 * np.cos(2 * np.pi * 2.1 * t), 0, None)
    return frames


def run_speech(layer: ExpressionLayer, frames: np.ndarray, start_s: float = 0.0) -> np.ndarray:
    return np.array([layer.speech_frame(f, start_s + i / FPS) for i, f in enumerate(frames)])


def test_catalogue_never_touches_articulation():
    for name, offsets in MOODS.items():
        assert not set(offsets) & SPEECH_SHAPES, name
        assert all(0 < v <= 1 for v in offsets.values()), name
    for name, gesture in GESTURES.items():
        assert not set(gesture.offsets) & SPEECH_SHAPES, name


@pytest.mark.parametrize("mood", [m for m in MOODS if m != "neutral"])
def test_every_mood_leaves_the_speech_shapes_exactly_as_a2e_made_them(mood):
    frames = speech_frames(90)
    layer = ExpressionLayer(seed=1)
    layer.apply_cue(ExpressionCue("mood", mood, 1.0), 0.0)
    layer.apply_cue(ExpressionCue("gesture", "shrug"), 0.5)
    out = run_speech(layer, frames)
    assert np.array_equal(out[:, SPEECH_INDICES], frames[:, SPEECH_INDICES])
    # ... while the face does change, toward the mood's own shapes.
    shapes = [INDEX[n] for n in MOODS[mood]]
    assert out[45:, shapes].mean() > frames[45:, shapes].mean() + 0.1


def test_happy_raises_the_smile_with_a_smooth_onset_and_decay():
    frames = np.zeros((120, NUM_BLENDSHAPES), dtype=np.float32)
    layer = ExpressionLayer(seed=1)
    layer.speech_frame(frames[0], 0.0)  # the layer's clock starts
    layer.apply_cue(ExpressionCue("mood", "happy", 0.8), 0.0)
    rising = run_speech(layer, frames[:60], 1 / FPS)[:, SMILE[0]]
    peak = MOODS["happy"]["mouthSmileLeft"] * 0.8
    assert np.all(np.diff(rising) >= 0) and rising[-1] == pytest.approx(peak, abs=0.01)
    assert rising[2] < 0.5 * peak  # no snap: it takes a few frames
    assert np.abs(np.diff(rising)).max() < 0.25 * peak
    layer.apply_cue(ExpressionCue("mood", "neutral", 0.0), 2.0)
    falling = run_speech(layer, frames[:60], 2.0)[:, SMILE[0]]
    assert np.all(np.diff(falling) <= 0) and falling[-1] < 0.05 * peak
    assert np.abs(np.diff(falling)).max() < 0.15 * peak  # decays slower than it rises


def test_mouth_of_a_feeling_yields_to_rounded_lips():
    layer = ExpressionLayer(seed=1)
    layer.set_mood("happy", 1.0)
    rest = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
    oo = rest.copy()
    oo[INDEX["mouthFunnel"]] = oo[INDEX["mouthPucker"]] = 0.4
    for i in range(60):  # settle on the mood
        layer.speech_frame(rest, i / FPS)
    smile_at_rest = layer.speech_frame(rest, 2.0)[SMILE[0]]
    smile_in_oo = layer.speech_frame(oo, 2.0 + 1 / FPS)[SMILE[0]]
    assert smile_in_oo < 0.6 * smile_at_rest
    assert layer.speech_frame(oo, 2.1)[INDEX["mouthFunnel"]] == pytest.approx(0.4)


def test_a_gesture_comes_and_goes():
    layer = ExpressionLayer(seed=1)
    layer.apply_cue(ExpressionCue("gesture", "wink"), 1.0)
    rest = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
    track = np.array([layer.speech_frame(rest, t)[INDEX["eyeBlinkLeft"]] for t in np.arange(0.8, 2.0, 1 / FPS)])
    assert track[:5].max() == 0.0 and track.max() > 0.9 and track[-5:].max() == 0.0
    assert layer.speech_frame(rest, 1.2)[INDEX["eyeBlinkRight"]] == 0.0  # a wink is one eye


def test_passing_expression_returns_to_the_mood():
    layer = ExpressionLayer(seed=1)
    layer.set_mood("happy", 0.7)
    rest = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
    for i in range(60):
        layer.speech_frame(rest, i / FPS)
    layer.apply_cue(ExpressionCue("expression", "surprised", 1.0, duration_s=1.0), 2.0)
    during = layer.speech_frame(rest, 2.5)
    after = layer.speech_frame(rest, 3.5)
    assert during[INDEX["eyeWideLeft"]] > 0.4 and after[INDEX["eyeWideLeft"]] == 0.0
    assert after[SMILE[0]] == pytest.approx(MOODS["happy"]["mouthSmileLeft"] * 0.7, abs=0.01)


def test_strength_zero_is_lip_sync_only():
    frames = speech_frames(60)
    layer = ExpressionLayer(strength=0.0, seed=1)
    layer.apply_cue(ExpressionCue("mood", "angry", 1.0), 0.0)
    layer.apply_cue(ExpressionCue("gesture", "eyebrow_raise"), 0.2)
    assert np.allclose(run_speech(layer, frames), frames)


def ambient_series(layer: ExpressionLayer, seconds: float, fps: int = 15, start: float = 0.0) -> np.ndarray:
    return np.array([layer.ambient_frame(start + i / fps) for i in range(int(seconds * fps))])


def test_idle_frames_are_alive_blinks_gaze_and_breathing():
    frames = ambient_series(ExpressionLayer(seed=3), 12.0)
    blink = frames[:, INDEX["eyeBlinkLeft"]]
    closed = np.flatnonzero(blink > 0.5)
    blinks = 1 + int(np.sum(np.diff(closed) > 3)) if len(closed) else 0
    assert 2 <= blinks <= 8  # every 2–6 s
    gaze = frames[:, GAZE].max(axis=1)
    assert gaze.std() > 0.03 and len(np.unique(np.round(gaze, 2))) > 5  # saccades to different targets
    jaw = frames[:, INDEX["jawOpen"]]
    assert 0.01 < jaw.max() <= 0.03 and jaw.min() < 0.003  # breathing, not talking
    assert np.all(frames >= 0) and np.all(frames <= 1)


def test_listening_looks_at_the_user_with_attentive_brows():
    layer = ExpressionLayer(seed=4)
    idle = ambient_series(layer, 8.0)
    layer.set_activity("listening", 8.0)
    listening = ambient_series(layer, 8.0, start=8.0)[8:]  # after the 0.3 s ease-in
    assert listening[:, BROWS_UP].mean() > idle[:, BROWS_UP].mean() + 0.06
    assert listening[:, GAZE].max(axis=1).mean() < 0.5 * idle[:, GAZE].max(axis=1).mean()
    assert listening.std(axis=0).max() > 0.01  # still alive, not frozen


def test_thinking_looks_up_and_aside():
    layer = ExpressionLayer(seed=5)
    layer.set_activity("thinking", 0.0)
    frames = ambient_series(layer, 3.0)[5:]
    assert frames[:, INDEX["eyeLookUpLeft"]].mean() > 0.2


def test_the_same_seed_gives_the_same_life_and_another_seed_another():
    a, b = ambient_series(ExpressionLayer(seed=7), 5.0), ambient_series(ExpressionLayer(seed=7), 5.0)
    c = ambient_series(ExpressionLayer(seed=8), 5.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_user_emotion_and_pauses_get_a_reaction():
    layer = ExpressionLayer(seed=1)
    base = ambient_series(ExpressionLayer(seed=1), 4.0)
    layer.react_to_user("happy", 1.0)
    layer.acknowledge(3.0)
    reacted = ambient_series(layer, 4.0)
    at = int(1.8 * 15)
    assert reacted[at, SMILE[0]] > base[at, SMILE[0]] + 0.15
    ack = int(3.15 * 15)
    assert reacted[ack, INDEX["browInnerUp"]] > base[ack, INDEX["browInnerUp"]] + 0.1
    ExpressionLayer(seed=1).react_to_user("neutral", 0.0)  # nothing to mirror: no error, no pulse


def test_speech_and_ambient_cross_fade_without_a_jump():
    layer = ExpressionLayer(seed=2)
    idle = ambient_series(layer, 2.0)
    speech = run_speech(layer, speech_frames(30), 2.0)
    after = ambient_series(layer, 1.0, start=3.0)
    non_speech = np.setdiff1d(np.arange(NUM_BLENDSHAPES), SPEECH_INDICES)
    # Entering speech: the non-speech shapes start where the idle face was.
    assert np.abs(speech[0, non_speech] - idle[-1, non_speech]).max() < 1e-6
    # Leaving it: the first idle frame is the last speech pose, then it eases (no big step between frames).
    assert np.abs(after[0] - speech[-1]).max() < 1e-6
    assert np.abs(np.diff(after[:6], axis=0)).max() < 0.2


def test_ambient_frames_are_due_at_their_rate():
    assert frames_due(None, 0.0, 15)
    assert not frames_due(0.0, 0.06, 15) and frames_due(0.0, 0.08, 15) and frames_due(0.0, 1 / 15, 15)


def test_ambient_motion_is_bounded_over_a_long_time():
    motion = AmbientMotion(seed=11)
    poses = np.array([motion.pose(t) for t in np.arange(0, 600, 1 / 15)])
    assert np.all(np.isfinite(poses)) and poses.min() >= 0 and poses.max() <= 1
    assert len(motion._blinks) < 10  # old blinks are forgotten


def test_the_mood_steps_back_while_the_user_talks_and_returns_when_the_avatar_speaks():
    layer = ExpressionLayer(seed=6)
    layer.set_mood("happy", 0.8)
    idle = ambient_series(layer, 3.0)[-5:, SMILE[0]].mean()
    layer.set_activity("listening", 3.0)
    listening = ambient_series(layer, 3.0, start=3.0)[-5:, SMILE[0]].mean()
    speaking = run_speech(layer, np.zeros((60, NUM_BLENDSHAPES), dtype=np.float32), 6.0)[-5:, SMILE[0]].mean()
    peak = MOODS["happy"]["mouthSmileLeft"] * 0.8
    assert idle == pytest.approx(peak, abs=0.02) and speaking == pytest.approx(peak, abs=0.02)
    assert listening < 0.5 * peak + 0.06  # 35 % of the mood, plus the attentive hint of a smile


def test_sparse_ambient_sends_a_third_of_the_frames_and_interpolation_retraces_the_rest():
    layer, sparse = ExpressionLayer(seed=3), SparseAmbient(min_change=0.01, max_interval_s=0.5)
    times = np.arange(0, 60, 1 / 15)
    full = np.array([layer.ambient_frame(t) for t in times])
    sent = [pair for t, w in zip(times, full, strict=True) for pair in sparse.offer(t, w)]
    sent_t, sent_w = np.array([t for t, _ in sent]), np.array([w for _, w in sent])
    assert 2.0 <= len(sent) / 60 <= 7.0  # of 15 computed per second
    assert np.diff(sent_t).max() <= 0.54 and np.all(np.diff(sent_t) > 0)  # the browser interpolates up to 0.6 s
    rebuilt = np.stack([np.interp(times, sent_t, sent_w[:, k]) for k in range(NUM_BLENDSHAPES)], axis=1)
    assert np.abs(rebuilt - full).max() <= 0.01  # what the browser shows is the face computed, within 0.01
    blinks = full[:, INDEX["eyeBlinkLeft"]] > 0.5
    assert blinks.any() and np.all(rebuilt[blinks, INDEX["eyeBlinkLeft"]] > 0.49)  # blinks keep their depth


def test_sparse_ambient_hands_over_its_last_unsent_frame_when_a_reply_starts():
    sparse = SparseAmbient()
    still = np.full(NUM_BLENDSHAPES, 0.2, dtype=np.float32)
    assert [t for t, _ in sparse.offer(0.0, still)] == [0.0]
    assert sparse.offer(1 / 15, still) == [] and sparse.offer(2 / 15, still) == []
    assert [t for t, _ in sparse.flush()] == [2 / 15]  # the pose the reply starts from, not 0.13 s older
    assert sparse.flush() == []
    assert [t for t, _ in sparse.offer(3.0, still)] == [3.0]  # after the reply: sent at once
