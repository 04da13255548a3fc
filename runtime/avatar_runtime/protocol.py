"""Wire protocol of the data channel `avatar` (DESIGN.md §4): blendshape order and the binary frame codec."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
NUM_BLENDSHAPES = len(ARKIT_BLENDSHAPES)
INDEX = {name: i for i, name in enumerate(ARKIT_BLENDSHAPES)}

EXPRESSION_FPS = 30
FRAME_VERSION = 1
FLAG_LAST_FRAME = 0x01
FLAG_AMBIENT = 0x02  # sent while no reply audio plays (idle / listening life), not part of a reply
_HEADER = struct.Struct("<BBHII")
FRAME_BYTES = _HEADER.size + 2 * NUM_BLENDSHAPES  # 116


@dataclass(frozen=True)
class ExpressionFrame:
    """One decoded binary expression frame."""

    turn: int
    pts_ms: int
    weights: np.ndarray  # float32, shape (52,)
    last: bool = False
    ambient: bool = False


def encode_frame(turn: int, pts_ms: int, weights: np.ndarray, last: bool = False, ambient: bool = False) -> bytes:
    """Pack ARKit weights (clipped to 0..1) into the 116-byte little-endian frame of DESIGN §4."""
    if weights.shape != (NUM_BLENDSHAPES,):
        raise ValueError(f"expected {NUM_BLENDSHAPES} weights, got shape {weights.shape}")
    flags = (FLAG_LAST_FRAME if last else 0) | (FLAG_AMBIENT if ambient else 0)
    header = _HEADER.pack(FRAME_VERSION, flags, NUM_BLENDSHAPES, turn, max(0, pts_ms))
    return header + np.clip(weights, 0.0, 1.0).astype("<f2").tobytes()


def decode_frame(data: bytes) -> ExpressionFrame:
    """Inverse of `encode_frame`; raises ValueError on anything that is not a version-1 frame."""
    if len(data) < _HEADER.size:
        raise ValueError(f"frame too short: {len(data)} bytes")
    version, flags, n, turn, pts_ms = _HEADER.unpack_from(data)
    if version != FRAME_VERSION:
        raise ValueError(f"unsupported frame version {version}")
    if len(data) != _HEADER.size + 2 * n:
        raise ValueError(f"frame of {len(data)} bytes does not hold {n} weights")
    weights = np.frombuffer(data, dtype="<f2", offset=_HEADER.size, count=n).astype(np.float32)
    last, ambient = bool(flags & FLAG_LAST_FRAME), bool(flags & FLAG_AMBIENT)
    return ExpressionFrame(turn=turn, pts_ms=pts_ms, weights=weights, last=last, ambient=ambient)
