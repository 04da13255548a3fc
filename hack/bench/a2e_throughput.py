#!/usr/bin/env python3
"""LAM Audio2Expression throughput: frames/s and latency per chunk against batch size, and what that allows.

The released architecture (wav2vec2-base + LAM head, ~102 M parameters) with random weights: the cost does not
depend on the weight values, so no download is needed. Each network call is one streaming window (64 frames,
2.13 s of audio) that yields one slice of new frames (6 frames = 200 ms by default).

    model:  the network alone on batches of B windows → latency per batch, new frames/s, sessions
    engine: B concurrent sessions through LAMExpressionEngine (dynamic batcher + streams + post-processing),
            each pushing 200 ms chunks back to back → latency per push, frames/s, batch sizes the worker formed

A session needs 30 frames per second of real time, so sessions = frames/s / 30 (at 100 % load: leave headroom).

    .venv/bin/python hack/bench/a2e_throughput.py [--device cpu|cuda|auto] [--batches 1,2,4,8,16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime"))

from avatar_runtime.engines.a2e_lam import LAMExpressionEngine  # noqa: E402
from avatar_runtime.engines.base import SpeechChunk  # noqa: E402
from avatar_runtime.engines.lam.network import Audio2Expression, wav2vec2_base_config  # noqa: E402
from avatar_runtime.engines.lam.stream import frame_start  # noqa: E402

RATE, FPS = 16000, 30


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def speech(seconds: float, seed: int) -> np.ndarray:
    """Noise shaped like syllables: the network's cost does not depend on content, the post-processing's barely."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.1 * np.abs(np.sin(2 * np.pi * 4 * t)) * rng.standard_normal(len(t))).astype(np.float32)


def bench_model(network: Audio2Expression, device: torch.device, batch: int, args: argparse.Namespace) -> dict:
    window = int(frame_start(args.context_frames))
    dtype = next(network.parameters()).dtype
    audio = torch.from_numpy(np.stack([speech(window / RATE, s) for s in range(batch)])).to(device, dtype)
    identity = torch.zeros(batch, dtype=torch.long, device=device)
    latencies: list[float] = []
    with torch.inference_mode():
        network(audio, identity)  # warm-up (kernel selection, allocator)
        start = time.perf_counter()
        while len(latencies) < args.min_runs or time.perf_counter() - start < args.seconds:
            t0 = time.perf_counter()
            network(audio, identity).float().cpu()
            if device.type == "cuda":
                torch.cuda.synchronize()
            latencies.append(time.perf_counter() - t0)
    p50 = percentile(latencies, 50)
    fps = batch * args.slice_frames / p50
    return {"batch": batch, "runs": len(latencies), "p50": p50, "p95": percentile(latencies, 95), "fps": fps}


async def bench_engine(engine: LAMExpressionEngine, sessions: int, args: argparse.Namespace) -> dict:
    chunk = frame_start(args.slice_frames)
    latencies: list[float] = []
    frames = 0

    async def session(seed: int) -> None:
        nonlocal frames
        stream, audio = engine.stream(), speech(args.audio_s, seed)
        for pos in range(0, len(audio), chunk):
            t0 = time.perf_counter()
            out = await stream.push(SpeechChunk(audio[pos : pos + chunk], RATE))  # (`+= await` would race)
            frames += len(out)
            latencies.append(time.perf_counter() - t0)
        out = await stream.flush()
        frames += len(out)

    before = engine.batch_sizes
    start = time.perf_counter()
    await asyncio.gather(*(session(s) for s in range(sessions)))
    wall = time.perf_counter() - start
    formed = {b: n - before.get(b, 0) for b, n in sorted(engine.batch_sizes.items()) if n > before.get(b, 0)}
    return {
        "batch": sessions, "runs": len(latencies), "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95), "fps": frames / wall, "formed": formed,
    }  # fmt: skip


def table(title: str, rows: list[dict], unit: str) -> None:
    print(f"\n{title}")
    print(
        f"{'batch':>5} {'runs':>5} {unit + ' p50 ms':>14} {unit + ' p95 ms':>14} {'frames/s':>9} {'sessions':>9}  notes"
    )
    for r in rows:
        notes = f"batches formed {r['formed']}" if "formed" in r else ""
        print(
            f"{r['batch']:>5} {r['runs']:>5} {1000 * r['p50']:>14.1f} {1000 * r['p95']:>14.1f} "
            f"{r['fps']:>9.1f} {r['fps'] / FPS:>9.2f}  {notes}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--batches", default="1,2,4,8,16", help="comma-separated batch sizes / session counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per batch size (model mode)")
    parser.add_argument("--min-runs", type=int, default=3, help="at least this many timed calls per batch size")
    parser.add_argument("--audio-s", type=float, default=2.0, help="audio per session (engine mode)")
    parser.add_argument("--slice-ms", type=float, default=200.0)
    parser.add_argument("--context-frames", type=int, default=64)
    parser.add_argument("--mode", choices=["model", "engine", "both"], default="both")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    args.slice_frames = int(args.slice_ms * FPS // 1000)
    batches = [int(b) for b in args.batches.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} torch threads"
    dtype = torch.float16 if device.type == "cuda" else torch.float32

    torch.manual_seed(0)
    network = Audio2Expression(wav2vec2_base_config())
    params = sum(p.numel() for p in network.parameters()) / 1e6
    print(f"LAM Audio2Expression, random weights ({params:.1f} M parameters) on {name}, {dtype}")
    window = f"{args.context_frames} frames ({frame_start(args.context_frames)} samples)"
    print(f"window {window}, slice {args.slice_frames} frames")

    if args.mode in ("model", "both"):
        net = network.to(device, dtype)
        table(
            "network alone (one call = one window per batch row)",
            [bench_model(net, device, b, args) for b in batches],
            "batch",
        )
    if args.mode in ("engine", "both"):
        engine = LAMExpressionEngine(
            network=network, device=str(device), slice_ms=args.slice_ms, context_frames=args.context_frames,
            max_batch=max(batches),
        )  # fmt: skip
        try:
            rows = [asyncio.run(bench_engine(engine, b, args)) for b in batches]
        finally:
            engine.close()
        table(f"engine: N sessions pushing {args.slice_ms:.0f} ms chunks back to back", rows, "push")


if __name__ == "__main__":
    main()
