"""A discrete-event model of one runtime Deployment: pods, ingress placement, the HPA loop, the ReplicaSet's choice of
victim, termination. Pure: `simulate(policy, sessions, cluster)` returns numbers and touches nothing else.

Periodic loops run at fixed phases (scrape at :00/:15/..., HPA sync 10 s after each scrape, operator resync every
30 s, readiness probe every 5 s), so a run is a function of its inputs only.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from .hpa import TOLERANCE, Autoscaler, desired_from_ratio
from .policies import Policy
from .workload import Sessions

SCRAPE_PERIOD_S = 15.0  # Prometheus scrape interval / metrics-server --metric-resolution
HPA_PHASE_S = 10.0  # the HPA sync reads a metric 10 s old
RESYNC_PERIOD_S = 30.0  # operator resync that writes pod-deletion-cost
PROBE_PERIOD_S = 5.0  # the runtime pod's readinessProbe periodSeconds (operator builder)
PROBE_FAILURES = 2  # its failureThreshold
REFUSAL_S = 0.01  # one refused try (503 from a pod through the proxy)


@dataclass(frozen=True)
class Cluster:
    """The pool and its timings."""

    limit: int = 4  # sessions.concurrentLimit
    startup_s: float = 120.0  # pod created → Ready (schedule, image present, model load)
    min_replicas: int = 1
    max_replicas: int = 10
    retry_delay_s: float = 0.3  # the web client's wait before repeating a refused request (± a third, jittered)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.startup_s < 0 or self.retry_delay_s < 0:
            raise ValueError("limit >= 1, startup_s >= 0 and retry_delay_s >= 0 are required")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 1 <= min_replicas <= max_replicas")


@dataclass
class Pod:
    uid: int  # creation order (rotation order)
    tiebreak: int  # stands for the random pod UID the ReplicaSet breaks ties with
    created: float
    started: bool = False  # model loaded, /readyz would pass if not for capacity
    ready: bool = False  # the Ready condition
    ready_since: float = 0.0
    probe_failures: int = 0
    deleted_at: float | None = None
    signalled: bool = False  # SIGTERM delivered (after preStop)
    ended_at: float | None = None
    cost: int = 0  # pod-deletion-cost as last written
    sessions: set[int] = field(default_factory=set)


@dataclass
class Result:
    """What one policy did with the sessions."""

    policy: str
    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    cut: int = 0
    pod_seconds: float = 0.0
    window_s: float = 0.0
    peak_pods: int = 0
    waits_s: list[float] = field(default_factory=list)  # time-to-session of each accepted session
    rejected_at_s: list[float] = field(default_factory=list)  # when each rejected session gave up
    victim_sessions: list[int] = field(default_factory=list)  # live sessions on each started pod deleted

    @property
    def gpu_pod_hours(self) -> float:
        return self.pod_seconds / 3600.0

    @property
    def mean_pods(self) -> float:
        return self.pod_seconds / self.window_s if self.window_s else 0.0


def _log_bucket(age_s: float) -> int:
    # LogarithmicScaleDown (on by default since 1.22) compares floor(log2(age in ns)): pods of similar age tie.
    return int(math.log2(max(age_s, 1e-9) * 1e9))


def scale_down_rank(pod: Pod, now: float, use_cost: bool) -> tuple:
    """The ReplicaSet's deletion order (lowest first): not ready before ready, then pod-deletion-cost, then the
    shortest time ready (ready pods) or since creation (others), then the pod UID."""
    cost = pod.cost if use_cost else 0
    if pod.ready:
        return (1, cost, _log_bucket(now - pod.ready_since), pod.tiebreak)
    return (0, cost, _log_bucket(now - pod.created), pod.tiebreak)


class Simulation:
    def __init__(self, policy: Policy, sessions: Sessions, cluster: Cluster, window_s: float) -> None:
        self.policy, self.sessions, self.cluster, self.window_s = policy, sessions, cluster, window_s
        self.hpa = Autoscaler(cluster.min_replicas, cluster.max_replicas, policy.scale_up, policy.scale_down)
        self.pods: list[Pod] = []  # live (not ended) pods, creation order
        self.replicas = cluster.min_replicas  # Deployment spec.replicas
        self.scraped: dict[int, float] = {}  # pod uid → metric value at the last scrape
        self.events: list[tuple[float, int, str, int]] = []
        self.seq = 0
        self.rr = 0  # the proxy's round-robin cursor
        self.next_uid = 0
        self.where: dict[int, Pod] = {}  # session → pod holding it
        self.refusals: dict[int, int] = {}
        self.result = Result(policy.name, offered=len(sessions), window_s=window_s)

    # --- event plumbing -------------------------------------------------------------------------------------------
    def at(self, t: float, kind: str, ref: int = -1) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, ref))

    def run(self) -> Result:
        for _ in range(self.cluster.min_replicas):  # start warm: the minimum pool is up
            pod = self._create_pod(0.0)
            self._mark_started(pod, 0.0)
        for i, t in enumerate(self.sessions.arrival_s):
            self.at(float(t), "offer", i)
        horizon = self.window_s + float(max(self.sessions.length_s, default=0.0)) + 1800.0
        t = 0.0
        while t < horizon:
            self.at(t, "scrape")
            self.at(t + HPA_PHASE_S, "hpa")
            t += SCRAPE_PERIOD_S
        for k in range(int(horizon // RESYNC_PERIOD_S) + 1):
            self.at(k * RESYNC_PERIOD_S + 5.0, "resync")
        if self.policy.readiness_as_capacity:
            for k in range(int(horizon // PROBE_PERIOD_S) + 1):
                self.at(k * PROBE_PERIOD_S + 2.5, "probe")
        handlers = {
            "offer": self._offer, "end": self._session_end, "started": self._started, "sigterm": self._sigterm,
            "deadline": self._deadline, "scrape": self._scrape, "hpa": self._hpa_sync, "resync": self._resync,
            "probe": self._probe,
        }  # fmt: skip
        while self.events:
            now, _, kind, ref = heapq.heappop(self.events)
            handlers[kind](now, ref)
        for pod in self.pods:  # still running at the end: count them to the end of the window
            self._account(pod, self.window_s)
        return self.result

    # --- pods -----------------------------------------------------------------------------------------------------
    def _create_pod(self, now: float) -> Pod:
        uid = self.next_uid
        self.next_uid += 1
        pod = Pod(uid=uid, tiebreak=(uid * 2654435761) % 4294967296, created=now)
        self.pods.append(pod)
        if now < self.window_s:
            self.result.peak_pods = max(self.result.peak_pods, len(self.pods))
        self.at(now + self.cluster.startup_s, "started", uid)
        return pod

    def _pod(self, uid: int) -> Pod | None:
        for pod in self.pods:
            if pod.uid == uid:
                return pod
        return None

    def _mark_started(self, pod: Pod, now: float) -> None:
        if pod.started:
            return
        pod.started = pod.ready = True
        pod.ready_since = now

    def _started(self, now: float, uid: int) -> None:
        pod = self._pod(uid)
        if pod is not None and pod.deleted_at is None:
            self._mark_started(pod, now)

    def _active(self) -> list[Pod]:
        return [p for p in self.pods if p.deleted_at is None]

    def _account(self, pod: Pod, end: float) -> None:
        self.result.pod_seconds += max(0.0, min(end, self.window_s) - min(pod.created, self.window_s))

    def _end_pod(self, pod: Pod, now: float) -> None:
        for sid in sorted(pod.sessions):  # cut what is left
            self.result.cut += 1
            del self.where[sid]
        pod.sessions.clear()
        pod.ended_at = now
        self._account(pod, now)
        self.pods.remove(pod)

    def _delete(self, pod: Pod, now: float) -> None:
        if pod.started:
            self.result.victim_sessions.append(len(pod.sessions))
        pod.deleted_at = now
        pod.ready = False  # endpoints drop a terminating pod at once
        if not pod.started:  # nothing loaded, nothing to drain
            self._end_pod(pod, now)
            return
        self.at(now + self.policy.pre_stop_s, "sigterm", pod.uid)

    def _sigterm(self, now: float, uid: int) -> None:
        pod = self._pod(uid)
        if pod is None:
            return
        pod.signalled = True
        if not pod.sessions:
            self._end_pod(pod, now)
        else:
            self.at(now + self.policy.stop_limit_s, "deadline", uid)

    def _deadline(self, now: float, uid: int) -> None:
        pod = self._pod(uid)
        if pod is not None:
            self._end_pod(pod, now)

    # --- sessions -------------------------------------------------------------------------------------------------
    def _in_rotation(self) -> list[Pod]:
        return [p for p in self.pods if p.ready and p.deleted_at is None]

    def _offer(self, now: float, ref: int) -> None:
        sid, attempt = ref % len(self.sessions), ref // len(self.sessions)
        rotation = self._in_rotation()
        for _ in range(min(self.policy.ingress_tries, len(rotation))):
            pod = rotation[self.rr % len(rotation)]
            self.rr += 1
            if len(pod.sessions) < self.cluster.limit:
                self._accept(pod, sid, now)
                return
            self.refusals[sid] = self.refusals.get(sid, 0) + 1
        if attempt < self.policy.client_retries:
            jitter = (float(self.sessions.jitter[sid]) + 0.618034 * attempt) % 1.0
            delay = self.cluster.retry_delay_s * (2 + 2 * jitter) / 3  # 300 ms ± 100 ms, as web/src/session.js
            self.at(now + delay, "offer", sid + (attempt + 1) * len(self.sessions))
        else:
            self.result.rejected += 1
            self.result.rejected_at_s.append(now)

    def _accept(self, pod: Pod, sid: int, now: float) -> None:
        pod.sessions.add(sid)
        self.where[sid] = pod
        self.result.accepted += 1
        wait = now - float(self.sessions.arrival_s[sid]) + REFUSAL_S * self.refusals.get(sid, 0)
        self.result.waits_s.append(wait)
        self.at(now + float(self.sessions.length_s[sid]), "end", sid)

    def _session_end(self, now: float, sid: int) -> None:
        pod = self.where.pop(sid, None)
        if pod is None:  # cut earlier
            return
        pod.sessions.discard(sid)
        if pod.signalled and not pod.sessions:
            self._end_pod(pod, now)

    # --- control loops --------------------------------------------------------------------------------------------
    def _scrape(self, now: float, _: int) -> None:
        if self.policy.metric == "sessions":  # the PodMonitor scrapes every running pod, draining ones included
            self.scraped = {p.uid: float(len(p.sessions)) for p in self.pods if p.started}
        else:  # metrics-server: CPU of running pods
            cpu = self.policy.cpu
            assert cpu is not None
            self.scraped = {p.uid: cpu.base + cpu.per_session * len(p.sessions) for p in self.pods if p.started}

    def _hpa_sync(self, now: float, _: int) -> None:
        active = self._active()
        if self.policy.metric == "sessions":
            desired = self._sessions_recommendation(active)
        else:
            desired = self._cpu_recommendation(active)
        self._scale_to(self.hpa.decide(now, self.replicas, desired), now)

    def _sessions_recommendation(self, active: list[Pod]) -> int:
        # KEDA's External metric, AverageValue: ratio over status.replicas (non-terminating pods).
        usage = sum(self.scraped.values())
        status_replicas = max(1, len(active))
        return desired_from_ratio(status_replicas, usage / (self.policy.target * status_replicas))

    def _cpu_recommendation(self, active: list[Pod]) -> int:
        # The Resource-metric path: unready pods ignored, pods without a sample assumed at 0 (scale-up) or at the
        # target (scale-down), and no change if that flips the direction.
        target = self.policy.target
        ready = [p for p in active if p.ready and p.uid in self.scraped]
        missing = [p for p in active if p.ready and p.uid not in self.scraped]
        unready = [p for p in active if not p.ready]
        if not ready:
            return self.replicas
        ratio = sum(self.scraped[p.uid] for p in ready) / (target * len(ready))
        if not missing and not unready:
            return self.replicas if abs(1 - ratio) <= TOLERANCE else desired_from_ratio(len(ready), ratio)
        values = [self.scraped[p.uid] for p in ready]
        values += [target if ratio < 1 else 0.0] * len(missing)
        if ratio > 1:
            values += [0.0] * len(unready)
        new_ratio = sum(values) / (target * len(values))
        if abs(1 - new_ratio) <= TOLERANCE or (ratio < 1) != (new_ratio < 1):
            return self.replicas
        new = desired_from_ratio(len(values), new_ratio)
        if (new_ratio < 1 and new > self.replicas) or (new_ratio > 1 and new < self.replicas):
            return self.replicas
        return new

    def _scale_to(self, replicas: int, now: float) -> None:
        self.replicas = replicas
        active = self._active()
        for _ in range(replicas - len(active)):
            self._create_pod(now)
        surplus = len(active) - replicas
        if surplus > 0:
            ranked = sorted(active, key=lambda p: scale_down_rank(p, now, self.policy.deletion_cost))
            for pod in ranked[:surplus]:
                self._delete(pod, now)

    def _resync(self, now: float, _: int) -> None:
        if self.policy.deletion_cost:
            for pod in self._active():
                pod.cost = len(pod.sessions)

    def _probe(self, now: float, _: int) -> None:
        # Readiness-as-capacity: /readyz fails while the pod is full; NotReady after PROBE_FAILURES in a row,
        # Ready again after one success.
        for pod in self._active():
            if not pod.started:
                continue
            if len(pod.sessions) >= self.cluster.limit:
                pod.probe_failures += 1
                if pod.probe_failures >= PROBE_FAILURES and pod.ready:
                    pod.ready = False
            else:
                pod.probe_failures = 0
                if not pod.ready:
                    pod.ready, pod.ready_since = True, now


def simulate(policy: Policy, sessions: Sessions, cluster: Cluster, window_s: float) -> Result:
    """Run `policy` against `sessions` (arriving within `window_s`) and return what happened."""
    return Simulation(policy, sessions, cluster, window_s).run()
