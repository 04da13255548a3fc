#!/usr/bin/env python3
"""Concurrency: the most simultaneous conversations one runtime holds with every session's p95 voice-to-voice
≤ 1 s and no audio underruns, and what each session costs in CPU and memory (and GPU memory, on a GPU).

`avatar-runtime serve --no-tls` runs as its own process (embedded engines, or `--config FILE`, e.g. the
production preset on a GPU box), its LLM pointed at a local OpenAI-compatible server that answers at once and
its session limit raised. This process is the client side: N real aiortc peers, each speaking questions with a
1–3 s think-time after each reply, their starts spread over 3 s. N = 1, 2, 3, ... until a step fails.
CPU and RSS are the server process's own (from /proc), so the slope over N is the cost of one more session.

    .venv/bin/python hack/bench/concurrency.py [--short] [--turns 4] [--max-sessions 10] [--config FILE] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack" / "bench"))

from avatar_runtime.transport.tuning import apply_tuning  # noqa: E402
from livesessions.driver import (  # noqa: E402
    ANSWER,
    LoopLag,
    SessionRecord,
    converse,
    percentile,
    spoken_questions,
)
from livesessions.report import table, target, write_json  # noqa: E402
from livesessions.server import (  # noqa: E402
    ServeProcess,
    bench_config,
    cpu_percent,
    gpu_memory_mib,
    read_usage,
    runqueue_wait_s,
)

from tests.support.openai_server import OpenAIStubServer  # noqa: E402
from tests.support.peer import AvatarPeer  # noqa: E402

P95_BOUND_MS = 1000.0
TARGET_SESSIONS = 5
SHORT_ANSWER = "Sure, here you go."
CLIENT_OPUS_BITRATE = 32000  # what a browser sends for a mono voice; aiortc's own default is 96 kbit/s


@dataclass
class Step:
    sessions: int
    records: list[SessionRecord]
    cpu_pct: float  # server, average over the step; 100 = one core
    rss_mb: float  # server, peak during the step
    vram_mib: float | None
    client_lag_ms: float
    seconds: float
    server_wait_ms_s: float  # run-queue wait of the server's event-loop thread, ms per second of the step
    client_wait_ms_s: float  # the same for this (client) process
    client_underruns: int = 0  # underruns whose gap overlaps a stall of the client's own loop

    @property
    def v2v_ms(self) -> list[float]:
        return [ms for record in self.records for ms in record.v2v_ms]

    @property
    def worst_p95_ms(self) -> float:
        return max((percentile(r.v2v_ms, 95) for r in self.records), default=float("nan"))

    @property
    def underruns(self) -> int:
        return sum(r.underruns for r in self.records)

    @property
    def server_underruns(self) -> int:
        """The underruns not explained by the measuring client stalling: the ones a step must not have."""
        return self.underruns - self.client_underruns

    @property
    def max_gap_ms(self) -> float:
        return max((turn.max_gap_ms for r in self.records for turn in r.turns), default=float("nan"))

    @property
    def failures(self) -> int:
        return sum(len(r.failures) for r in self.records)

    @property
    def passed(self) -> bool:
        measured = all(r.turns for r in self.records)
        return measured and self.failures == 0 and self.server_underruns == 0 and self.worst_p95_ms <= P95_BOUND_MS


def unbroken_passes(steps: list[Step]) -> int:
    """The highest N such that the steps 1..N all passed."""
    best = 0
    for step in sorted(steps, key=lambda s: s.sessions):
        if not step.passed or step.sessions != best + 1:
            break
        best = step.sessions
    return best


def per_session_slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of a resource against the number of sessions (the idle server is the N = 0 point)."""
    if len(points) < 2:
        return float("nan")
    n, value = np.array(points, dtype=float).T
    return float(np.polyfit(n, value, 1)[0])


async def run_step(server: ServeProcess, sessions: int, turns: int, speeches: list, pace: dict) -> Step:
    peers = [AvatarPeer(server.url) for _ in range(sessions)]
    await asyncio.gather(*(peer.connect() for peer in peers))
    await asyncio.sleep(0.5)  # ICE/DTLS settled, the first packets flowing
    peak_rss = 0

    async def watch_rss() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, read_usage(server.pid).rss_bytes)
            await asyncio.sleep(0.5)

    before = read_usage(server.pid)
    waits = runqueue_wait_s(server.pid), runqueue_wait_s()
    watcher = asyncio.ensure_future(watch_rss())
    with LoopLag() as lag:
        records = await asyncio.gather(*(converse(p, speeches, turns, seed=i, **pace) for i, p in enumerate(peers)))
    after = read_usage(server.pid)
    span = after.at - before.at
    server_wait = (runqueue_wait_s(server.pid) - waits[0]) * 1000 / span
    client_wait = (runqueue_wait_s() - waits[1]) * 1000 / span
    watcher.cancel()
    vram = gpu_memory_mib(server.pid)
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
    await asyncio.sleep(1.0)  # the server tears the sessions down before the next step measures
    return Step(sessions, list(records), cpu_percent(before, after), max(peak_rss, after.rss_bytes) / 2**20, vram,
                lag.max_ms, span, server_wait, client_wait,
                sum(lag.overlaps(gap) for r in records for t in r.turns for gap in t.underrun_spans))  # fmt: skip


