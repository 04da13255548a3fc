"""One session's expression layer: mood and gestures blended onto speech frames, ambient frames in between.

Times are seconds on the reply audio track's timeline (the session passes the playout position), so a cue
that the playout releases with a sentence's first sample changes the face exactly when that sentence is heard.

- Mood: a lasting target (e.g. happy at 0.7) that the face approaches with a 0.25 s onset and leaves with a
  0.5 s decay (first-order, per blendshape: no snaps when moods change mid-sentence).
- Gestures and passing expressions: attack / hold / release envelopes (smoothstep) added on top.
- Speech frames keep every articulation shape exactly as Audio2Expression made it (`SPEECH_SHAPES`); the mouth
  shapes of feelings are softened while the lips round or close, so a smile does not fight an "oo".
- Ambient frames (no reply audio playing): `AmbientMotion` plus mood and gestures, cross-faded from the last
  speech pose over 0.25 s, and the other way round at the start of speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol import INDEX, NUM_BLENDSHAPES
from .ambient import Activity, AmbientMotion
from .catalogue import GESTURES, MOODS, MOUTH_EXPRESSION_INDICES, SPEECH_INDICES, Gesture, offsets_vector
from .cues import ExpressionCue

MOOD_ONSET_S = 0.25
MOOD_DECAY_S = 0.5
CROSSFADE_S = 0.25
# How much of the mood shows: all of it while speaking and idle; while the user talks (and the avatar takes in
# what was said) the face is mostly attention, so a happy reply's smile does not meet bad news.
_MOOD_GAIN = {"speaking": 1.0, "idle": 1.0, "listening": 0.35, "thinking": 0.35}
MOOD_GAIN_TAU_S = 0.4
# Reaction to the emotion ASR heard in the user's voice: (passing expression, intensity).
_REACTIONS = {"happy": ("happy", 0.5), "sad": ("sad", 0.45), "angry": ("sad", 0.3), "surprised": ("surprised", 0.4),
              "fearful": ("sad", 0.35), "disgusted": ("sad", 0.25)}  # fmt: skip
_ARTICULATION = [INDEX["mouthFunnel"], INDEX["mouthPucker"], INDEX["mouthClose"], INDEX["mouthRollLower"],
                 INDEX["mouthRollUpper"]]  # fmt: skip


def smoothstep(p: float) -> float:
    p = min(max(p, 0.0), 1.0)
    return p * p * (3 - 2 * p)


@dataclass
class _Pulse:
    offsets: np.ndarray
    start: float
    gesture: Gesture

    def level(self, t: float) -> float:
        g, x = self.gesture, t - self.start
        if x < 0 or x > g.duration_s:
            return 0.0
        if x < g.attack_s:
            return smoothstep(x / g.attack_s)
        if x < g.attack_s + g.hold_s:
            return 1.0
        return 1.0 - smoothstep((x - g.attack_s - g.hold_s) / g.release_s)


class ExpressionLayer:
    def __init__(self, strength: float = 1.0, seed: int | None = None) -> None:
        self.strength = strength
        self.ambient = AmbientMotion(seed)
        self.mood = "neutral"
        self.mood_intensity = 0.0
        self._mood_target = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
        self._mood_now = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
        self._mood_t: float | None = None
        self._mood_gain = 1.0
        self._pulses: list[_Pulse] = []
        self._last_out: np.ndarray | None = None
        self._last_kind: str | None = None  # "speech" | "ambient"
        self._switched_at = 0.0
        self._switched_from: np.ndarray | None = None

    # -- what happens ------------------------------------------------------------------------------------
    def apply_cue(self, cue: ExpressionCue, at_s: float) -> None:
        if cue.action == "mood":
            self.set_mood(cue.name, cue.intensity)
        elif cue.action == "expression":
            hold = max(0.0, (cue.duration_s or 1.5) - 0.6)
            shape = Gesture(MOODS[cue.name], 0.2, hold, 0.4)
            self._add_pulse(shape, cue.intensity, at_s)
        else:
            self._add_pulse(GESTURES[cue.name], cue.intensity / 0.7 if cue.intensity else 1.0, at_s)

    def set_mood(self, mood: str, intensity: float = 0.7) -> None:
        self.mood, self.mood_intensity = mood, intensity
        self._mood_target = offsets_vector(MOODS[mood], intensity * self.strength)

    def set_activity(self, activity: Activity, at_s: float) -> None:
        self.ambient.set_activity(activity, at_s)

    def acknowledge(self, at_s: float) -> None:
        """The user paused: a small listening reaction."""
        self._add_pulse(GESTURES["acknowledge"], 1.0, at_s)

    def react_to_user(self, emotion: str | None, at_s: float) -> None:
        """Mirror what ASR heard in the user's voice for a moment (happy → smile, sad → concern)."""
        reaction = _REACTIONS.get((emotion or "").lower())
        if reaction is not None:
            mood, level = reaction
            self._add_pulse(Gesture(MOODS[mood], 0.3, 1.2, 0.8), level, at_s)

    def _add_pulse(self, gesture: Gesture, scale: float, at_s: float) -> None:
        scale = min(max(scale, 0.0), 1.5) * self.strength
        self._pulses.append(_Pulse(offsets_vector(gesture.offsets, scale), at_s, gesture))

    # -- frames ------------------------------------------------------------------------------------------
    def speech_frame(self, weights: np.ndarray, t: float) -> np.ndarray:
        """An Audio2Expression frame with the expression added; articulation shapes are left exactly as they are."""
        offsets = self._offsets(t, "speaking")
        articulation = float(np.clip(weights[_ARTICULATION].sum() / 0.4, 0.0, 1.0))
        offsets[MOUTH_EXPRESSION_INDICES] *= 1.0 - 0.6 * articulation
        out = np.clip(weights + offsets, 0.0, 1.0).astype(np.float32)
        out[SPEECH_INDICES] = weights[SPEECH_INDICES]
        out = self._crossfade("speech", out, t, keep=SPEECH_INDICES)
        return out

    def ambient_frame(self, t: float) -> np.ndarray:
        """The pose while no reply audio plays: idle or listening life, plus mood and gestures."""
        out = np.clip(self.ambient.pose(t) + self._offsets(t, self.ambient.activity), 0.0, 1.0).astype(np.float32)
        return self._crossfade("ambient", out, t)

    def _offsets(self, t: float, activity: str) -> np.ndarray:
        dt = 0.0 if self._mood_t is None else max(0.0, t - self._mood_t)
        self._mood_t = t
        rising = np.abs(self._mood_target) > np.abs(self._mood_now)
        tau = np.where(rising, MOOD_ONSET_S, MOOD_DECAY_S)
        self._mood_now += (self._mood_target - self._mood_now) * (1.0 - np.exp(-dt / tau)).astype(np.float32)
        self._mood_gain += (_MOOD_GAIN[activity] - self._mood_gain) * (1.0 - np.exp(-dt / MOOD_GAIN_TAU_S))
        total = self._mood_now * np.float32(self._mood_gain)
        self._pulses = [p for p in self._pulses if t - p.start <= p.gesture.duration_s]
        for pulse in self._pulses:
            level = pulse.level(t)
            if level:
                total += pulse.offsets * level
        return total

    def _crossfade(self, kind: str, out: np.ndarray, t: float, keep: np.ndarray | None = None) -> np.ndarray:
        """Ease from the last pose of the other kind of frame, so speech ↔ ambient never snaps."""
        if self._last_kind is not None and kind != self._last_kind:
            self._switched_at, self._switched_from = t, self._last_out
        self._last_kind = kind
        if self._switched_from is not None:
            p = (t - self._switched_at) / CROSSFADE_S
            if p >= 1.0:
                self._switched_from = None
            else:
                mix = smoothstep(p)
                blended = self._switched_from + (out - self._switched_from) * mix
                if keep is not None:
                    blended[keep] = out[keep]  # the speech shapes start speaking at once
                out = blended.astype(np.float32)
        self._last_out = out
        return out


