"""The policies compared: how the pool scales, where a new session goes, which pod goes first, how a pod ends.

Each policy is plain data; `cluster.simulate` runs any of them against the same sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .hpa import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, RatePolicy, ScalingRules

# The behavior the operator writes into the ScaledObject / HPA (DESIGN: scale up fast, scale down slowly).
OURS_SCALE_UP = ScalingRules(0.0, (RatePolicy("Percent", 100, 15.0), RatePolicy("Pods", 2, 15.0)))
OURS_SCALE_DOWN = ScalingRules(300.0, (RatePolicy("Pods", 1, 120.0),))


@dataclass(frozen=True)
class CpuProfile:
    """CPU use of a runtime pod as a share of its CPU request: `base + per_session × active sessions`."""

    name: str
    base: float
    per_session: float


# GPU-bound runtime: the CPU mostly waits on the GPU (WebRTC/Opus, the asyncio loop, Python glue).
LIGHT_CPU = CpuProfile("light", 0.10, 0.08)
# A CPU-heavy build (CPU ASR/TTS, software video encode): CPU tracks sessions closely; 70 % is reached at 2.5
# sessions of 4, so a CPU HPA has a real signal to work with.
HEAVY_CPU = CpuProfile("heavy", 0.20, 0.20)


@dataclass(frozen=True)
class Policy:
    """One way of running the pool. Times in seconds."""

    name: str
    summary: str
    metric: str  # "sessions": KEDA External AverageValue on the summed session gauge; "cpu": Resource utilisation
    target: float  # sessions per pod, or CPU utilisation (0.7 = 70 %)
    scale_up: ScalingRules
    scale_down: ScalingRules
    ingress_tries: int  # pods one request may try (proxy-next-upstream-tries); 1 = no proxy retry
    client_retries: int  # times the web client repeats a refused POST /api/sessions
    readiness_as_capacity: bool  # a full pod fails /readyz (out of rotation, ranked first on scale-down)
    deletion_cost: bool  # the operator keeps controller.kubernetes.io/pod-deletion-cost = active sessions
    pre_stop_s: float  # preStop sleep before SIGTERM (endpoint removal propagates)
    stop_limit_s: float  # after SIGTERM, how long live sessions may go on before they are cut
    cpu: CpuProfile | None = None

    def __post_init__(self) -> None:
        if self.metric not in ("sessions", "cpu"):
            raise ValueError(f"metric must be sessions or cpu, got {self.metric!r}")
        if self.metric == "cpu" and self.cpu is None:
            raise ValueError("a cpu policy needs a CpuProfile")
        if self.target <= 0 or self.ingress_tries < 1 or self.client_retries < 0:
            raise ValueError("target > 0, ingress_tries >= 1 and client_retries >= 0 are required")


def ours(limit: int, drain_s: float = 300.0) -> Policy:
    """A: sessions-based scaling, retrying placement, emptiest-first scale-down, drain."""
    return Policy(
        name="A ours",
        summary=f"KEDA on sessions (target {max(1, limit - 1)}), ingress 3 tries + client 3 retries, "
        f"deletion cost, drain {drain_s:.0f} s",
        metric="sessions",
        target=float(max(1, limit - 1)),
        scale_up=OURS_SCALE_UP,
        scale_down=OURS_SCALE_DOWN,
        ingress_tries=3,
        client_retries=3,
        readiness_as_capacity=False,
        deletion_cost=True,
        pre_stop_s=5.0,
        stop_limit_s=drain_s,
    )


def baseline(cpu: CpuProfile) -> Policy:
    """B: what one gets by default — round-robin Service, CPU HPA at 70 %, no deletion cost, 30 s grace."""
    return Policy(
        name=f"B baseline ({cpu.name} CPU)",
        summary=f"CPU HPA 70 % (CPU {cpu.base:.0%} + {cpu.per_session:.0%}/session), round-robin 1 try, "
        "default HPA behavior, default RS ranking, 30 s grace",
        metric="cpu",
        target=0.70,
        scale_up=DEFAULT_SCALE_UP,
        scale_down=DEFAULT_SCALE_DOWN,
        ingress_tries=1,
        client_retries=0,
        readiness_as_capacity=False,
        deletion_cost=False,
        pre_stop_s=0.0,
        stop_limit_s=30.0,
        cpu=cpu,
    )


def readiness_trap(limit: int, drain_s: float = 300.0) -> Policy:
    """C: like A, but a full pod turns NotReady — so the ReplicaSet deletes full pods first."""
    return replace(
        ours(limit, drain_s),
        name="C readiness-as-capacity",
        summary="like A, but a full pod fails /readyz (NotReady pods are deleted first)",
        readiness_as_capacity=True,
    )


def ours_without_drain(limit: int) -> Policy:
    """D: A with Kubernetes' default termination (30 s grace, no preStop, no drain): what the drain buys."""
    return replace(
        ours(limit), name="D ours without drain", summary="like A, but 30 s grace and no drain",
        pre_stop_s=0.0, stop_limit_s=30.0,
    )  # fmt: skip


def all_policies(limit: int, drain_s: float = 300.0, longest_session_s: float = 3600.0) -> list[Policy]:
    """A, A with a drain as long as the longest conversation, B (both CPU profiles), C, D."""
    return [
        ours(limit, drain_s),
        replace(ours(limit, longest_session_s), name=f"A ours, drain {longest_session_s:.0f} s"),
        baseline(LIGHT_CPU),
        baseline(HEAVY_CPU),
        readiness_trap(limit, drain_s),
        ours_without_drain(limit),
    ]
