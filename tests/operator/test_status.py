"""status.py, pure: observed children in, the CR's status out — every condition and reason, transition times kept,
and every status accepted by the status schema of our own CRD (crds/*.yaml), which the API server enforces."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from avatar_operator import GROUP, VERSION, status
from avatar_operator.spec import SpecError, parse_deployment, parse_model_cache
from avatar_operator.status import Blocker, DeploymentObserved

from .schemas import validate_cr

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
BASE = {"image": "registry.example/avatar-runtime:1.0", "gpu": {"count": 0}, "replicas": 2,
        "sessions": {"concurrentLimit": 4}}  # fmt: skip
PUBLIC = {**BASE, "ingress": {"host": "avatar.example.com"}, "tls": {"issuerRef": {"name": "letsencrypt"}}}
GPU = {**PUBLIC, "gpu": {"count": 1}, "modelCacheRef": "models"}


def accepted(kind: str, spec: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """`result` as the status of a CR the API server would accept (our CRD's schema and CEL rules, strict)."""
    cr = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": "demo", "namespace": "avatars"}}
    validate_cr({**cr, "spec": spec, "status": result})
    return result


def deployment(
    observed: DeploymentObserved | None = None, *, spec: dict[str, Any] = PUBLIC, blocker: Blocker | None = None,
    old: dict | None = None, now: datetime = T0, active_sessions: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """deployment_status for `demo` in `avatars` at generation 3, checked against the CRD's status schema."""
    observed = observed or DeploymentObserved()
    result = status.deployment_status(
        name="demo", namespace="avatars", generation=3, spec=parse_deployment(spec) if blocker is None else None,
        blocker=blocker, observed=observed, old=old, now=now, active_sessions=active_sessions,
    )  # fmt: skip
    return accepted("AvatarDeployment", spec, result)


def conditions(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}


def runtime(ready: int = 2, *, generation: int = 1, observed: int = 1, available: bool = True, **extra) -> dict:
    conditions = [{"type": "Available", "status": "True" if available else "False"}, *extra.pop("conditions", [])]
    counts = {"replicas": ready, "updatedReplicas": ready, "readyReplicas": ready, "availableReplicas": ready}
    return {"metadata": {"name": "demo-runtime", "generation": generation}, "spec": {"replicas": ready},
            "status": {"observedGeneration": observed, **counts, **extra, "conditions": conditions}}  # fmt: skip


TURN_UP = {"metadata": {"name": "demo-turn"}, "status": {"replicas": 1, "readyReplicas": 1}}
ISSUED = {"metadata": {"name": "demo-tls"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
CACHE_READY = {"metadata": {"name": "models", "generation": 2},
               "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}}  # fmt: skip
ALL_UP = DeploymentObserved(runtime=runtime(), turn=TURN_UP, certificate=ISSUED)


# -- AvatarDeployment ---------------------------------------------------------------------------------------------
def test_everything_up_is_ready_with_capacity_url_and_generation():
    result = deployment(ALL_UP)
    assert {key: value for key, value in result.items() if key != "conditions"} == {
        "observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "capacity": 8, "url": "https://avatar.example.com",
    }  # fmt: skip
    assert conditions(result) == {
        "Ready": ("True", "Ready"), "ModelsReady": ("True", "EmbeddedModels"), "TurnReady": ("True", "TurnAvailable"),
        "CertificateReady": ("True", "CertificateIssued"), "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }  # fmt: skip
    ready = result["conditions"][0]
    assert ready == {"type": "Ready", "status": "True", "reason": "Ready", "observedGeneration": 3,
                     "message": "2 of 2 replicas ready, 8 sessions at https://avatar.example.com",
                     "lastTransitionTime": "2026-01-02T03:04:05Z"}  # fmt: skip


def test_active_sessions_from_the_runtime_gauge():
    exposition = (
        "# HELP avatar_sessions_active Conversations in progress.\n# TYPE avatar_sessions_active gauge\n"
        "avatar_sessions_active 3.0\navatar_sessions_active_total 99\navatar_sessions_limit 4.0\n"
    )
    assert status.sessions_active(exposition) == 3
    assert status.sessions_active('avatar_sessions_active{worker="0"} 1\navatar_sessions_active{worker="1"} 2\n') == 3
    assert status.sessions_active("avatar_sessions_limit 4\n") is None
    assert deployment(ALL_UP, active_sessions=5)["activeSessions"] == 5
    assert "activeSessions" not in deployment(ALL_UP)  # unknown: left out, not reported as 0


def test_transition_time_moves_only_when_a_condition_status_changes():
    first = deployment(DeploymentObserved(runtime=runtime(ready=0, available=False), turn=TURN_UP, certificate=ISSUED))
    assert conditions(first)["Ready"] == ("False", "DeploymentUnavailable")
    again = deployment(DeploymentObserved(runtime=runtime(ready=0, available=False), turn=TURN_UP, certificate=ISSUED),
                       old=first, now=T1)  # fmt: skip
    assert again == first  # an unchanged resync computes the very same status: nothing to write
    up = deployment(ALL_UP, old=first, now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in up["conditions"]}
    assert times["Ready"] == "2026-01-02T03:09:05Z"  # False → True
    assert times["TurnReady"] == times["ModelsReady"] == "2026-01-02T03:04:05Z"  # stayed True
    assert [c["type"] for c in status.transitions(first["conditions"], up["conditions"])] == ["Ready"]


@pytest.mark.parametrize(
    ("error_spec", "field"),
    [({**BASE, "gpu": {"count": 2}}, "spec.modelCacheRef"), ({**BASE, "replicas": -1}, "spec.replicas")],
)
def test_invalid_spec_names_the_field_and_marks_the_rest_unknown(error_spec, field):
    with pytest.raises(SpecError) as caught:
        parse_deployment(error_spec)
    result = deployment(blocker=Blocker.from_spec_error(caught.value))
    assert conditions(result) == {
        "Ready": ("False", "InvalidSpec"), "ModelsReady": ("Unknown", "InvalidSpec"),
        "TurnReady": ("Unknown", "InvalidSpec"), "CertificateReady": ("Unknown", "InvalidSpec"),
        "Progressing": ("False", "InvalidSpec"), "Degraded": ("True", "InvalidSpec"),
    }  # fmt: skip
    assert result["conditions"][0]["message"].startswith(f"{field}: ")
    assert (result["capacity"], result["url"]) == (0, "http://demo.avatars.svc")


def test_a_missing_reference_reports_but_keeps_counting_a_runtime_that_still_runs():
    blocker = Blocker(status.SECRET_NOT_FOUND, "spec.llm.apiKeySecretRef", "Secret llm not found in namespace avatars")
    result = deployment(DeploymentObserved(runtime=runtime()), blocker=blocker)
    assert result["conditions"][0]["message"] == "spec.llm.apiKeySecretRef: Secret llm not found in namespace avatars"
    assert (result["readyReplicas"], conditions(result)["Ready"]) == (2, ("False", "SecretNotFound"))


def test_waiting_for_the_cache():
    pulling = {"metadata": {"name": "models", "generation": 1}, "status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "JobRunning", "message": "Job models-pull-1 is pulling",
         "observedGeneration": 1}]}}  # fmt: skip
    result = deployment(DeploymentObserved(cache=pulling, turn=TURN_UP, certificate=ISSUED), spec=GPU)
    assert conditions(result)["ModelsReady"] == ("False", "CacheNotReady")
    assert conditions(result)["Ready"] == ("False", "CacheNotReady")
    assert conditions(result)["Progressing"] == ("True", "WaitingForCache")
    assert result["conditions"][0]["message"] == "waiting for AvatarModelCache models: Job models-pull-1 is pulling"
    # A Ready cache whose spec changed since (generation 3, condition for 2) is not ready yet.
    stale = copy.deepcopy(CACHE_READY)
    stale["metadata"]["generation"] = 3
    result = deployment(DeploymentObserved(cache=stale), spec=GPU)
    assert conditions(result)["ModelsReady"] == ("False", "CacheNotReady")
    assert "new spec is not processed yet" in result["conditions"][1]["message"]
    ready = deployment(
        DeploymentObserved(runtime=runtime(), cache=CACHE_READY, turn=TURN_UP, certificate=ISSUED), spec=GPU
    )
    assert conditions(ready)["ModelsReady"] == ("True", "CacheReady") and conditions(ready)["Ready"][0] == "True"


def test_a_failed_cache_degrades():
    ready = {"type": "Ready", "status": "False", "reason": "JobFailed", "message": "Job x failed: BackoffLimitExceeded"}
    failed = {"metadata": {"name": "models"}, "status": {"conditions": [ready]}}
    result = deployment(DeploymentObserved(cache=failed), spec=GPU)
    assert conditions(result)["ModelsReady"] == ("False", "CacheFailed")
    assert conditions(result)["Degraded"] == ("True", "CacheFailed")
    assert "BackoffLimitExceeded" in result["conditions"][-1]["message"]


def test_rollout_and_a_stuck_rollout():
    rolling = runtime(ready=1, generation=4, observed=3)
    result = deployment(DeploymentObserved(runtime=rolling, turn=TURN_UP, certificate=ISSUED))
    assert conditions(result)["Progressing"] == ("True", "RollingOut")
    assert conditions(result)["Ready"] == ("True", "Ready")  # the old pods still serve
    deadline = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "demo-runtime-1" has timed out progressing.'}  # fmt: skip
    stuck = runtime(ready=0, available=False, conditions=[deadline])
    result = deployment(DeploymentObserved(runtime=stuck, turn=TURN_UP, certificate=ISSUED))
    assert conditions(result)["Degraded"] == ("True", "DeploymentFailed")
    assert conditions(result)["Ready"] == ("False", "DeploymentUnavailable")
    assert "timed out progressing" in result["conditions"][0]["message"]


def test_zero_replicas_is_not_ready():
    result = deployment(DeploymentObserved(runtime=runtime(ready=0), turn=TURN_UP, certificate=ISSUED),
                        spec={**PUBLIC, "replicas": 0})  # fmt: skip
    assert conditions(result)["Ready"] == ("False", "ScaledToZero")


@pytest.mark.parametrize(
    ("turn_spec", "turn", "expected"),
    [
        ({"enabled": False}, None, ("True", "TurnDisabled")),
        ({"external": {"urls": ["turn:turn.example.com:3478"]}}, None, ("True", "ExternalTurn")),
        ({}, None, ("False", "TurnNotReady")),
        ({}, {"status": {"replicas": 1, "readyReplicas": 0}}, ("False", "TurnNotReady")),
        ({}, TURN_UP, ("True", "TurnAvailable")),
    ],
)
def test_turn(turn_spec, turn, expected):
    result = deployment(DeploymentObserved(runtime=runtime(), turn=turn, certificate=ISSUED),
                        spec={**PUBLIC, "turn": turn_spec})  # fmt: skip
    assert conditions(result)["TurnReady"] == expected
    assert conditions(result)["Ready"] == (("True", "Ready") if expected[0] == "True" else expected)


def test_no_public_host_means_no_coturn_and_a_service_url():
    result = deployment(DeploymentObserved(runtime=runtime()), spec=BASE)
    assert conditions(result)["TurnReady"] == ("True", "NoPublicHost")
    assert conditions(result)["CertificateReady"] == ("True", "TLSDisabled")
    assert (conditions(result)["Ready"], result["url"]) == (("True", "Ready"), "http://demo.avatars.svc")


@pytest.mark.parametrize(
    ("tls", "certificate", "expected", "url"),
    [
        (None, None, ("True", "TLSDisabled"), "http://avatar.example.com"),
        ({"secretName": "my-cert"}, None, ("True", "ExistingSecret"), "https://avatar.example.com"),
        ({"issuerRef": {"name": "le"}}, None, ("False", "CertificateNotReady"), "https://avatar.example.com"),
        (
            {"issuerRef": {"name": "le"}},
            {
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": "False", "message": "Issuing certificate as Secret does not exist"}
                    ]
                }
            },
            ("False", "CertificateNotReady"),  # fmt: skip
            "https://avatar.example.com",
        ),
        ({"issuerRef": {"name": "le"}}, ISSUED, ("True", "CertificateIssued"), "https://avatar.example.com"),
    ],
)
def test_certificate(tls, certificate, expected, url):
    spec = {**BASE, "ingress": {"host": "avatar.example.com"}, **({"tls": tls} if tls else {})}
    result = deployment(DeploymentObserved(runtime=runtime(), turn=TURN_UP, certificate=certificate), spec=spec)
    assert conditions(result)["CertificateReady"] == expected
    assert conditions(result)["Ready"] == (("True", "Ready") if expected[0] == "True" else expected)
    assert result["url"] == url
    if certificate is not None and expected[0] == "False":
        assert "Secret does not exist" in result["conditions"][0]["message"]


# -- AvatarModelCache ---------------------------------------------------------------------------------------------
CACHE = {"image": "registry.example/avatar-runtime:1.0",
         "models": [{"name": "sensevoice-small", "source": "modelscope", "repo": "iic/SenseVoiceSmall"}]}  # fmt: skip


def cache(job: dict | None, *, spec: dict = CACHE, blocker: Blocker | None = None, old: dict | None = None) -> dict:
    result = status.cache_status(
        generation=2, spec=parse_model_cache(spec) if blocker is None else None, blocker=blocker, job=job,
        claim_name=None if blocker else "models-models", old=old, now=T0,
    )  # fmt: skip
    return accepted("AvatarModelCache", spec, result)


def job(**job_status: Any) -> dict:
    return {"metadata": {"name": "models-pull-1a2b3c4d"}, "status": job_status}


FAILED = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
           "message": "Job has reached the specified backoff limit"}]  # fmt: skip