async def idle_point(server: ServeProcess, seconds: float) -> tuple[float, float]:
    before = read_usage(server.pid)
    await asyncio.sleep(seconds)
    after = read_usage(server.pid)
    return cpu_percent(before, after), after.rss_bytes / 2**20


async def warm_up(server: ServeProcess, speeches: list) -> None:
    """One untimed turn: the engines' first-use allocations belong to the idle server, not to session 1."""
    peer = AvatarPeer(server.url)
    await peer.connect()
    await converse(peer, speeches, turns=1, seed=0, start_within_s=0.0, gap_s=(0.5, 0.5))
    await peer.close()
    await asyncio.sleep(1.0)


async def run(server: ServeProcess, max_sessions: int, turns: int, speeches: list, pace: dict, budget_s: float,
              log, keep_going: bool = False) -> tuple:  # fmt: skip
    await warm_up(server, speeches)
    idle = await idle_point(server, 2.0)
    steps: list[Step] = []
    started = time.perf_counter()
    for n in range(1, max_sessions + 1):
        step = await run_step(server, n, turns, speeches, pace)
        steps.append(step)
        log(step)
        if not step.passed and not keep_going:
            break
        if time.perf_counter() - started + step.seconds * (n + 1) / n > budget_s:
            print(f"  (stopping: the next step would pass the {budget_s:.0f} s budget)", flush=True)
            break
    return idle, steps


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "–" if value is None or value != value else format(value, spec)


def step_rows(steps: list[Step]) -> list[list[str]]:
    rows = []
    for s in steps:
        rows.append([str(s.sessions), str(len(s.v2v_ms)), fmt(percentile(s.v2v_ms, 50)),
                     fmt(percentile(s.v2v_ms, 95)), fmt(s.worst_p95_ms),
                     f"{s.underruns} ({s.client_underruns} client)" if s.client_underruns else str(s.underruns),
                     fmt(s.max_gap_ms),
                     str(s.failures), fmt(s.cpu_pct), fmt(s.rss_mb),
                     "no GPU" if s.vram_mib is None else fmt(s.vram_mib), fmt(s.client_lag_ms),
                     fmt(s.server_wait_ms_s), fmt(s.client_wait_ms_s),
                     "pass" if s.passed else "FAIL"])  # fmt: skip
    return rows


def step_details(step: Step) -> dict:
    return {
        "sessions": step.sessions,
        "passed": step.passed,
        "cpu_pct": step.cpu_pct,
        "rss_mb": step.rss_mb,
        "vram_mib": step.vram_mib,
        "client_lag_ms": step.client_lag_ms,
        "server_wait_ms_s": step.server_wait_ms_s,
        "client_underruns": step.client_underruns,
        "client_wait_ms_s": step.client_wait_ms_s,
        "per_session": [
            {
                "v2v_ms": r.v2v_ms,
                "underruns": r.underruns,
                "failures": r.failures,
                "max_gap_ms": max((t.max_gap_ms for t in r.turns), default=None),
            }  # fmt: skip
            for r in step.records
        ],
    }


