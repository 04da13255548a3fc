"""Life while the avatar is silent: blinks, gaze shifts, breathing, brow drift; attention while the user talks.

A statue between replies reads as a frozen stream. `AmbientMotion.pose(t)` is a pure function of the timeline
time and a per-session random schedule (seeded, so tests and demos repeat): blinks every 2–6 s (sometimes
double), saccades to a new gaze target every 1–3.5 s, a 4.2 s breathing cycle (a hint of jaw and nostrils)
and a slow brow drift. While the user is talking the gaze stays near the user, blinks come less often and the
brows lift a little (attention); while thinking the eyes go up and aside. Head motion is not in ARKit-52: the
LAM body clips (idle/listen/think) move the head and shoulders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..protocol import INDEX, NUM_BLENDSHAPES

Activity = Literal["idle", "listening", "thinking"]
BLINK_S = 0.16
SACCADE_TAU_S = 0.035  # eyes reach a new target in ~100 ms
BREATH_PERIOD_S = 4.2


@dataclass(frozen=True)
class _GazeStyle:
    every_s: tuple[float, float]  # time between saccades
    spread: tuple[float, float]  # horizontal, vertical amplitude of targets (eyeLook* weight)
    centre: tuple[float, float]  # where targets cluster (x > 0: to the avatar's right; y > 0: up)


_GAZE = {
    "idle": _GazeStyle((1.2, 3.5), (0.3, 0.12), (0.0, 0.0)),
    "listening": _GazeStyle((1.5, 3.0), (0.07, 0.05), (0.0, 0.0)),  # at the user, small corrections
    "thinking": _GazeStyle((0.8, 1.6), (0.12, 0.08), (-0.25, 0.35)),
}
_ATTENTION = {"browInnerUp": 0.12, "browOuterUpLeft": 0.08, "browOuterUpRight": 0.08, "mouthSmileLeft": 0.06,
              "mouthSmileRight": 0.06}  # fmt: skip


class AmbientMotion:
    """The procedural pose of a silent avatar; `activity` changes what it does, `pose(t)` gives the weights."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self.activity: Activity = "idle"
        self._blinks: list[float] = []  # start times, ascending
        self._next_blink = float(self._rng.uniform(0.5, 2.5))
        self._gaze = np.zeros(2)
        self._gaze_target = np.zeros(2)
        self._next_saccade = 0.0
        self._last_t: float | None = None
        self._brow_phase = float(self._rng.uniform(0, 2 * math.pi))
        self._attention = 0.0  # 0..1, eased so it does not snap

    def set_activity(self, activity: Activity, at_s: float) -> None:
        if activity != self.activity:
            self.activity = activity
            self._next_saccade = at_s  # look where the new activity looks at once

    def pose(self, t: float) -> np.ndarray:
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        out = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
        self._blink(out, t)
        self._look(out, t, dt)
        breath = 0.5 - 0.5 * math.cos(2 * math.pi * t / BREATH_PERIOD_S)
        out[INDEX["jawOpen"]] += 0.02 * breath
        out[INDEX["noseSneerLeft"]] += 0.04 * breath
        out[INDEX["noseSneerRight"]] += 0.04 * breath
        drift = 0.5 + 0.5 * math.sin(2 * math.pi * t / 7.3 + self._brow_phase)
        out[INDEX["browInnerUp"]] += 0.05 * drift
        target = 1.0 if self.activity == "listening" else 0.0
        self._attention += (target - self._attention) * (1 - math.exp(-dt / 0.3))
        for name, value in _ATTENTION.items():
            out[INDEX[name]] += value * self._attention
        return np.clip(out, 0.0, 1.0)

    def _blink(self, out: np.ndarray, t: float) -> None:
        while t >= self._next_blink:
            self._blinks.append(self._next_blink)
            if self._rng.random() < 0.15:  # people often blink twice
                self._blinks.append(self._next_blink + BLINK_S + 0.08)
            low, high = (3.0, 7.0) if self.activity == "listening" else (2.0, 6.0)
            self._next_blink += float(self._rng.uniform(low, high))
        self._blinks = [b for b in self._blinks if b + BLINK_S > t - 1.0]
        closed = 0.0
        for start in self._blinks:
            p = (t - start) / BLINK_S
            if 0.0 <= p <= 1.0:
                closed = max(closed, math.sin(math.pi * p) ** 2)
        out[INDEX["eyeBlinkLeft"]] += closed
        out[INDEX["eyeBlinkRight"]] += closed

    def _look(self, out: np.ndarray, t: float, dt: float) -> None:
        style = _GAZE[self.activity]
        if t >= self._next_saccade:
            spread, centre = np.array(style.spread), np.array(style.centre)
            self._gaze_target = centre + spread * self._rng.uniform(-1.0, 1.0, 2)
            self._next_saccade = t + float(self._rng.uniform(*style.every_s))
        self._gaze += (self._gaze_target - self._gaze) * (1 - math.exp(-dt / SACCADE_TAU_S) if dt else 0.0)
        x, y = float(self._gaze[0]), float(self._gaze[1])
        # Looking to the avatar's right turns the right eye outward and the left eye inward.
        right, left = max(x, 0.0), max(-x, 0.0)
        out[INDEX["eyeLookOutRight"]] += right
        out[INDEX["eyeLookInLeft"]] += right
        out[INDEX["eyeLookOutLeft"]] += left
        out[INDEX["eyeLookInRight"]] += left
        up, down = max(y, 0.0), max(-y, 0.0)
        out[INDEX["eyeLookUpLeft"]] += up
        out[INDEX["eyeLookUpRight"]] += up
        out[INDEX["eyeLookDownLeft"]] += down
        out[INDEX["eyeLookDownRight"]] += down
