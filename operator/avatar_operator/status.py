"""The custom resources' status, computed from the spec and the children as observed — pure, no API calls, no clock.

Conditions follow metav1.Condition (type, status "True"/"False"/"Unknown", reason, message, lastTransitionTime,
observedGeneration). `lastTransitionTime` only moves when a condition's status does, so recomputing an unchanged
status every resync yields the same dict and the handler writes nothing. Every False/Unknown carries a reason (a
CamelCase constant below) and a message a person can act on; a problem in the spec names the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .builders import coturn
from .builders.ingress import public_host
from .spec import AvatarDeploymentSpec, AvatarModelCacheSpec, SpecError

Status = Literal["True", "False", "Unknown"]
Obj = Mapping[str, Any]

# Condition types (DESIGN §7).
READY, MODELS_READY, TURN_READY, CERTIFICATE_READY = "Ready", "ModelsReady", "TurnReady", "CertificateReady"
PROGRESSING, DEGRADED = "Progressing", "Degraded"
DEPLOYMENT_CONDITIONS = (READY, MODELS_READY, TURN_READY, CERTIFICATE_READY, PROGRESSING, DEGRADED)
CACHE_CONDITIONS = (READY, PROGRESSING, DEGRADED)

# Reasons: what blocks building anything at all ...
INVALID_SPEC = "InvalidSpec"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
CACHE_NOT_FOUND = "CacheNotFound"
CLAIM_NOT_FOUND = "ClaimNotFound"
CHILD_CONFLICT = "ChildConflict"
KIND_NOT_SERVED = "KindNotServed"  # a child's kind needs an add-on the cluster lacks (KEDA, cert-manager, Gateway API)
# ... and what the children say.
READY_REASON = "Ready"
CACHE_READY = "CacheReady"
CACHE_NOT_READY = "CacheNotReady"
CACHE_FAILED = "CacheFailed"
EMBEDDED_MODELS = "EmbeddedModels"
DEPLOYMENT_UNAVAILABLE = "DeploymentUnavailable"
DEPLOYMENT_FAILED = "DeploymentFailed"
SCALED_TO_ZERO = "ScaledToZero"
TURN_AVAILABLE = "TurnAvailable"
TURN_NOT_READY = "TurnNotReady"
TURN_DISABLED = "TurnDisabled"
EXTERNAL_TURN = "ExternalTurn"
NO_PUBLIC_HOST = "NoPublicHost"
CERTIFICATE_ISSUED = "CertificateIssued"
CERTIFICATE_NOT_READY = "CertificateNotReady"
TLS_DISABLED = "TLSDisabled"
EXISTING_SECRET = "ExistingSecret"
WAITING_FOR_CACHE = "WaitingForCache"
ROLLING_OUT = "RollingOut"
ROLLOUT_COMPLETE = "RolloutComplete"
AS_EXPECTED = "AsExpected"
JOB_PENDING = "JobPending"
JOB_RUNNING = "JobRunning"
JOB_SUCCEEDED = "JobSucceeded"
JOB_FAILED = "JobFailed"
FINE = "no problem observed"


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str


@dataclass(frozen=True)
class Blocker:
    """Why nothing was built: an invalid spec or a missing referenced object; `field` is the spec field to fix."""

    reason: str
    field: str
    message: str

    @classmethod
    def from_spec_error(cls, error: SpecError) -> Blocker:
        return cls(INVALID_SPEC, error.field, error.message)

    @property
    def text(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class DeploymentObserved:
    """The children of an AvatarDeployment (and its cache) as read back; None = absent or not used."""

    runtime: Obj | None = None  # Deployment NAME-runtime
    cache: Obj | None = None  # the AvatarModelCache named by spec.modelCacheRef
    turn: Obj | None = None  # StatefulSet NAME-turn
    certificate: Obj | None = None  # cert-manager Certificate NAME-tls


def _compact(status: dict[str, Any]) -> dict[str, Any]:
    """Leave out what is unknown: the CRD's status fields are not nullable, and in a merge patch null means delete."""
    return {key: value for key, value in status.items() if value is not None}


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(obj: Obj | None, type_: str) -> Obj | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(obj: Obj | None, type_: str) -> bool:
    condition = find_condition(obj, type_)
    return condition is not None and condition.get("status") == "True"


