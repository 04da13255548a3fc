"""The autoscaling simulation (hack/bench/autoscale_sim.py): determinism, bookkeeping, the HPA algorithm against the
Kubernetes docs' own examples, and the behaviours the design relies on (retries, drain, the readiness trap)."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack" / "bench"))

import autoscale_sim  # noqa: E402
from autoscale.cluster import Cluster, Pod, scale_down_rank, simulate  # noqa: E402
from autoscale.hpa import (  # noqa: E402
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Autoscaler,
    RatePolicy,
    ScalingRules,
    desired_from_ratio,
)
from autoscale.policies import (  # noqa: E402
    HEAVY_CPU,
    LIGHT_CPU,
    OURS_SCALE_DOWN,
    OURS_SCALE_UP,
    baseline,
    ours,
    readiness_trap,
)
from autoscale.workload import Workload, generate  # noqa: E402

SHORT = Workload(**autoscale_sim.SHORT)
CLUSTER = Cluster()


@pytest.fixture(scope="module")
def sessions():
    return generate(SHORT, seed=7)


# --- determinism -----------------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_output_and_another_seed_does_not(capsys):
    outputs = []
    for seed in ("3", "3", "4"):
        assert autoscale_sim.main(["--short", "--json", "--seed", seed]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert '"seed": 3' in outputs[0] and '"offered"' in outputs[0]


def test_markdown_output_prints_parameters_and_one_row_per_policy(capsys):
    assert autoscale_sim.main(["--short", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed 3\n") and "peak_per_min=5.0" in out and "startup_s=120.0" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| policy")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| A ours", "| A ours, drain 3600 s", "| B baseline (light CPU)", "| B baseline (heavy CPU)",
        "| C readiness-as-capacity", "| D ours without drain",
    ]  # fmt: skip


def test_bad_parameters_are_refused_with_a_message(capsys):
    assert autoscale_sim.main(["--short", "--limit", "0"]) == 2
    assert "limit" in capsys.readouterr().err


# --- workload --------------------------------------------------------------------------------------------------------
def test_arrivals_follow_the_rate_curve(sessions):
    day = Workload()
    assert day.rate_per_s(4 * 3600) < day.rate_per_s(12 * 3600) < day.rate_per_s(20.5 * 3600)
    assert day.rate_per_s(13.05 * 3600) == pytest.approx(day.rate_per_s(12.95 * 3600) + 6 / 60, rel=0.05)
    arrivals = sessions.arrival_s
    assert np.all(np.diff(arrivals) >= 0) and arrivals[0] >= 0 and arrivals[-1] < SHORT.duration_s
    expected = sum(SHORT.rate_per_s(t + 0.5) for t in range(int(SHORT.duration_s)))
    assert abs(len(arrivals) - expected) < 5 * math.sqrt(expected)  # a Poisson count: within 5 σ
    assert np.all(sessions.length_s <= SHORT.cap_s)
    assert np.median(sessions.length_s) == pytest.approx(SHORT.median_s, rel=0.15)


# --- bookkeeping -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "policy", [ours(4), baseline(LIGHT_CPU), baseline(HEAVY_CPU), readiness_trap(4)], ids=lambda p: p.name
)
def test_every_session_is_accounted_for(policy, sessions):
    result = simulate(policy, sessions, CLUSTER, SHORT.duration_s)
    assert result.offered == len(sessions) == result.accepted + result.rejected
    assert 0 <= result.cut <= result.accepted
    assert len(result.waits_s) == result.accepted and min(result.waits_s) >= 0
    assert 1 <= result.peak_pods and CLUSTER.min_replicas <= result.mean_pods <= result.peak_pods


# --- the HPA algorithm against the examples of kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
def test_replica_formula_and_tolerance():
    assert desired_from_ratio(1, 200 / 100) == 2  # "200m / 100m: the number of replicas will be doubled"
    assert desired_from_ratio(4, 50 / 100) == 2  # "50m: you'll halve the number of replicas"
    assert desired_from_ratio(4, 1.05) == 4 and desired_from_ratio(4, 0.92) == 4  # within the 10 % tolerance
    assert desired_from_ratio(4, 1.2) == 5  # ceil(4.8)
    assert desired_from_ratio(3, 4 / 3) == 4  # 12 sessions at 3 per pod: exactly 4, not 5 from float noise


def test_scale_down_stabilization_keeps_the_highest_recent_recommendation():
    hpa = Autoscaler(1, 10, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    assert hpa.decide(0.0, 5, 5) == 5
    assert hpa.decide(100.0, 5, 2) == 5  # 5 was recommended within the last 300 s
    assert hpa.decide(200.0, 5, 3) == 5
    assert hpa.decide(301.0, 5, 2) == 3  # 5 left the window; the highest left is 3
    assert hpa.decide(401.0, 3, 2) == 3  # 3 (at 200 s) is still within the window
    assert hpa.decide(501.0, 3, 2) == 2


def test_scale_up_has_no_window_but_a_rate_limit():
    hpa = Autoscaler(1, 10, OURS_SCALE_UP, OURS_SCALE_DOWN)
    assert hpa.decide(0.0, 1, 10) == 3  # max(+100 % → 2, +2 pods → 3)
    assert hpa.decide(5.0, 3, 10) == 3  # the 15 s period already added 2 pods
    assert hpa.decide(16.0, 3, 10) == 6  # max(6, 5)
    assert hpa.decide(31.0, 6, 20) == 10  # capped by maxReplicas
    default = Autoscaler(1, 100)
    assert default.decide(0.0, 2, 50) == 6  # the default: max(+100 %, +4 pods) per 15 s


def test_scale_down_rate_policies_follow_the_docs_example():
    # The docs: Pods 4 / 60 s and Percent 10 / 60 s, 80 replicas scaled to 10: the first step removes 8, and at 72
    # replicas 10 % (7.2) is rounded up to 8 again.
    rules = ScalingRules(0.0, (RatePolicy("Pods", 4, 60.0), RatePolicy("Percent", 10, 60.0)))
    hpa = Autoscaler(1, 100, DEFAULT_SCALE_UP, rules)
    assert hpa.decide(0.0, 80, 10) == 72
    assert hpa.decide(15.0, 72, 10) == 72  # nothing more within the same 60 s
    assert hpa.decide(61.0, 72, 10) == 64
    ours_hpa = Autoscaler(1, 10, OURS_SCALE_UP, ScalingRules(0.0, OURS_SCALE_DOWN.policies))
    assert ours_hpa.decide(0.0, 6, 1) == 5  # one pod per 120 s
    assert ours_hpa.decide(60.0, 5, 1) == 5
    assert ours_hpa.decide(121.0, 5, 1) == 4


def test_bad_scaling_rules_are_refused():
    with pytest.raises(ValueError):
        RatePolicy("Replicas", 1, 15.0)
    with pytest.raises(ValueError):
        Autoscaler(3, 2)


# --- the behaviours the design relies on -----------------------------------------------------------------------------
def test_a_drain_longer_than_any_conversation_cuts_nothing(sessions):
    short_talks = Workload(**{**autoscale_sim.SHORT, "cap_s": 600.0})
    talks = generate(short_talks, seed=7)
    drained = simulate(ours(4, drain_s=900.0), talks, CLUSTER, short_talks.duration_s)
    assert drained.cut == 0 and drained.victim_sessions and max(drained.victim_sessions) > 0  # busy pods did go
    undrained = simulate(ours(4, drain_s=0.0), talks, CLUSTER, short_talks.duration_s)
    assert undrained.cut > 0  # the same scale-downs without the drain do cut


def test_retrying_placement_rejects_fewer_than_one_try(sessions):
    retrying = simulate(ours(4), sessions, CLUSTER, SHORT.duration_s)
    one_try = simulate(replace(ours(4), ingress_tries=1, client_retries=0), sessions, CLUSTER, SHORT.duration_s)
    assert retrying.rejected < one_try.rejected
    assert max(retrying.waits_s) > 0 and max(one_try.waits_s) == 0  # retries cost time-to-session


def test_the_readiness_trap_deletes_full_pods_while_ours_deletes_the_emptiest():
    day = Workload()
    talks = generate(day, seed=1)
    ours_run = simulate(ours(4), talks, CLUSTER, day.duration_s)
    trap_run = simulate(readiness_trap(4), talks, CLUSTER, day.duration_s)
    trap_full = sum(v >= CLUSTER.limit for v in trap_run.victim_sessions)
    ours_full = sum(v >= CLUSTER.limit for v in ours_run.victim_sessions)
    assert trap_full > 5 * max(1, ours_full)
    assert np.mean(trap_run.victim_sessions) > 1.5 * np.mean(ours_run.victim_sessions)
    assert trap_run.cut > ours_run.cut


def test_replicaset_ranking_puts_not_ready_first_then_the_lowest_cost():
    now = 10_000.0
    idle = Pod(uid=0, tiebreak=0, created=0.0, started=True, ready=True, ready_since=100.0, cost=0)
    busy = Pod(uid=1, tiebreak=1, created=0.0, started=True, ready=True, ready_since=9_000.0, cost=3)
    full_not_ready = Pod(uid=2, tiebreak=2, created=0.0, started=True, ready=False, cost=4)
    pods = [idle, busy, full_not_ready]
    assert sorted(pods, key=lambda p: scale_down_rank(p, now, use_cost=True)) == [full_not_ready, idle, busy]
    # Without deletion cost, among ready pods the most recently ready goes first (the busy one here).
    assert sorted(pods, key=lambda p: scale_down_rank(p, now, use_cost=False)) == [full_not_ready, busy, idle]


def test_a_cpu_hpa_never_sees_a_gpu_bound_load(sessions):
    light = simulate(baseline(LIGHT_CPU), sessions, CLUSTER, SHORT.duration_s)
    heavy = simulate(baseline(HEAVY_CPU), sessions, CLUSTER, SHORT.duration_s)
    # 10 % + 8 % × 4 sessions = 42 % < 70 %: the pool stays at one pod however many are refused.
    assert light.peak_pods == 1 and light.rejected > len(sessions) / 2
    assert heavy.peak_pods > 3 and heavy.rejected < light.rejected