FINE = ("False", "AsExpected")


@pytest.mark.parametrize(
    ("the_job", "expected"),
    [
        (None, {"Ready": ("False", "JobPending"), "Progressing": ("True", "JobPending"), "Degraded": FINE}),
        (job(active=1), {"Ready": ("False", "JobRunning"), "Progressing": ("True", "JobRunning"), "Degraded": FINE}),
        (job(succeeded=1, conditions=[{"type": "Complete", "status": "True"}]),
         {"Ready": ("True", "JobSucceeded"), "Progressing": ("False", "JobSucceeded"), "Degraded": FINE}),
        (job(failed=5, conditions=FAILED),
         {"Ready": ("False", "JobFailed"), "Progressing": ("False", "JobFailed"), "Degraded": ("True", "JobFailed")}),
    ],
)  # fmt: skip
def test_cache_follows_its_job(the_job, expected):
    result = cache(the_job)
    assert conditions(result) == expected
    assert result["claimName"] == "models-models" and result["observedGeneration"] == 2
    assert result.get("jobName") == (the_job or {}).get("metadata", {}).get("name")  # absent, never null
    message = result["conditions"][0]["message"]
    if expected["Ready"][1] == "JobSucceeded":
        assert message == "Job models-pull-1a2b3c4d pulled the models: 1 models and 0 avatars in PVC models-models"
    if expected["Ready"][1] == "JobFailed":
        assert "backoff limit" in message and "kubectl logs job/models-pull-1a2b3c4d" in message


def test_invalid_cache_spec_names_the_field():
    with pytest.raises(SpecError) as caught:
        parse_model_cache({**CACHE, "models": [{"name": "m", "source": "url", "url": "https://x.example/m"}]})
    result = cache(None, blocker=Blocker.from_spec_error(caught.value))
    assert conditions(result)["Ready"] == ("False", "InvalidSpec")
    assert result["conditions"][0]["message"].startswith("spec.models.0.url: ")
    assert set(result) == {"observedGeneration", "conditions"}  # no claim, no job: left out, not null
