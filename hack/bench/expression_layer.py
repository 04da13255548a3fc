"""The expression layer's cost and effect: CPU per frame, its share of a core per session, the ambient frames'
bytes, and what a mood does to speech frames made from real synthesised speech (the jaw untouched).

    .venv/bin/python hack/bench/expression_layer.py [--short] [--json FILE]

The speech frames come from the embedded engines as `make run` loads them (Piper voice → the audio-driven
Audio2Expression), so the numbers describe the default product; the layer itself is the same for LAM frames.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from avatar_runtime.config import load_config  # noqa: E402
from avatar_runtime.engines.loader import build_a2e, build_tts  # noqa: E402
from avatar_runtime.expression.catalogue import MOODS  # noqa: E402
from avatar_runtime.expression.cues import ExpressionCue  # noqa: E402
from avatar_runtime.expression.layer import ExpressionLayer, SparseAmbient  # noqa: E402
from avatar_runtime.protocol import EXPRESSION_FPS, FRAME_BYTES, INDEX  # noqa: E402
from livesessions.report import target, write_json  # noqa: E402

SENTENCE = "I think that is a lovely idea. Let us talk about it for a while, shall we?"
AMBIENT_FPS = load_config(env={}).expression.ambient_fps
TARGET_CORE_PCT = 1.0  # the layer must stay negligible next to the models (per session, % of one core)


def time_per_call_us(call, n: int) -> float:
    """Median over 5 rounds of the mean time per call."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for i in range(n):
            call(i)
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


async def speech_frames(config) -> tuple[np.ndarray, np.ndarray]:
    """A2E frames for SENTENCE and the audio RMS under each frame."""
    tts, a2e = build_tts(config), build_a2e(config)
    chunks = [chunk async for chunk in tts.synthesize(SENTENCE)]
    rate = chunks[0].sample_rate
    audio = np.concatenate([c.samples for c in chunks])
    stream = a2e.stream()
    frames = []
    for chunk in chunks:
        for piece in chunk.split(a2e.max_push_s):
            frames += await stream.push(piece)
    frames += await stream.flush()
    hop = rate // EXPRESSION_FPS
    rms = np.array([np.sqrt(np.mean(audio[i * hop : (i + 1) * hop] ** 2)) if i * hop < len(audio) else 0.0
                    for i in range(len(frames))])  # fmt: skip
    return np.array(frames), rms


def with_mood(frames: np.ndarray, mood: str) -> np.ndarray:
    layer = ExpressionLayer(seed=0)
    layer.apply_cue(ExpressionCue("mood", mood, 0.8), 0.0)
    return np.array([layer.speech_frame(f, i / EXPRESSION_FPS) for i, f in enumerate(frames)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="fewer timing calls (CI)")
    parser.add_argument("--json", help="write the section for docs/benchmarks.md to this file")
    args = parser.parse_args()
    n = 2_000 if args.short else 20_000

    layer = ExpressionLayer(seed=1)
    layer.set_mood("happy", 0.7)
    weights = np.random.default_rng(0).uniform(0, 0.3, 52).astype(np.float32)
    ambient_us = time_per_call_us(lambda i: layer.ambient_frame(i / AMBIENT_FPS), n)
    speech_us = time_per_call_us(lambda i: layer.speech_frame(weights, 10_000 + i / EXPRESSION_FPS), n)
    worst_core_pct = max(ambient_us * AMBIENT_FPS, speech_us * EXPRESSION_FPS) / 1e4
    # What goes on the wire of a silent minute: half idle, half listening (SparseAmbient, as the session sends).
    idle, sparse, sent = ExpressionLayer(seed=2), SparseAmbient(), 0
    for i in range(60 * AMBIENT_FPS):
        t = i / AMBIENT_FPS
        idle.set_activity("listening" if t >= 30 else "idle", t)
        sent += len(sparse.offer(t, idle.ambient_frame(t)))
    ambient_sent_fps = sent / 60
    ambient_payload_kBps = ambient_sent_fps * FRAME_BYTES / 1000

    config = load_config(env={})
    frames, rms = asyncio.run(speech_frames(config))
    jaw = INDEX["jawOpen"]
    rows = []
    for mood in [m for m in MOODS if m != "neutral"]:
        moody = with_mood(frames, mood)
        settled = slice(EXPRESSION_FPS // 2, None)
        shapes = [INDEX[name] for name in MOODS[mood]]
        delta = float((moody[settled][:, shapes] - frames[settled][:, shapes]).mean())
        corr = float(np.corrcoef(rms, moody[:, jaw])[0, 1])
        rows.append((mood, delta, corr, bool(np.array_equal(moody[:, jaw], frames[:, jaw]))))
    base_corr = float(np.corrcoef(rms, frames[:, jaw])[0, 1])

    markdown = "\n".join([
        f"Pure-Python layer (numpy on 52 floats), {n:,} calls × 5 rounds, median; speech frames: the embedded Piper "
        f"voice saying “{SENTENCE}” through the audio-driven Audio2Expression ({len(frames)} frames), then each mood "
        "at intensity 0.8 from the first frame.",
        "",
        "| cost | value |",
        "|---|---:|",
        f"| ambient frame (idle/listening pose + mood) | {ambient_us:.1f} µs |",
        f"| speech frame (mood + gestures + cross-fade) | {speech_us:.1f} µs |",
        f"| per session, worst case (30 speech frames/s) | {worst_core_pct:.3f} % of a core |",
        f"| ambient frames sent while silent (computed at {AMBIENT_FPS} fps, sent when the face moved) | "
        f"{ambient_sent_fps:.1f} /s |",
        f"| … their payload ({FRAME_BYTES} B each, before SCTP/DTLS) | {ambient_payload_kBps:.2f} kB/s |",
        "",
        f"| mood | change of its own shapes | jawOpen ↔ audio RMS r (neutral {base_corr:.3f}) | jawOpen identical |",
        "|---|---:|---:|---|",
        *[f"| {mood} | +{delta:.3f} | {corr:.3f} | {'yes' if same else 'NO'} |" for mood, delta, corr, same in rows],
    ])  # fmt: skip
    print(markdown)
    if args.json:
        headline = {"ambient_frame_us": round(ambient_us, 2), "speech_frame_us": round(speech_us, 2),
                    "session_core_pct": round(worst_core_pct, 4)}  # fmt: skip
        targets = [target("session_core_pct", "<=", TARGET_CORE_PCT, worst_core_pct)]
        details = {"moods": {m: {"delta": d, "jaw_rms_r": c, "jaw_identical": s} for m, d, c, s in rows},
                   "neutral_jaw_rms_r": base_corr, "frames": len(frames),
                   "ambient_sent_fps": ambient_sent_fps}  # fmt: skip
        write_json(args.json, "expression_layer", "Expression layer", markdown, headline, targets, details)
    return 0 if all(same for *_, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