def merge_conditions(
    old: Sequence[Obj] | None, new: Sequence[Condition], *, generation: int | None, now: datetime
) -> list[dict[str, Any]]:
    """metav1.Conditions for `new`, keeping each old lastTransitionTime whose status did not change."""
    previous = {c.get("type"): c for c in old or []}
    result = []
    for condition in new:
        before = previous.get(condition.type)
        changed = before is None or before.get("status") != condition.status or not before.get("lastTransitionTime")
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": timestamp(now) if changed else before["lastTransitionTime"],
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        result.append(entry)
    return result


def transitions(old: Sequence[Obj] | None, new: Sequence[Obj]) -> list[Obj]:
    """The conditions whose status or reason changed (worth an Event); unchanged ones are not repeated."""
    previous = {c.get("type"): (c.get("status"), c.get("reason")) for c in old or []}
    return [c for c in new if previous.get(c["type"]) != (c["status"], c["reason"])]


# -- AvatarModelCache ---------------------------------------------------------------------------------------------
def job_state(job: Obj | None) -> tuple[str, str]:
    """(reason, message) of the pull Job: JobPending, JobRunning, JobSucceeded or JobFailed."""
    if job is None:
        return JOB_PENDING, "the model pull Job has not been created yet"
    name = job.get("metadata", {}).get("name", "")
    failed = find_condition(job, "Failed")
    if failed is not None and failed.get("status") == "True":
        why = failed.get("message") or failed.get("reason") or "failed"
        return JOB_FAILED, f"Job {name} failed: {why}; see `kubectl logs job/{name}`"
    status = job.get("status") or {}
    if is_true(job, "Complete") or (status.get("succeeded") or 0) >= 1:
        return JOB_SUCCEEDED, f"Job {name} pulled the models"
    return JOB_RUNNING, f"Job {name} is pulling the models ({status.get('active') or 0} active pods)"


def _flag(value: bool) -> Status:
    return "True" if value else "False"


