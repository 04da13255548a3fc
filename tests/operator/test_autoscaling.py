"""Autoscaling through the real operator against the kmock API emulator: who owns the runtime Deployment's
`replicas`, the autoscaler objects following `spec.autoscaling`, and the session-aware pod annotations.

The test plays the autoscaler (it writes `replicas` the way KEDA's or the HPA's controller would, through the
Deployment's main resource as the emulator has no scale subresource) and the runtime pods (ready pods whose /metrics
the API server's pod proxy answers). Not covered by the emulator: KEDA and the HPA controller themselves (the
ScaledObject and HPA are checked against KEDA's and Kubernetes' schemas instead), the ReplicaSet's use of the
deletion cost, and the cluster autoscaler / Karpenter reading their annotations.
"""

from __future__ import annotations

import json

import pytest
from avatar_operator.handlers import OperatorConfig
from avatar_operator.kube import LAST_APPLIED
from avatar_operator.pods import DELETION_COST, DO_NOT_DISRUPT, SAFE_TO_EVICT

from .conftest import (
    NAMESPACE,
    condition,
    create_cr,
    eventually,
    get,
    owned,
    patch,
    path,
    post,
    reads,
    reason,
    requests,
)
from .schemas import validate_manifest
from .test_operator import CPU_SPEC, DEMO_CHILDREN, IMAGE, RUNTIME, all_up, handled, llm_secret, writes_to_children

SCALED_OBJECT, HPA = ("ScaledObject", "demo-runtime"), ("HorizontalPodAutoscaler", "demo-runtime")
OURS = (DELETION_COST, SAFE_TO_EVICT, DO_NOT_DISRUPT)


def replicas(api) -> int | None:
    return get(api, *RUNTIME)["spec"].get("replicas")


def last_applied(api) -> dict:
    return json.loads(get(api, *RUNTIME)["metadata"]["annotations"][LAST_APPLIED])


def runtime_writes(api, since: int) -> list[str]:
    return [write for write in writes_to_children(api, since) if write.endswith(path(*RUNTIME))]


async def test_autoscaling_on_and_off_switches_who_owns_the_replicas(api, operator):
    """Off: the operator writes spec.replicas and repairs a hand edit. On (KEDA): a ScaledObject appears, the
    switch itself leaves the live replicas alone (no `replicas: null` from the old last-applied annotation, which
    the API server would read as 1), and the autoscaler's choice survives the resyncs. Engine keda → hpa: an HPA
    replaces the ScaledObject. Off again: the HPA is pruned and spec.replicas is back."""
    await llm_secret(api)
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)  # replicas 2, concurrentLimit 3
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN)
    assert replicas(api) == 2
    await patch(api, *RUNTIME, {"spec": {"replicas": 5}})
    await eventually(lambda: replicas(api) == 2, what="the hand-set replicas repaired while autoscaling is off")

    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"enabled": True, "maxReplicas": 6}}})
    scaled = await eventually(lambda: get(api, *SCALED_OBJECT), what="the ScaledObject")
    await eventually(lambda: "replicas" not in last_applied(api)["spec"], what="the Deployment without replicas")
    assert replicas(api) == 2  # the switch did not reset them
    validate_manifest(scaled)
    assert scaled["spec"]["scaleTargetRef"]["name"] == "demo-runtime"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 6)
    assert scaled["spec"]["triggers"][0]["metadata"]["threshold"] == "2"  # concurrentLimit 3 - 1

    await patch(api, *RUNTIME, {"spec": {"replicas": 3}})  # what KEDA's HPA does
    since = len(requests(api))
    await eventually(lambda: reads(api, path(*RUNTIME), since) >= 3, what="a few resyncs")
    assert replicas(api) == 3 and runtime_writes(api, since) == []

    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"engine": "hpa"}}})
    hpa = await eventually(lambda: get(api, *HPA) if get(api, *SCALED_OBJECT) is None else None,
                           what="the HPA in place of the ScaledObject")  # fmt: skip
    validate_manifest(hpa)
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "avatar_sessions_active"
    assert replicas(api) == 3
    assert owned(api, uid) == DEMO_CHILDREN | {HPA}

    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"enabled": False}}})
    await eventually(lambda: get(api, *HPA) is None and replicas(api) == 2, what="HPA pruned, replicas back")
    assert owned(api, uid) == DEMO_CHILDREN
    await eventually(lambda: handled(api, "AvatarDeployment", "demo"), what="kopf done with the update")


async def test_keda_missing_is_reported_and_the_hpa_engine_works_without_it(api, operator):
    """Without KEDA's CRD the ScaledObject cannot be created: Ready=False, reason KindNotServed, naming
    spec.autoscaling.engine and the fix; engine hpa (autoscaling/v2 is built in) then goes through."""
    # As a cluster without the CRD answers: no such resource in discovery, 404 on create.
    del api.resources["keda.sh/v1alpha1/scaledobjects"]
    api[f"post /apis/keda.sh/v1alpha1/namespaces/{NAMESPACE}/scaledobjects"] << 404
    await llm_secret(api)
    spec = {**CPU_SPEC, "autoscaling": {"enabled": True}}
    await create_cr(api, "AvatarDeployment", "demo", spec)
    await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "KindNotServed", what="KindNotServed")
    ready = condition(get(api, "AvatarDeployment", "demo"), "Ready")
    assert ready["message"] == (
        "spec.autoscaling.engine: ScaledObject (keda.sh/v1alpha1) is not served by this cluster: install KEDA, or "
        "set spec.autoscaling.engine: hpa"
    )
    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"engine": "hpa"}}})
    await eventually(lambda: get(api, *HPA), what="the HPA")
    await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "DeploymentUnavailable")
    await eventually(lambda: handled(api, "AvatarDeployment", "demo"), what="kopf done with the update")


