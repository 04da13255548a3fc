"""Moods and gestures as ARKit-52 offsets, and which blendshapes belong to speech.

Articulation (jaw, lips rounding/closing/rolling, tongue) is Audio2Expression's alone: no mood or gesture may
add to those shapes, so the lip-sync (and its correlation with the audio) is the same in every mood. The mouth
shapes a feeling uses (smile, frown, press, dimple, stretch, shrug) are allowed but yield to articulation
(`MOUTH_EXPRESSION`, attenuated by the layer while the lips round or close).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..protocol import INDEX, NUM_BLENDSHAPES

# Shapes that carry the speech itself (never touched by the layer).
SPEECH_SHAPES = frozenset(
    {
        "jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
        "mouthRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
        "mouthRollLower", "mouthRollUpper", "tongueOut",
    }
)  # fmt: skip

# Mouth shapes of feelings: added on top of speech, but softened while the lips articulate.
MOUTH_EXPRESSION = frozenset(
    {
        "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft",
        "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight", "mouthPressLeft", "mouthPressRight",
        "mouthShrugLower", "mouthShrugUpper",
    }
)  # fmt: skip


def _both(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


# Values are peak offsets at intensity 1; they are added to the speech frame and clipped to 0..1.
MOODS: MappingProxyType[str, MappingProxyType[str, float]] = MappingProxyType(
    {
        name: MappingProxyType(offsets)
        for name, offsets in {
            "neutral": {},
            "happy": {
                **_both("mouthSmile", 0.55), **_both("cheekSquint", 0.35), **_both("eyeSquint", 0.2),
                **_both("mouthDimple", 0.15), "browInnerUp": 0.05,
            },
            "sad": {
                "browInnerUp": 0.6, **_both("mouthFrown", 0.45), "mouthShrugLower": 0.2, **_both("eyeLookDown", 0.15),
                **_both("eyeSquint", 0.1),
            },
            "angry": {
                **_both("browDown", 0.65), **_both("eyeSquint", 0.35), **_both("noseSneer", 0.35),
                **_both("mouthPress", 0.25), **_both("mouthFrown", 0.2),
            },
            "surprised": {"browInnerUp": 0.6, **_both("browOuterUp", 0.65), **_both("eyeWide", 0.55)},
            "fearful": {
                "browInnerUp": 0.65, **_both("browOuterUp", 0.3), **_both("eyeWide", 0.5),
                **_both("mouthStretch", 0.35), **_both("mouthFrown", 0.1),
            },
            "disgusted": {
                **_both("noseSneer", 0.55), **_both("browDown", 0.35), **_both("eyeSquint", 0.25),
                **_both("mouthFrown", 0.25), "mouthShrugUpper": 0.25,
            },
            "thinking": {
                "browDownLeft": 0.25, "browInnerUp": 0.2, "browOuterUpRight": 0.3, **_both("eyeLookUp", 0.35),
                "eyeLookOutLeft": 0.2, "eyeLookInRight": 0.2, **_both("mouthPress", 0.2),
            },
        }.items()
    }
)  # fmt: skip


@dataclass(frozen=True)
class Gesture:
    """A short facial movement: offsets with an attack / hold / release envelope (seconds)."""

    offsets: MappingProxyType[str, float]
    attack_s: float
    hold_s: float
    release_s: float
    body_clip: str | None = None  # a LAM body clip the browser plays with it

    @property
    def duration_s(self) -> float:
        return self.attack_s + self.hold_s + self.release_s


def _gesture(offsets: dict[str, float], attack: float, hold: float, release: float, clip: str | None = None):
    return Gesture(MappingProxyType(offsets), attack, hold, release, clip)


GESTURES: MappingProxyType[str, Gesture] = MappingProxyType(
    {
        "wink": _gesture({"eyeBlinkLeft": 1.0, "cheekSquintLeft": 0.35, "mouthSmileLeft": 0.3}, 0.08, 0.15, 0.15),
        "eyebrow_raise": _gesture(
            {"browInnerUp": 0.7, **_both("browOuterUp", 0.7), **_both("eyeWide", 0.2)}, 0.12, 0.35, 0.3
        ),
        "shrug": _gesture(
            {"mouthShrugLower": 0.5, "mouthShrugUpper": 0.3, "browInnerUp": 0.45, **_both("browOuterUp", 0.35),
             **_both("mouthFrown", 0.2)}, 0.15, 0.5, 0.35,
        ),
        "eye_roll": _gesture({**_both("eyeLookUp", 0.85), "browInnerUp": 0.2}, 0.2, 0.35, 0.3),
        "hello": _gesture({**_both("mouthSmile", 0.4), **_both("browOuterUp", 0.3)}, 0.2, 0.8, 0.4, clip="hello"),
        # While listening: a small "mm-hm" (brow flash, soft smile, slow blink); the head nod is the body clip's.
        "acknowledge": _gesture(
            {"browInnerUp": 0.2, **_both("browOuterUp", 0.15), **_both("mouthSmile", 0.12),
             **_both("eyeBlink", 0.2)}, 0.1, 0.12, 0.3,
        ),
    }
)  # fmt: skip


def offsets_vector(offsets: dict[str, float] | MappingProxyType[str, float], scale: float = 1.0) -> np.ndarray:
    """Named offsets → a (52,) float32 vector in the wire order."""
    vector = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
    for name, value in offsets.items():
        vector[INDEX[name]] = value * scale
    return vector


SPEECH_INDICES = np.array(sorted(INDEX[n] for n in SPEECH_SHAPES))
MOUTH_EXPRESSION_INDICES = np.array(sorted(INDEX[n] for n in MOUTH_EXPRESSION))
