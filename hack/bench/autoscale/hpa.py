"""The HorizontalPodAutoscaler's algorithm, as the Kubernetes controller runs it (one function, every policy uses it).

Sources: https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ ("Algorithm details",
"Stabilization window", "Scaling policies", "Default behavior"); the controller's
`normalizeDesiredReplicasWithBehaviors` (stabilize the recommendation first, then clamp it by the rate policies and
min/max). Times are simulated seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance default
SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period default


@dataclass(frozen=True)
class RatePolicy:
    """One entry of `behavior.scaleUp/scaleDown.policies`: at most `value` pods or percent per `period_s`."""

    kind: str  # "Pods" | "Percent"
    value: int
    period_s: float

    def __post_init__(self) -> None:
        if self.kind not in ("Pods", "Percent"):
            raise ValueError(f"policy kind must be Pods or Percent, got {self.kind!r}")
        if self.value <= 0 or self.period_s <= 0:
            raise ValueError("policy value and period must be positive")


@dataclass(frozen=True)
class ScalingRules:
    """`behavior.scaleUp` or `behavior.scaleDown`: a stabilization window, policies and how to pick among them."""

    window_s: float
    policies: tuple[RatePolicy, ...]
    select: str = "Max"  # "Max" (the biggest change allowed), "Min", "Disabled"


# The defaults of an HPA without `behavior` (the docs' "Default behavior" section).
DEFAULT_SCALE_UP = ScalingRules(0.0, (RatePolicy("Percent", 100, 15.0), RatePolicy("Pods", 4, 15.0)))
DEFAULT_SCALE_DOWN = ScalingRules(300.0, (RatePolicy("Percent", 100, 15.0),))


def desired_from_ratio(current: int, usage_ratio: float, tolerance: float = TOLERANCE) -> int:
    """`desiredReplicas = ceil(currentReplicas × currentMetric / target)`; unchanged within the tolerance."""
    if abs(1.0 - usage_ratio) <= tolerance:
        return current
    return math.ceil(usage_ratio * current - 1e-9)  # the epsilon keeps 3 × (4/3) from becoming 4.000000001 → 5


def _changed_in_period(events: list[tuple[float, int]], now: float, period_s: float) -> int:
    return sum(change for at, change in events if at > now - period_s)


@dataclass
class Autoscaler:
    """One HPA object: its recommendation history and scale events (what the behavior rules look back over)."""

    min_replicas: int
    max_replicas: int
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 1 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")

    def decide(self, now: float, current: int, desired: int) -> int:
        """Turn the metric's raw recommendation into the replica count the HPA writes (and remember the change)."""
        stabilized = self._stabilize(now, current, desired)
        final = self._limit_rate(now, current, stabilized)
        if final > current:
            self.up_events.append((now, final - current))
        elif final < current:
            self.down_events.append((now, current - final))
        horizon = now - max(self._longest_period(), 1.0)
        self.up_events = [e for e in self.up_events if e[0] > horizon]
        self.down_events = [e for e in self.down_events if e[0] > horizon]
        return final

    def _longest_period(self) -> float:
        return max(p.period_s for rules in (self.scale_up, self.scale_down) for p in rules.policies)

    def _stabilize(self, now: float, current: int, desired: int) -> int:
        # Scale up to the lowest recommendation of the up window, down to the highest of the down window: a dip
        # shorter than the down window never removes a pod.
        up, down = desired, desired
        for at, value in self.recommendations:
            if at > now - self.scale_up.window_s:
                up = min(up, value)
            if at > now - self.scale_down.window_s:
                down = max(down, value)
        self.recommendations.append((now, desired))
        keep = max(self.scale_up.window_s, self.scale_down.window_s)
        self.recommendations = [r for r in self.recommendations if r[0] > now - keep]
        return min(max(current, up), down)

    def _limit_rate(self, now: float, current: int, desired: int) -> int:
        if desired > current:
            limit = max(self._scale_up_limit(now, current), current)
            return min(desired, limit, self.max_replicas)
        if desired < current:
            limit = min(self._scale_down_limit(now, current), current)
            return max(desired, limit, self.min_replicas)
        return min(max(desired, self.min_replicas), self.max_replicas)

    def _period_start(self, now: float, current: int, period_s: float) -> int:
        added = _changed_in_period(self.up_events, now, period_s)
        removed = _changed_in_period(self.down_events, now, period_s)
        return current - added + removed

    def _scale_up_limit(self, now: float, current: int) -> int:
        rules = self.scale_up
        if rules.select == "Disabled":
            return current
        proposals = []
        for policy in rules.policies:
            start = self._period_start(now, current, policy.period_s)
            if policy.kind == "Pods":
                proposals.append(start + policy.value)
            else:
                proposals.append(math.ceil(start * (1 + policy.value / 100)))
        return min(proposals) if rules.select == "Min" else max(proposals)

    def _scale_down_limit(self, now: float, current: int) -> int:
        rules = self.scale_down
        if rules.select == "Disabled":
            return current
        proposals = []
        for policy in rules.policies:
            start = self._period_start(now, current, policy.period_s)
            if policy.kind == "Pods":
                proposals.append(start - policy.value)
            else:
                proposals.append(int(start * (1 - policy.value / 100)))
        # "Max" = the policy allowing the biggest change = the lowest replica count.
        return max(proposals) if rules.select == "Min" else min(proposals)