def cache_status(
    *, generation: int | None, spec: AvatarModelCacheSpec | None, blocker: Blocker | None, job: Obj | None,
    claim_name: str | None, old: Obj | None, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """status of an AvatarModelCache: Ready only once the pull Job has succeeded."""
    if blocker is not None or spec is None:
        blocker = blocker or Blocker(INVALID_SPEC, "spec", "could not be parsed")
        conditions = [
            Condition(READY, "False", blocker.reason, blocker.text),
            Condition(PROGRESSING, "False", blocker.reason, "nothing is built until this is fixed"),
            Condition(DEGRADED, "True", blocker.reason, blocker.text),
        ]
    else:
        reason, message = job_state(job)
        if reason == JOB_SUCCEEDED:
            what = f"{len(spec.models)} models" if spec.models else "the runtime's default production models"
            message = f"{message}: {what} and {len(spec.avatars)} avatars in PVC {claim_name}"
        failed = reason == JOB_FAILED
        conditions = [
            Condition(READY, _flag(reason == JOB_SUCCEEDED), reason, message),
            Condition(PROGRESSING, _flag(reason in (JOB_PENDING, JOB_RUNNING)), reason, message),
            Condition(DEGRADED, _flag(failed), reason if failed else AS_EXPECTED, message if failed else FINE),
        ]
    return _compact({
        "observedGeneration": generation,
        "claimName": claim_name,
        "jobName": (job or {}).get("metadata", {}).get("name"),
        "conditions": merge_conditions((old or {}).get("conditions"), conditions, generation=generation, now=now),
    })  # fmt: skip


# -- AvatarDeployment ---------------------------------------------------------------------------------------------
SESSIONS_METRIC = "avatar_sessions_active"  # the runtime's gauge (DESIGN §6)


def sessions_active(metrics: str) -> int | None:
    """The runtime's `avatar_sessions_active` gauge from its Prometheus text exposition; None if absent."""
    values = []
    for line in metrics.splitlines():
        name, _, rest = line.partition(" ")
        if name == SESSIONS_METRIC or name.startswith(SESSIONS_METRIC + "{"):
            values.append(float(rest.split()[0]))
    return int(sum(values)) if values else None


def url(name: str, namespace: str, spec: AvatarDeploymentSpec | None) -> str:
    """Where browsers open the avatar: the public host, or the in-cluster Service when nothing is exposed."""
    host = public_host(spec) if spec is not None else None
    if host is None:
        return f"http://{name}.{namespace}.svc"
    return f"{'https' if spec is not None and spec.tls is not None else 'http'}://{host}"


def cache_readiness(cache: Obj | None) -> Condition:
    """ModelsReady from the referenced AvatarModelCache (None = no cache needed: embedded engines)."""
    if cache is None:
        return Condition(
            MODELS_READY, "True", EMBEDDED_MODELS, "no modelCacheRef: the runtime uses its embedded engines"
        )
    name = cache.get("metadata", {}).get("name", "")
    ready = find_condition(cache, READY)
    generation = cache.get("metadata", {}).get("generation")
    stale = (
        ready is not None and generation is not None and (ready.get("observedGeneration") or generation) < generation
    )
    if ready is not None and ready.get("status") == "True" and not stale:
        return Condition(MODELS_READY, "True", CACHE_READY, f"AvatarModelCache {name} is ready")
    if ready is not None and ready.get("reason") in (JOB_FAILED, INVALID_SPEC):
        return Condition(MODELS_READY, "False", CACHE_FAILED, f"AvatarModelCache {name}: {ready.get('message', '')}")
    why = "its new spec is not processed yet" if stale else (ready or {}).get("message") or "no status yet"
    return Condition(MODELS_READY, "False", CACHE_NOT_READY, f"waiting for AvatarModelCache {name}: {why}")


def turn_readiness(spec: AvatarDeploymentSpec, statefulset: Obj | None) -> Condition:
    if not spec.turn.enabled:
        return Condition(TURN_READY, "True", TURN_DISABLED, "spec.turn.enabled is false: no TURN relay is offered")
    if spec.turn.external is not None:
        return Condition(TURN_READY, "True", EXTERNAL_TURN, f"external TURN {', '.join(spec.turn.external.urls)}")
    if not coturn.enabled(spec):
        why = "no public host (spec.turn.host, spec.ingress.host or spec.gateway.hostname): no TURN server is run"
        return Condition(TURN_READY, "True", NO_PUBLIC_HOST, why)
    ready = ((statefulset or {}).get("status") or {}).get("readyReplicas") or 0
    if ready >= 1:
        return Condition(TURN_READY, "True", TURN_AVAILABLE, "coturn is ready")
    missing = "has not been created yet" if statefulset is None else "has no ready pod yet"
    return Condition(TURN_READY, "False", TURN_NOT_READY, f"coturn StatefulSet {missing}")


def certificate_readiness(spec: AvatarDeploymentSpec, certificate: Obj | None) -> Condition:
    if spec.tls is None:
        return Condition(CERTIFICATE_READY, "True", TLS_DISABLED, "spec.tls is not set: no certificate is used")
    if spec.tls.secret_name is not None:
        return Condition(CERTIFICATE_READY, "True", EXISTING_SECRET, f"TLS Secret {spec.tls.secret_name} is used")
    ready = find_condition(certificate, READY)
    if ready is not None and ready.get("status") == "True":
        return Condition(CERTIFICATE_READY, "True", CERTIFICATE_ISSUED, "cert-manager issued the certificate")
    why = (ready or {}).get("message") or ("not created yet" if certificate is None else "not issued yet")
    return Condition(CERTIFICATE_READY, "False", CERTIFICATE_NOT_READY, f"Certificate: {why}")


def _rollout(spec: AvatarDeploymentSpec, runtime: Obj) -> tuple[bool, str]:
    """(still rolling out, message) of the runtime Deployment."""
    status = runtime.get("status") or {}
    generation = runtime.get("metadata", {}).get("generation")
    wanted = (runtime.get("spec") or {}).get("replicas", spec.replicas)
    updated, total = status.get("updatedReplicas") or 0, status.get("replicas") or 0
    if generation is not None and (status.get("observedGeneration") or 0) < generation:
        return True, "the Deployment controller has not seen the new pod template yet"
    if updated < wanted or total > updated:
        return True, f"{updated} of {wanted} replicas updated"
    return False, f"{updated} replicas up to date"


def _failure(runtime: Obj | None) -> str | None:
    """Why the runtime Deployment is stuck (progress deadline exceeded, pods cannot be created), or None."""
    progressing = find_condition(runtime, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return progressing.get("message") or "progress deadline exceeded"
    replica_failure = find_condition(runtime, "ReplicaFailure")
    if replica_failure is not None and replica_failure.get("status") == "True":
        return replica_failure.get("message") or "pods cannot be created"
    return None


def _blocked(blocker: Blocker) -> list[Condition]:
    """Nothing was built: Ready=False naming the field; what depends on children is Unknown (not checked)."""
    unknown = f"not checked: {blocker.text}"
    return [
        Condition(READY, "False", blocker.reason, blocker.text),
        *(
            Condition(type_, "Unknown", blocker.reason, unknown)
            for type_ in (MODELS_READY, TURN_READY, CERTIFICATE_READY)
        ),
        Condition(PROGRESSING, "False", blocker.reason, "nothing is built or changed until this is fixed"),
        Condition(DEGRADED, "True", blocker.reason, blocker.text),
    ]


def _progressing(spec: AvatarDeploymentSpec, models: Condition, runtime: Obj | None) -> Condition:
    if runtime is None and models.status != "True":
        return Condition(PROGRESSING, "True", WAITING_FOR_CACHE, models.message)
    if runtime is None:
        return Condition(PROGRESSING, "True", ROLLING_OUT, "the runtime Deployment is being created")
    rolling, message = _rollout(spec, runtime)
    return Condition(PROGRESSING, "True" if rolling else "False", ROLLING_OUT if rolling else ROLLOUT_COMPLETE, message)


def _degraded(models: Condition, failure: str | None) -> Condition:
    if models.reason == CACHE_FAILED:
        return Condition(DEGRADED, "True", CACHE_FAILED, models.message)
    if failure is not None:
        return Condition(DEGRADED, "True", DEPLOYMENT_FAILED, f"runtime Deployment: {failure}")
    return Condition(DEGRADED, "False", AS_EXPECTED, FINE)


def _ready(spec: AvatarDeploymentSpec, runtime: Obj | None, parts: list[Condition], link: str) -> Condition:
    """Ready: models, then the runtime Deployment available, then TURN and certificate; the first gap is the reason."""
    models, turn, certificate = parts
    status = (runtime or {}).get("status") or {}
    replicas, ready = status.get("replicas") or 0, status.get("readyReplicas") or 0
    if models.status != "True":
        return Condition(READY, "False", models.reason, models.message)
    if spec.replicas == 0 and not spec.autoscaling.enabled:
        return Condition(READY, "False", SCALED_TO_ZERO, "spec.replicas is 0")
    if runtime is None or ready < 1 or not is_true(runtime, "Available"):
        why = _failure(runtime) or f"{ready} of {replicas} runtime pods ready"
        return Condition(READY, "False", DEPLOYMENT_UNAVAILABLE, f"runtime Deployment is not available: {why}")
    for part in (turn, certificate):
        if part.status != "True":
            return Condition(READY, "False", part.reason, part.message)
    capacity = spec.sessions.concurrent_limit * ready
    return Condition(
        READY, "True", READY_REASON, f"{ready} of {replicas} replicas ready, {capacity} sessions at {link}"
    )


def deployment_status(
    *, name: str, namespace: str, generation: int | None, spec: AvatarDeploymentSpec | None,
    blocker: Blocker | None, observed: DeploymentObserved, old: Obj | None, now: datetime,
    active_sessions: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """status of an AvatarDeployment: Ready only when the runtime is available, models, TURN and TLS ready.

    `active_sessions` is the sum of the ready pods' gauges, None when unknown (then left out, not guessed)."""
    runtime_status = (observed.runtime or {}).get("status") or {}
    replicas, ready = runtime_status.get("replicas") or 0, runtime_status.get("readyReplicas") or 0
    link = url(name, namespace, spec)
    if blocker is not None or spec is None:
        conditions = _blocked(blocker or Blocker(INVALID_SPEC, "spec", "could not be parsed"))
    else:
        models = cache_readiness(observed.cache if spec.model_cache_ref else None)
        parts = [models, turn_readiness(spec, observed.turn), certificate_readiness(spec, observed.certificate)]
        progressing = _progressing(spec, models, observed.runtime)
        degraded = _degraded(models, _failure(observed.runtime))
        conditions = [_ready(spec, observed.runtime, parts, link), *parts, progressing, degraded]
    limit = spec.sessions.concurrent_limit if spec is not None else 0
    return _compact({
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "activeSessions": active_sessions,
        "capacity": limit * ready,
        "url": link,
        "conditions": merge_conditions((old or {}).get("conditions"), conditions, generation=generation, now=now),
    })  # fmt: skip
