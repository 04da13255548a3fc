"""Embedded Audio2Expression engine: ARKit-52 frames from speech audio with signal features, no neural weights.

Per 1/30 s window of the turn's audio (resampled to 16 kHz) we measure loudness and a few spectral cues, map
them to viseme targets, optionally refine those with the TTS phoneme timing, and smooth with attack/release
filters. Blinks and brow emphasis are layered on top. Everything is streaming: state lives in the per-turn
`AudioExpressionStream`, so the same audio split into different chunk sizes yields (nearly) the same frames.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from avatar_runtime.audio import TurnResampler
from avatar_runtime.engines.base import SpeechChunk
from avatar_runtime.protocol import EXPRESSION_FPS, INDEX, NUM_BLENDSHAPES

RATE = 16_000  # analysis rate
WIN = RATE // EXPRESSION_FPS  # 533 samples analysed per frame (periods alternate 533/534 samples)
NFFT = 512  # spectrum of the first 512 samples of each window: 31 Hz bins are plenty for band energies
GATE_DB = -45.0  # noise gate: quieter windows count as silence (mouth closed)
FULL_DB = -12.0  # loudness mapped to 1.0; TTS vowels peak around -12..-18 dBFS

_FREQS = np.fft.rfftfreq(NFFT, 1.0 / RATE)
_HANN = np.hanning(NFFT).astype(np.float32)


def _band(lo: float, hi: float) -> np.ndarray:
    return ((_FREQS >= lo) & (_FREQS < hi)).astype(np.float32)


# Band energies by one matmul: total 80 Hz–8 kHz; 450–1000 Hz vs 80–1000 Hz locates F1 (high F1 = open vowel);
# energy above 1 kHz is F2 and up (front vowels, frication), above 1.8 kHz spread vowels, above 3 kHz frication.
_BANDS = np.stack([_band(80, 8000), _band(450, 1000), _band(80, 1000), _band(1800, 8000), _band(3000, 8000)], 1)

# Linear ramps clipped to 0..1 over raw features [dB, F1 ratio, <1 kHz share, >1.8 kHz share, >3 kHz share, zcr,
# >1.8 kHz part of the >1 kHz energy] as (feature, from, to); thresholds measured on espeak-ng male and female
# vowels and consonants.
_RAMPS = [
    (0, GATE_DB, FULL_DB),  # loud: noise gate → full voice
    (0, GATE_DB, GATE_DB + 15),  # voice: "there is sound here", softer than loudness
    (4, 0.2, 0.6),  # hiss: frication noise above 3 kHz (s 0.9, sh/f 0.5, vowels < 0.1)
    (5, 0.1, 0.4),  # zero-crossing rate (fricatives 0.3–0.6, vowels ~0.1)
    (1, 0.2, 0.8),  # openness: F1 ratio (a 0.9, o 0.7, i/u/m ~0)
    (2, 0.65, 0.9),  # back: almost nothing above 1 kHz (u, o; a and front vowels have a strong F2)
    (3, 0.1, 0.25),  # spread: F2/F3 energy above 1.8 kHz (i 0.3, u 0.08)
    (2, 0.88, 0.97),  # nasal murmur: (m, n) nearly everything below 1 kHz
    (6, 0.5, 0.9),  # front: F2 high (i, ɪ: no energy at 1–1.8 kHz) rather than low (u, o)…
    (3, 0.03, 0.08),  # …judged only where there is energy up there at all
]
_AFFINE_W = np.zeros((7, len(_RAMPS)), np.float32)
_AFFINE_B = np.zeros(len(_RAMPS), np.float32)
for _j, (_feat, _lo, _hi) in enumerate(_RAMPS):
    _AFFINE_W[_feat, _j], _AFFINE_B[_j] = 1.0 / (_hi - _lo), -_lo / (_hi - _lo)


def _alpha(tau_s: float) -> float:
    """One-pole coefficient per frame for time constant `tau_s`."""
    return 1.0 - math.exp(-1.0 / (EXPRESSION_FPS * tau_s))


def _both(name: str) -> list[int]:
    """Indices of a blendshape pair (…Left/…Right) or of a single unpaired shape."""
    return [INDEX[name + s] for s in ("Left", "Right") if name + s in INDEX] or [INDEX[name]]


# Per-channel smoothing: lips/jaw attack fast (consonant onsets are quick) and release slower (muscles relax),
# brows move lazily. Blink channels bypass smoothing: a blink has its own envelope.
_ATTACK = np.full(NUM_BLENDSHAPES, _alpha(0.03), np.float32)
_RELEASE = np.full(NUM_BLENDSHAPES, _alpha(0.07), np.float32)
_BLINK = _both("eyeBlink")
for _name in ("browInnerUp", "browOuterUp"):
    _ATTACK[_both(_name)], _RELEASE[_both(_name)] = _alpha(0.08), _alpha(0.3)

# Phoneme classes → (jaw scale, blendshape targets); a known phoneme pulls those channels toward its shape.
_VISEMES: dict[str, tuple[float, dict[str, float]]] = {
    "bilabial": (0.15, {"mouthClose": 0.3, "mouthPress": 0.35, "mouthFunnel": 0.0, "mouthPucker": 0.0}),
    "labiodental": (0.35, {"mouthRollLower": 0.4, "mouthUpperUp": 0.15, "mouthClose": 0.08}),
    "rounded": (0.8, {"mouthFunnel": 0.35, "mouthPucker": 0.4, "mouthStretch": 0.0}),
    "postalveolar": (0.4, {"mouthFunnel": 0.3, "mouthPucker": 0.15, "mouthStretch": 0.0}),
    "open": (1.35, {"mouthPucker": 0.0, "mouthPress": 0.0}),
    "spread": (0.7, {"mouthStretch": 0.15, "mouthSmile": 0.1, "mouthPucker": 0.0, "mouthFunnel": 0.0}),
    "alveolar": (0.45, {"mouthStretch": 0.1, "mouthPucker": 0.0}),
}
_PHONEME_WEIGHT = 0.7  # how far a phoneme shape overrides the audio estimate (audio still shapes the rest)
_PHONEME_MAX_S = 0.2  # a mark with no successor in sight lasts at most this long
_PRESENCE_DECAY = math.exp(-1.0 / (EXPRESSION_FPS * 0.12))


def _vector(weights: dict[str, float]) -> np.ndarray:
    v = np.zeros(NUM_BLENDSHAPES, np.float32)
    for name, w in weights.items():
        v[_both(name)] = w
    return v


# Term → blendshape weights. Terms: jaw, funnel (open rounded: o), pucker (close rounded: u), frication, spread,
# closure (pauses in speech, nasal murmur), emphasis. The lips part with the jaw, the lower lip further than
# the upper (as in LAM's output).
_MIX = np.stack([
    _vector({"jawOpen": 1.0, "mouthLowerDown": 1.3, "mouthUpperUp": 0.35}),
    _vector({"mouthFunnel": 0.22}),
    _vector({"mouthPucker": 0.3}),
    _vector({"mouthStretch": 0.12, "mouthClose": 0.04, "mouthUpperUp": 0.05}),
    _vector({"mouthStretch": 0.1, "mouthSmile": 0.06}),
    _vector({"mouthClose": 0.12, "mouthPress": 0.15}),
    _vector({"browInnerUp": 0.3, "browOuterUp": 0.18}),
])  # fmt: skip
_VISEME_VECTORS = {
    cls: (_PHONEME_WEIGHT * _vector(dict.fromkeys(shape, 1.0)), _vector(shape)) for cls, (_, shape) in _VISEMES.items()
}


def viseme_class(phoneme: str) -> str | None:
    """Viseme class of one IPA or espeak-mnemonic phoneme ('b', 'ˈaʊ', 'u:', 'S', 'tʃ'); None if neutral/unknown."""
    p = phoneme.strip().lstrip("ˈˌ'\",%=").replace("ː", "").replace(":", "")
    if not p:
        return None
    if p.startswith(("tʃ", "dʒ", "tS", "dZ")) or p[0] in "ʃʒSZ":
        return "postalveolar"
    if p[0] in "pbmɸβ":
        return "bilabial"
    if p[0] in "fvʋ":
        return "labiodental"
    if p[0] in "aɑæʌɐAV":
        return "open"
    if any(c in "wʍuoɔʊɒɵøœyʏUO0" for c in p):  # diphthongs ending rounded (əʊ, @U) count as rounded
        return "rounded"
    if p[0] in "iɪeɛjIE":
        return "spread"
    if p[0] in "szʦtdnlɹrθðTDR":
        return "alveolar"
    return None


class AudioExpressionStream:
    """Per-turn state: resampler, unanalysed 16 kHz audio, smoothing filters, phoneme marks and blink timer."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._input = TurnResampler()
        self._pcm = np.zeros(0, np.float32)  # 16 kHz audio not yet consumed by a frame
        self._pcm_start = 0  # absolute 16 kHz index of _pcm[0]
        self._frame = 0  # next frame index
        self._marks: list[tuple[float, str]] = []  # (turn time s, viseme class), sorted
        self._weights = np.zeros(NUM_BLENDSHAPES, np.float32)  # smoothed output state
        self._presence = 0.0  # decaying memory of recent speech: pauses inside speech read as lip closure
        self._vowel_level = 0.8  # slow average loudness of vowels, the baseline that emphasis stands out from
        self._next_blink = int(rng.uniform(1.0, 4.0) * EXPRESSION_FPS)
        self._blink_len = 6

    # -- public API --------------------------------------------------------------------------------
    async def push(self, chunk: SpeechChunk) -> list[np.ndarray]:
        return self.process(chunk)  # ~1 ms per 100 ms of audio: cheaper than a thread hop

    async def flush(self) -> list[np.ndarray]:
        return self.finish()

    def process(self, chunk: SpeechChunk) -> list[np.ndarray]:
        """Add reply audio; returns the frames of every whole 1/30 s period received so far.

        (Below 16 kHz input the interpolator needs one sample past a period, so a frame may come one push later.)
        """
        t0 = float(self._input.duration)
        for mark in chunk.phonemes:
            cls = viseme_class(mark.phoneme)
            if cls is not None:
                bisect.insort(self._marks, (t0 + mark.start_ms / 1000.0, cls))
        self._append(self._input.push(chunk.samples, chunk.sample_rate))  # (NaNs become 0: they would stick)
        end = self._pcm_start + len(self._pcm)
        # Frame k is complete once its last sample (k+1)*RATE//fps - 1 has arrived.
        return self._frames((EXPRESSION_FPS * (end + 1) - 1) // RATE - self._frame)

    def finish(self) -> list[np.ndarray]:
        """End of the turn: frames for the rest, audio zero-padded so the total is ceil(duration * fps)."""
        self._append(self._input.finish())
        total = math.ceil(self._input.duration * EXPRESSION_FPS)
        need = (total * RATE) // EXPRESSION_FPS - (self._pcm_start + len(self._pcm))
        if need > 0:
            self._append(np.zeros(need, np.float32))
        return self._frames(max(0, total - self._frame))

    # -- internals ---------------------------------------------------------------------------------
    def _append(self, pcm: np.ndarray) -> None:
        self._pcm = np.concatenate([self._pcm, pcm]) if len(self._pcm) else pcm

    def _frames(self, n: int) -> list[np.ndarray]:
        if n <= 0:
            return []
        ks = np.arange(self._frame, self._frame + n)
        starts = ks * RATE // EXPRESSION_FPS - self._pcm_start
        windows = self._pcm[starts[:, None] + np.arange(WIN)]
        targets = self._targets(_features(windows), ks)
        out = np.empty_like(targets)
        for i, target in enumerate(targets):  # attack/release is nonlinear, so this one stays a loop
            alpha = np.where(target > self._weights, _ATTACK, _RELEASE)
            self._weights += alpha * (target - self._weights)
            out[i] = self._weights
        out[:, _BLINK] = np.array([self._blink(int(k)) for k in ks], np.float32)[:, None]
        np.clip(out, 0.0, 1.0, out=out)
        self._frame += n
        drop = self._frame * RATE // EXPRESSION_FPS - self._pcm_start
        self._pcm, self._pcm_start = self._pcm[drop:], self._pcm_start + drop
        return list(out)

    def _targets(self, features: tuple[np.ndarray, ...], ks: np.ndarray) -> np.ndarray:
        """Map window features to unsmoothed blendshape targets (n, 52) through the `_MIX` matrix."""
        loud, voice, fric, openness, rounding, spread, nasal = features
        # Sequential memories (cheap scalar recursions): speech presence and the speaker's vowel loudness.
        closure, emphasis = np.zeros_like(loud), np.zeros_like(loud)
        for i, (v, lv) in enumerate(zip(voice.tolist(), loud.tolist(), strict=True)):
            closure[i] = self._presence * max(0.0, 1.0 - 2.5 * v)  # gap in running speech ≈ lips together
            self._presence = max(v, self._presence * _PRESENCE_DECAY)
            if lv > 0.6:  # a vowel: emphasis = clearly louder than this speaker's recent vowels
                emphasis[i] = min(1.0, max(0.0, (lv - self._vowel_level - 0.08) / 0.1))
                self._vowel_level += _alpha(2.0) * (lv - self._vowel_level)
        # Louder and more open (higher F1) → wider jaw; frication keeps the teeth nearly together.
        jaw = 0.4 * loud**1.3 * (0.25 + 0.75 * openness) * (1.0 - 0.7 * fric) * (1.0 - 0.6 * nasal) + 0.05 * fric
        terms = np.empty((len(ks), len(_MIX)))
        terms[:, 0], terms[:, 1], terms[:, 2] = jaw, rounding * (0.3 + openness), rounding * (1.0 - openness)
        terms[:, 3], terms[:, 4], terms[:, 5], terms[:, 6] = fric, spread, closure + 0.5 * nasal, emphasis
        visemes = self._phoneme_classes(ks)
        for i, cls in visemes:  # known phoneme: scale the jaw before the lips are derived from it
            terms[i, 0] *= 1.0 + _PHONEME_WEIGHT * (_VISEMES[cls][0] - 1.0)
        terms[:, 0] = np.minimum(terms[:, 0], 0.6)
        targets = terms.astype(np.float32) @ _MIX
        for i, cls in visemes:  # …and pull the channels its shape defines toward that shape
            mask, values = _VISEME_VECTORS[cls]
            targets[i] += mask * (values - targets[i])
        return targets

    def _phoneme_classes(self, ks: np.ndarray) -> list[tuple[int, str]]:
        """(frame offset, viseme class) where a mark overlaps the frame; the biggest overlap wins, bilabials
        counting double because their closure is short but must be seen."""
        if not self._marks:
            return []
        f0 = ks[0] / EXPRESSION_FPS
        del self._marks[: max(0, bisect.bisect_left(self._marks, (f0 - 1.0, "")) - 1)]  # keep one before
        starts = [m[0] for m in self._marks]
        out = []
        for i, k in enumerate(ks):
            a, b = k / EXPRESSION_FPS, (k + 1) / EXPRESSION_FPS
            lo, hi = max(0, bisect.bisect_right(starts, a) - 1), bisect.bisect_left(starts, b)
            best, best_score = None, 0.0
            for j in range(lo, hi):
                end = min(starts[j + 1] if j + 1 < len(starts) else math.inf, starts[j] + _PHONEME_MAX_S)
                overlap = min(b, end) - max(a, starts[j])
                score = overlap * (2.0 if self._marks[j][1] == "bilabial" else 1.0)
                if overlap > 0 and score > best_score:
                    best, best_score = self._marks[j][1], score
            if best is not None:
                out.append((i, best))
        return out

    def _blink(self, k: int) -> float:
        """Blink envelope at frame k: quick close (~30 %), slower reopen; next blink 2.5–6 s later."""
        phase = (k - self._next_blink + 0.5) / self._blink_len
        if phase >= 1.0:
            self._next_blink += self._blink_len + int(self._rng.uniform(2.5, 6.0) * EXPRESSION_FPS)
            self._blink_len = int(self._rng.integers(5, 8))  # 167–233 ms
            phase = (k - self._next_blink + 0.5) / self._blink_len
        if phase < 0.0:
            return 0.0
        shape = phase / 0.3 if phase < 0.3 else (1.0 - phase) / 0.7
        return 0.95 * min(1.0, shape * 1.4) ** 0.8


def _features(windows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-window cues in 0..1: loud, voice, fric, open, round, spread, nasal (vectorised over windows).

    Written as a few whole-array operations because pushes of small chunks analyse one window at a time.
    """
    raw = np.empty((len(windows), 7), np.float32)  # see _RAMPS
    raw[:, 0] = 10.0 * np.log10(np.einsum("ij,ij->i", windows, windows) / WIN + 1e-12)
    bands = np.abs(np.fft.rfft(windows[:, :NFFT] * _HANN, axis=1)) ** 2 @ _BANDS
    raw[:, 1] = bands[:, 1] / (bands[:, 2] + 1e-12)
    raw[:, 2:5] = bands[:, 2:] / (bands[:, :1] + 1e-12)
    raw[:, 5] = np.count_nonzero(np.diff(np.signbit(windows), axis=1), axis=1) / (WIN - 1)
    raw[:, 6] = bands[:, 3] / (bands[:, 0] - bands[:, 2] + 1e-12)
    ramps = np.clip(raw @ _AFFINE_W + _AFFINE_B, 0.0, 1.0).T
    loud, voice, hiss, zc, openness, back, spread, nasal, front, upper = ramps
    fric = np.minimum(hiss * (0.5 + zc), 1.0) * voice  # noise above 3 kHz, confirmed by zero crossings
    sonor = voice * (1.0 - fric)
    nasal *= 1.0 - openness
    front *= upper
    rounding = back * (1.0 - front) * (1.0 - nasal) * sonor
    spread *= front * (1.0 - 0.5 * openness) * sonor
    return loud, voice, fric, openness * sonor, rounding, spread, nasal * sonor


class AudioExpressionEngine:
    """Default embedded Audio2Expression engine: audio features (+ optional phonemes) → ARKit-52 at 30 fps.

    `seed` fixes the blink timing (every stream then blinks identically, handy for tests); None = random.
    """

    name = "audio"
    fps = EXPRESSION_FPS
    max_push_s = 0.2

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed

    def stream(self) -> AudioExpressionStream:
        return AudioExpressionStream(np.random.default_rng(self._seed))