HEADERS = ["sessions", "turns", "v2v p50 ms", "v2v p95 ms", "worst session p95 ms", "underruns", "max reply gap ms",
           "no reply",
           "server CPU %", "server RSS MB", "VRAM MiB", "client loop lag ms", "server wait ms/s",
           "client wait ms/s", "step"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="steps 1..2 with 2 turns each (CI; ~40 s)")
    parser.add_argument("--turns", type=int, help="questions per session per step (default 4; short: 2)")
    parser.add_argument("--max-sessions", type=int, help="last step to try (default 10; short: 2)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no step that would end after this")
    parser.add_argument("--keep-going", action="store_true",
                        help="try every step up to --max-sessions even after one fails (the headline still counts "
                             "only the unbroken run of passing steps from 1)")  # fmt: skip
    parser.add_argument("--config", type=Path, help="runtime config file (default: the embedded defaults)")
    parser.add_argument("--json", help="write the section for docs/benchmarks.md to this file")
    args = parser.parse_args()
    turns = args.turns or (2 if args.short else 4)
    max_sessions = args.max_sessions or (2 if args.short else 10)
    if turns < 1 or max_sessions < 1:
        parser.error("--turns and --max-sessions must be at least 1")
    if args.config is not None and not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")

    apply_tuning(CLIENT_OPUS_BITRATE, audio_prefetch=1)  # a browser-like client holds at least one packet
    # Short: the two shortest questions, a one-sentence answer and brisk pauses, so two steps fit in ~40 s.
    speeches = spoken_questions(2 if args.short else None)
    answer = SHORT_ANSWER if args.short else ANSWER
    pace = {"gap_s": (0.5, 1.0), "start_within_s": 1.0} if args.short else {"gap_s": (1.0, 3.0), "start_within_s": 3.0}
    started = time.perf_counter()
    load = os.getloadavg()[0]  # other work on the box shares the cores with both sides: say how much there was
    print(f"concurrency: steps 1..{max_sessions}, {turns} turns per session, p95 bound {P95_BOUND_MS:.0f} ms")
    print("  " + " | ".join(HEADERS), flush=True)
    with OpenAIStubServer(replies=lambda _request: answer) as llm:
        config = bench_config(llm.base_url, concurrent_limit=max_sessions + 2, base=args.config)
        with ServeProcess(config) as server:
            print(f"  server ready in {server.started_in_s:.1f} s (pid {server.pid})", flush=True)
            idle, steps = asyncio.run(
                run(
                    server,
                    max_sessions,
                    turns,
                    speeches,
                    pace,
                    args.budget_s,
                    lambda step: print("  " + " | ".join(step_rows([step])[0]), flush=True),
                    args.keep_going,
                )
            )
    elapsed = time.perf_counter() - started

    best = unbroken_passes(steps)
    fit = [s for s in steps if s.failures == 0]  # every session measured: the cost lines stay honest
    cpu_slope = per_session_slope([(0, idle[0])] + [(s.sessions, s.cpu_pct) for s in fit])
    rss_slope = per_session_slope([(0, idle[1])] + [(s.sessions, s.rss_mb) for s in fit])
    vram = [(s.sessions, s.vram_mib) for s in fit if s.vram_mib is not None]
    capped = bool(steps) and best == steps[-1].sessions  # every step passed: the cap or the budget ended the run
    setup = f"config {args.config}" if args.config else "embedded defaults"
    last = max((s.sessions for s in fit), default=0)
    markdown = "\n".join([
        f"`avatar-runtime serve --no-tls` as its own process ({setup}, LLM = local OpenAI-compatible server "
        f"answering at once: {answer!r}); the benchmark process runs N real aiortc peers, each asking {turns} "
        f"spoken questions with a {pace['gap_s'][0]:g}–{pace['gap_s'][1]:g} s pause after each reply, starting "
        f"within {pace['start_within_s']:g} s of each other. A step passes when every session's p95 voice-to-voice "
        f"(end of speech → first reply audio, at the client) is ≤ {P95_BOUND_MS:.0f} ms, every "
        "question is answered, and no reply has an underrun (the reply audio packets, replayed through a 60 ms "
        "playout buffer at the client, never leave it empty; the largest gap between two packets is shown). An "
        "underrun whose gap overlaps a > 20 ms stall of the measuring client's own event loop is shown as "
        "\"(k client)\" and does not fail the step: the packets were there, the client was not reading them. "
        "CPU (100 % = one core) and RSS are the server process's; the client loop lag is how late the peers' own "
        "event loop woke (a loaded client delays packets too); wait ms/s is how long the server's and the client's "
        "event-loop thread stood ready to run but without a CPU, per second (/proc schedstat): other work on the "
        f"box, or the other side. Load average when the run started: {load:.2f}.",
        "",
        table(HEADERS, step_rows(steps)),
        "",
        f"Idle server: {idle[0]:.1f} % CPU, {idle[1]:.0f} MB RSS. **Highest passing step: {best} sessions**"
        + (" (the last step tried: the step cap or the time budget, not a failure, ended the run)" if capped else "")
        + f". Per extra session (least-squares slope over N = 0..{last}): "
        f"{fmt(cpu_slope, '.1f')} % CPU, {fmt(rss_slope, '.1f')} MB RSS"
        + (f", {fmt(per_session_slope(vram), '.0f')} MiB VRAM." if vram else "; no GPU, so no VRAM per session."),
    ])  # fmt: skip
    print("\n" + markdown)
    print(f"\nrun time {elapsed:.0f} s")
    if args.json:
        headline = {"max_sessions_p95_1s": best, "cpu_pct_per_session": round(cpu_slope, 2),
                    "rss_mb_per_session": round(rss_slope, 2)}  # fmt: skip
        if vram:
            headline["vram_mib_per_session"] = round(per_session_slope(vram), 1)
        headline = {k: v for k, v in headline.items() if v == v}  # NaN (too few steps) is left out
        targets = [target("max_sessions_p95_1s", ">=", TARGET_SESSIONS, best, evaluated=not args.short)]
        details = {"idle": {"cpu_pct": idle[0], "rss_mb": idle[1]}, "steps": [step_details(s) for s in steps]}
        write_json(args.json, "concurrency", "Concurrent sessions", markdown, headline, targets, details)
    return 0 if steps and all(s.failures == 0 for s in steps[:-1]) else 1


if __name__ == "__main__":
    sys.exit(main())
