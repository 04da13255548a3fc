"""Post-processing of LAM's raw ARKit-52 frames, written for streaming (pure numpy, state passed explicitly).

The published pipeline (mouth closing on silence, blending at chunk boundaries, Savitzky-Golay smoothing,
left/right symmetrisation, random blinks) runs on 1 s chunks and partly looks at whole chunks at once. We
emit a slice every ≤ 200 ms, so every step here is causal, or needs at most the frames of the slice in hand;
each takes the state the previous slice left and returns the next one. Same frames in → same frames out,
however the turn's audio was chunked on its way to the stream (the stream slices it on a fixed grid).

Order: boundary blend (on the network's own trajectory, before anything changes it; fade-in from the neutral
face at the turn's start) → silence gate →
smoothing → symmetrisation → blinks → clip to 0..1. Every step is causal, so the frames do not depend on
how the turn was sliced either (only the network's windows do).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from avatar_runtime.protocol import ARKIT_BLENDSHAPES, EXPRESSION_FPS, INDEX, NUM_BLENDSHAPES

# Channels a closed, silent mouth must not move: jaw, lips, cheeks and nose (the published list plus mouthClose
# and tongueOut, which read as "mouth busy" too).
MOUTH = np.array([i for i, n in enumerate(ARKIT_BLENDSHAPES) if n.startswith(("jaw", "mouth", "cheekPuff",
                                                                          "noseSneer", "tongue"))])  # fmt: skip
BLINK = np.array([INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]])
# Left/right pairs averaged by symmetrisation: the network's asymmetries are noise rather than expression.
_PAIRED = ("jaw", "mouth", "mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "mouthPress", "mouthLowerDown",
           "mouthUpperUp", "cheekSquint", "noseSneer", "browDown", "browOuterUp", "eyeBlink", "eyeLookDown",
           "eyeLookIn", "eyeLookOut", "eyeLookUp", "eyeSquint", "eyeWide")  # fmt: skip
PAIRS = np.array([(INDEX[p + "Left"], INDEX[p + "Right"]) for p in _PAIRED])

SILENCE_RMS = 1e-3  # per-frame RMS below this is silence (the published gate; TTS pauses are far below it)
HOLD_FRAMES = 3  # silence shorter than this (stop closures, short gaps) leaves the mouth to the network
RELEASE_FRAMES = 4  # the mouth then closes over this many frames…
ATTACK_FRAMES = 2  # …and reopens this fast when sound returns
BLEND_FRAMES = 3  # frames over which a new slice's start is pulled onto the previous slice's end
# Savitzky-Golay, window 5, quadratic (as published): keeps mouth peaks that a moving average would flatten.
# Its coefficients (-3, 12, 17, 12, -3) / 35 folded onto the current and past frames: see `smooth`.
_SG_HALF = 2
_CAUSAL = np.array([17.0, 24.0, -6.0], np.float32) / 35.0  # weights of x[k], x[k-1], x[k-2]
BLINK_INTERVAL_S = (2.0, 6.0)  # between blink starts
BLINK_FRAMES = (5, 8)  # 167–233 ms at 30 fps (upper bound exclusive)
BLINK_AMPLITUDE = (0.8, 1.0)


@dataclass(frozen=True)
class BlinkState:
    """Where the next blink is: frame `start`, `length` frames, peak `amplitude`; `index` counts blinks so far
    (each blink's randomness is drawn from (seed, index), so no generator object has to be carried along)."""

    seed: int
    index: int = 0
    start: int = 0
    length: int = 6
    amplitude: float = 0.9

    @classmethod
    def first(cls, seed: int) -> BlinkState:
        # The first blink comes sooner than the rest: a turn often lasts only a few seconds.
        delay, length, amplitude = _draw(seed, 0)
        return cls(seed, 0, int(delay * 0.5), length, amplitude)

    def following(self) -> BlinkState:
        delay, length, amplitude = _draw(self.seed, self.index + 1)
        return BlinkState(self.seed, self.index + 1, self.start + self.length + delay, length, amplitude)


def _draw(seed: int, index: int) -> tuple[int, int, float]:
    rng = np.random.default_rng((seed, index))
    delay = int(rng.uniform(*BLINK_INTERVAL_S) * EXPRESSION_FPS)
    return delay, int(rng.integers(*BLINK_FRAMES)), float(rng.uniform(*BLINK_AMPLITUDE))


@dataclass(frozen=True)
class PostState:
    """Everything post-processing carries from one slice to the next."""

    blink: BlinkState
    frame: int = 0  # absolute index of the next frame
    last_raw: np.ndarray | None = None  # previous slice's last frame after blending: the boundary reference
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_BLENDSHAPES), np.float32))  # pre-smoothing
    gain: float = 0.0  # mouth gain; a turn starts with the mouth closed
    silent_run: int = 0  # consecutive silent frames so far

    @classmethod
    def start(cls, seed: int) -> PostState:
        return cls(blink=BlinkState.first(seed))