def metrics(active: int) -> bytes:
    return f"# TYPE avatar_sessions_active gauge\navatar_sessions_active {active}.0\n".encode()


async def seed_pod(api, name: str, sessions: dict[str, int]) -> None:
    """A ready runtime pod whose /metrics (behind the pod proxy) reports `sessions[name]` at the time of the read."""
    labels = {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "runtime"}
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    annotations = {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}  # not ours: must stay
    meta = {"name": name, "labels": labels, "annotations": annotations}
    spec = {"containers": [{"name": "runtime", "image": IMAGE}]}
    await post(api, "Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": ready})
    api[f"get /api/v1/namespaces/{NAMESPACE}/pods/{name}:8282/proxy/metrics"] << (lambda: metrics(sessions[name]))


def ours(api, pod: str) -> dict[str, str]:
    annotations = get(api, "Pod", pod)["metadata"].get("annotations") or {}
    assert annotations.get("kubectl.kubernetes.io/restartedAt") == "2026-01-01T00:00:00Z"
    return {key: value for key, value in annotations.items() if key in OURS}


BUSY = {DELETION_COST: "2", SAFE_TO_EVICT: "false", DO_NOT_DISRUPT: "true"}


async def test_pods_carry_their_session_count_for_scale_down_and_node_drains(api, operator):
    """Each ready runtime pod gets pod-deletion-cost = its sessions, safe-to-evict false and do-not-disrupt while
    busy; the annotations follow the count as it changes (do-not-disrupt removed when idle), and an unchanged
    count writes nothing."""
    await llm_secret(api)
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN)
    await all_up(api)
    sessions = {"demo-runtime-a1": 0, "demo-runtime-b2": 2}
    for pod in sessions:
        await seed_pod(api, pod, sessions)
    idle = {DELETION_COST: "0", SAFE_TO_EVICT: "true"}
    await eventually(lambda: ours(api, "demo-runtime-a1") == idle and ours(api, "demo-runtime-b2") == BUSY,
                     what="annotations from the session counts")  # fmt: skip
    await eventually(lambda: get(api, "AvatarDeployment", "demo").get("status", {}).get("activeSessions") == 2)

    sessions.update({"demo-runtime-a1": 1, "demo-runtime-b2": 0})  # one conversation ended, another began
    await eventually(lambda: ours(api, "demo-runtime-b2") == idle, what="b2 idle: do-not-disrupt removed")
    busy_one = {DELETION_COST: "1", SAFE_TO_EVICT: "false", DO_NOT_DISRUPT: "true"}
    await eventually(lambda: ours(api, "demo-runtime-a1") == busy_one, what="a1 busy")

    since = len(requests(api))
    proxy = f"/api/v1/namespaces/{NAMESPACE}/pods/demo-runtime-a1:8282/proxy/metrics"
    await eventually(lambda: reads(api, proxy, since) >= 3, what="a few more reads of the same counts")
    pod_writes = [w for w in writes_to_children(api, since) if "/pods/" in w]
    assert pod_writes == []


async def test_a_pod_whose_metrics_cannot_be_read_keeps_its_annotations_and_the_others_are_updated(api, operator):
    """A ready pod whose /metrics fails (here: the pod proxy answers 503) is left as it is and the sum is unknown
    (left out of the status, never a partial sum); the readable pods are still annotated."""
    await llm_secret(api)
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN)
    await all_up(api)
    # The unreadable pod first: every pass that sees the readable one sees it too.
    meta = {"name": "demo-runtime-c3", "labels": {"app.kubernetes.io/instance": "demo",
                                                  "app.kubernetes.io/component": "runtime"}}  # fmt: skip
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    api[f"get /api/v1/namespaces/{NAMESPACE}/pods/demo-runtime-c3:8282/proxy/metrics"] << 503
    await post(api, "Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}, "status": ready})
    await seed_pod(api, "demo-runtime-a1", {"demo-runtime-a1": 2})
    await eventually(lambda: ours(api, "demo-runtime-a1") == BUSY, what="the readable pod annotated")
    status = lambda: get(api, "AvatarDeployment", "demo").get("status", {})  # noqa: E731
    await eventually(lambda: status().get("readyReplicas") == 2 and "activeSessions" not in status(),
                     what="the sum left out of the status")  # fmt: skip
    assert "annotations" not in get(api, "Pod", "demo-runtime-c3")["metadata"]


def test_prometheus_address_comes_from_the_environment_and_is_checked_at_start():
    default = "http://prometheus-operated.monitoring.svc:9090"
    assert OperatorConfig.from_env({}).prometheus_address == default
    assert OperatorConfig.from_env({"AVATAR_PROMETHEUS_SERVER_ADDRESS": ""}).prometheus_address == default
    address = "https://prometheus.example:9091/prom"
    assert OperatorConfig.from_env({"AVATAR_PROMETHEUS_SERVER_ADDRESS": address}).prometheus_address == address
    for bad in ("prometheus:9090", "ftp://prometheus", "http://"):
        with pytest.raises(ValueError, match="AVATAR_PROMETHEUS_SERVER_ADDRESS: "):
            OperatorConfig.from_env({"AVATAR_PROMETHEUS_SERVER_ADDRESS": bad})
