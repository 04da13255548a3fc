#!/usr/bin/env python3
"""A day of avatar sessions against four ways of running the GPU pool (issue [6]); deterministic from `--seed`.

A: ours — KEDA on the session gauge, retrying placement, emptiest-pod scale-down, drain. B: plain round-robin with a
CPU HPA (with a GPU-bound and a CPU-heavy CPU profile). C: readiness-as-capacity (the trap). D: A without the drain.
Prints the parameters and a markdown table (docs/autoscaling.md explains the model); `--json` for machines.

    .venv/bin/python hack/bench/autoscale_sim.py [--seed 1] [--short] [--json] [--peak-per-min 5] ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autoscale.cluster import Cluster, simulate  # noqa: E402
from autoscale.policies import all_policies  # noqa: E402
from autoscale.report import as_json, markdown, parameters, summary  # noqa: E402
from autoscale.workload import Workload, generate  # noqa: E402

# --short: two evening hours (starting cold from the minimum pool) with the spike inside — for CI.
SHORT = {"start_hour": 19.0, "hours": 2.0, "spike_at_hour": 20.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    w, c = Workload(), Cluster()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1, help="random seed of the arrivals and lengths (default 1)")
    ap.add_argument("--short", action="store_true", help="2 simulated hours (19:00–21:00, spike at 20:00) for CI")
    ap.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    ap.add_argument("--start-hour", type=float, default=w.start_hour, help="hour of day the window starts")
    ap.add_argument("--hours", type=float, default=w.hours, help="hours in which sessions arrive")
    ap.add_argument("--peak-per-min", type=float, default=w.peak_per_min, help="arrivals/min at the evening peak")
    ap.add_argument("--night-per-min", type=float, default=w.night_per_min, help="arrivals/min added all day")
    ap.add_argument("--spike-at", type=float, default=w.spike_at_hour, help="hour of day the spike starts")
    ap.add_argument("--spike-minutes", type=float, default=w.spike_minutes, help="length of the spike")
    ap.add_argument("--spike-per-min", type=float, default=w.spike_per_min, help="extra arrivals/min in the spike")
    ap.add_argument("--median-s", type=float, default=w.median_s, help="median conversation length (s)")
    ap.add_argument("--sigma", type=float, default=w.sigma, help="lognormal shape of conversation lengths")
    ap.add_argument("--cap-s", type=float, default=w.cap_s, help="longest conversation (s)")
    ap.add_argument("--limit", type=int, default=c.limit, help="sessions per pod (concurrentLimit)")
    ap.add_argument("--startup-s", type=float, default=c.startup_s, help="pod creation → Ready (s)")
    ap.add_argument("--min-replicas", type=int, default=c.min_replicas)
    ap.add_argument("--max-replicas", type=int, default=c.max_replicas)
    ap.add_argument("--retry-delay-s", type=float, default=c.retry_delay_s, help="web client retry delay (s)")
    ap.add_argument("--drain-s", type=float, default=300.0, help="drain limit of policies A and C (s)")
    args = ap.parse_args(argv)
    if args.short:
        args.start_hour, args.hours, args.spike_at = SHORT["start_hour"], SHORT["hours"], SHORT["spike_at_hour"]
    return args


def build(args: argparse.Namespace) -> tuple[Workload, Cluster]:
    workload = Workload(
        start_hour=args.start_hour, hours=args.hours, peak_per_min=args.peak_per_min,
        night_per_min=args.night_per_min, spike_at_hour=args.spike_at, spike_minutes=args.spike_minutes,
        spike_per_min=args.spike_per_min, median_s=args.median_s, sigma=args.sigma, cap_s=args.cap_s,
    )  # fmt: skip
    cluster = Cluster(
        limit=args.limit, startup_s=args.startup_s, min_replicas=args.min_replicas,
        max_replicas=args.max_replicas, retry_delay_s=args.retry_delay_s,
    )  # fmt: skip
    return workload, cluster


def run(seed: int, workload: Workload, cluster: Cluster, drain_s: float = 300.0) -> tuple[dict, list[dict]]:
    """Simulate every policy on the same sessions; returns (parameters, one summary row per policy)."""
    policies = all_policies(cluster.limit, drain_s, workload.cap_s)
    sessions = generate(workload, seed)
    results = [simulate(p, sessions, cluster, workload.duration_s) for p in policies]
    rows = [summary(r, cluster.limit, workload.start_hour) for r in results]
    return parameters(seed, workload, cluster, policies), rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        workload, cluster = build(args)
    except ValueError as exc:
        print(f"autoscale_sim: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    params, rows = run(args.seed, workload, cluster, args.drain_s)
    if args.json:
        sys.stdout.write(as_json(params, rows))
    else:
        print(f"seed {params['seed']}")
        print("workload " + ", ".join(f"{k}={v}" for k, v in params["workload"].items()))
        print("cluster  " + ", ".join(f"{k}={v}" for k, v in params["cluster"].items()))
        for name, text in params["policies"].items():
            print(f"  {name}: {text}")
        print()
        sys.stdout.write(markdown(rows))
    print(f"simulated in {time.perf_counter() - started:.1f} s", file=sys.stderr)  # stderr: stdout stays identical
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