def frame_rms(pcm: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """RMS of `pcm` over each frame period [bounds[k], bounds[k+1])."""
    squares = np.concatenate([[0.0], np.cumsum(np.square(pcm, dtype=np.float64))])
    lengths = np.maximum(np.diff(bounds), 1)
    return np.sqrt(np.maximum(squares[bounds[1:]] - squares[bounds[:-1]], 0.0) / lengths).astype(np.float32)


def fade_in(frames: np.ndarray, first_frame: int) -> np.ndarray:
    """The turn's first BLEND_FRAMES frames faded in from the neutral face (all zeros), as published; by
    absolute frame index, so it does not matter how the turn's start was sliced."""
    k = np.arange(first_frame, first_frame + len(frames))
    weights = np.minimum(1.0, (k + 1) / (BLEND_FRAMES + 1)).astype(np.float32)
    return frames * weights[:, None]


def blend_boundary(frames: np.ndarray, overlap: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Continue the previous slice without a jump.

    Each slice comes from its own window, so the network's view of the frame before it (`overlap`, predicted
    now with more audio to the right) differs from what was emitted then (`previous`). Shift the new
    trajectory by that difference, fading the shift out over BLEND_FRAMES: the join is continuous and the
    slice keeps its own motion (a cross-fade toward the old frame would damp a 6-frame slice's lip movement).
    """
    if previous is None:  # the turn's first slice: nothing to continue
        return frames
    n = min(BLEND_FRAMES, len(frames))
    weights = 1.0 - np.arange(n, dtype=np.float32) / BLEND_FRAMES
    out = frames.copy()
    out[:n] += weights[:, None] * (previous - overlap)[None, :]
    return out


def gate_mouth(frames: np.ndarray, volume: np.ndarray, gain: float, silent_run: int) -> tuple[np.ndarray, float, int]:
    """Close the mouth in silence: the mouth channels are scaled by a gain that ramps to 0 once silence has
    lasted HOLD_FRAMES and back to 1 when sound returns. Returns (frames, gain, silent_run) to carry on."""
    gains = np.empty(len(frames), np.float32)
    for i, v in enumerate(volume.tolist()):  # a two-number recursion per frame; slices are a few frames long
        silent_run = silent_run + 1 if v < SILENCE_RMS else 0
        if silent_run == 0:
            gain = min(1.0, gain + 1.0 / ATTACK_FRAMES)
        elif silent_run > HOLD_FRAMES:
            gain = max(0.0, gain - 1.0 / RELEASE_FRAMES)
        gains[i] = gain
    out = frames.copy()
    out[:, MOUTH] *= gains[:, None]
    return out, gain, silent_run


def smooth(frames: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Savitzky-Golay (window 5, quadratic, as published) evaluated at each frame with its future mirrored.

    The published filter looks two frames ahead inside each 1 s chunk and mirrors at the chunk's end; with
    200 ms slices that end comes every 6 frames, and a filter whose shape changes on a 5 Hz grid shows as
    jitter. Mirroring at every frame instead gives one causal 3-tap filter, (17 x[k] + 24 x[k-1] - 6 x[k-2])
    / 35: the same smoothing everywhere, a third of a frame (11 ms) of lag, and output that does not depend
    on where slices end. `history`: the frames before (up to 2; the turn's first frame is held before it).
    """
    history = history[len(history) - min(len(history), _SG_HALF) :]
    x = np.concatenate([history, frames])
    x = np.concatenate([np.repeat(x[:1], _SG_HALF - len(history), axis=0), x])
    return (_CAUSAL[0] * x[2:] + _CAUSAL[1] * x[1:-1] + _CAUSAL[2] * x[:-2]).astype(np.float32)


def symmetrize(frames: np.ndarray) -> np.ndarray:
    """Average every left/right pair."""
    out = frames.copy()
    mean = 0.5 * (frames[:, PAIRS[:, 0]] + frames[:, PAIRS[:, 1]])
    out[:, PAIRS[:, 0]], out[:, PAIRS[:, 1]] = mean, mean
    return out


def blink_envelope(k: np.ndarray, blink: BlinkState) -> np.ndarray:
    """Eyelid closure of one blink at frames `k`: a fast close (first third), a slower reopen, 0 outside."""
    phase = (k - blink.start + 0.5) / blink.length
    shape = np.clip(np.where(phase < 1 / 3, 3.0 * phase, 1.5 * (1.0 - phase)), 0.0, None)
    inside = (phase >= 0.0) & (phase < 1.0)
    return np.where(inside, blink.amplitude * np.minimum(1.0, 1.25 * shape) ** 0.7, 0.0).astype(np.float32)


def apply_blinks(frames: np.ndarray, first_frame: int, blink: BlinkState) -> tuple[np.ndarray, BlinkState]:
    """Replace the eyelid channels with scheduled blinks (audio says nothing about blinking; the network's
    value there is a blur of its training data's blinks). Returns the frames and the schedule to carry on."""
    k = np.arange(first_frame, first_frame + len(frames))
    lids = np.zeros(len(frames), np.float32)
    while blink.start < k[-1] + 1:
        lids = np.maximum(lids, blink_envelope(k, blink))
        if blink.start + blink.length > k[-1] + 1:  # still running at the slice end: finish it next slice
            break
        blink = blink.following()
    out = frames.copy()
    out[:, BLINK] = lids[:, None]
    return out, blink


def postprocess(
    raw: np.ndarray, overlap: np.ndarray, volume: np.ndarray, state: PostState
) -> tuple[np.ndarray, PostState]:
    """One slice: raw network frames (n, 52), the network's frame just before them, per-frame RMS (n,)
    → final frames (n, 52) in 0..1 and the state for the next slice."""
    if not len(raw):
        return raw.astype(np.float32), state
    blended = blend_boundary(raw.astype(np.float32), overlap.astype(np.float32), state.last_raw)
    faded = fade_in(blended, state.frame) if state.frame < BLEND_FRAMES else blended
    gated, gain, silent_run = gate_mouth(faded, volume, state.gain, state.silent_run)
    smoothed = smooth(gated, state.history)
    out, blink = apply_blinks(symmetrize(smoothed), state.frame, state.blink)
    history = np.concatenate([state.history, gated])[-_SG_HALF:]
    next_state = dataclasses.replace(
        state, blink=blink, frame=state.frame + len(raw), last_raw=blended[-1], history=history, gain=gain,
        silent_run=silent_run,
    )  # fmt: skip
    return np.clip(out, 0.0, 1.0), next_state