def frames_due(last_t: float | None, t: float, fps: float) -> bool:
    """Whether an ambient frame is due at `t` given the previous one at `last_t` (a frame every 1/fps s)."""
    return last_t is None or t - last_t >= 1.0 / fps - 1e-6


class SparseAmbient:
    """Which ambient frames go on the wire: a silent face changes little from one frame to the next.

    A frame is sent when the face has moved more than `min_change` (a weight) since the last one sent, and at
    least every `max_interval_s` (the browser interpolates between ambient frames up to 0.6 s apart, and holds
    the last one). Before a frame sent for a change, the last frame not sent goes first: the browser's linear
    interpolation then follows the still part and the movement (a blink, a saccade) at their real speed.
    `flush()` (a reply starts) returns that last unsent frame, so the face leaves its true idle pose.
    """

    def __init__(self, min_change: float = 0.01, max_interval_s: float = 0.5) -> None:
        self.min_change = min_change
        self.max_interval_s = max_interval_s
        self._sent: np.ndarray | None = None
        self._sent_t = 0.0
        self._unsent: tuple[float, np.ndarray] | None = None

    def offer(self, t: float, weights: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """The frames to send now (oldest first) for the ambient frame `weights` at time `t`."""
        if self._sent is None or np.abs(weights - self._sent).max() > self.min_change:
            out = [self._unsent] if self._unsent is not None else []
        elif t - self._sent_t >= self.max_interval_s - 1e-6:
            out = []
        else:
            self._unsent = (t, weights)
            return []
        self._sent, self._sent_t, self._unsent = weights, t, None
        return [*out, (t, weights)]

    def flush(self) -> list[tuple[float, np.ndarray]]:
        """Ambient frames stop (a reply starts): the last unsent one, if any; the next ambient frame is sent."""
        out = [self._unsent] if self._unsent is not None else []
        self._sent, self._unsent = None, None
        return out
