"""Turn results into the markdown table of docs/autoscaling.md, or into JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from .cluster import Cluster, Result
from .policies import Policy
from .workload import Workload


def summary(result: Result, limit: int, start_hour: float = 0.0) -> dict:
    """The numbers of one policy, rounded so that the output is the same on every machine."""
    by_hour: dict[str, int] = {}
    for t in result.rejected_at_s:
        hour = f"{int(start_hour + t / 3600.0) % 24:02d}h"
        by_hour[hour] = by_hour.get(hour, 0) + 1
    waits = np.asarray(result.waits_s) if result.waits_s else np.zeros(1)
    victims = result.victim_sessions
    return {
        "policy": result.policy,
        "offered": result.offered,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "rejected_pct": round(100.0 * result.rejected / max(1, result.offered), 2),
        "cut": result.cut,
        "cut_pct": round(100.0 * result.cut / max(1, result.accepted), 2),
        "gpu_pod_hours": round(result.gpu_pod_hours, 2),
        "mean_pods": round(result.mean_pods, 2),
        "peak_pods": result.peak_pods,
        "p95_time_to_session_ms": round(1000.0 * float(np.percentile(waits, 95)), 1),
        "scale_down_victims": len(victims),
        "victim_mean_sessions": round(float(np.mean(victims)), 2) if victims else 0.0,
        "victims_full": sum(1 for v in victims if v >= limit),
        "rejected_by_hour": dict(sorted(by_hour.items())),
    }


def markdown(rows: list[dict]) -> str:
    header = (
        "| policy | offered | rejected | cut | GPU-pod-hours | mean pods | peak pods | p95 time-to-session "
        "| scale-downs (mean sessions on victim, full victims) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['offered']} | {r['rejected']} ({r['rejected_pct']:.1f} %) "
            f"| {r['cut']} ({r['cut_pct']:.1f} %) | {r['gpu_pod_hours']:.1f} | {r['mean_pods']:.2f} "
            f"| {r['peak_pods']} | {r['p95_time_to_session_ms']:.0f} ms "
            f"| {r['scale_down_victims']} ({r['victim_mean_sessions']:.2f}, {r['victims_full']}) |"
        )
    return header + "\n".join(lines) + "\n"


def parameters(seed: int, workload: Workload, cluster: Cluster, policies: list[Policy]) -> dict:
    return {
        "seed": seed,
        "workload": asdict(workload),
        "cluster": asdict(cluster),
        "policies": {p.name: p.summary for p in policies},
    }


def as_json(params: dict, rows: list[dict]) -> str:
    return json.dumps({"parameters": params, "results": rows}, indent=2) + "\n"
