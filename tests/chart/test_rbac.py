"""The chart's RBAC grants exactly what the operator's code uses: the real operator, started with the arguments the
chart's Deployment passes, goes through every path against the API emulator; every request it made is mapped to
(apiGroup, resource, verb) the way the API server's authorizer does and compared with the rendered roles both ways:
each request is allowed (namespace and resourceNames included), and each granted permission was used — or is in
`NOT_EXERCISED` with the reason the emulator cannot show it.

Not covered by the emulator: the authorizer itself (emulated here by `emulator.allowed`), server-side apply (never
used by the operator), and what a real cluster adds around the operator (garbage collection, admission).
"""

from __future__ import annotations

import kmock
import pytest
from avatar_operator.handlers import CACHE_CHILD_KINDS, DEPLOYMENT_CHILD_KINDS
from avatar_operator.kube import collection_path, plural

from tests.operator.conftest import (
    NAMESPACE,
    create_cr,
    eventually,
    get,
    live,
    owned,
    patch,
)
from tests.operator.test_operator import (
    CACHE_SPEC,
    CPU_SPEC,
    DEMO_CHILDREN,
    GPU_SPEC,
    RUNTIME,
    all_up,
    handled,
    job_succeeded,
    llm_secret,
    runtime_pod,
)

from .emulator import (
    ChartOperator,
    Triple,
    add_chart_crds,
    add_namespaces,
    add_objects,
    allowed,
    chart_rules,
    granted,
    operator_calls,
    parse_namespaces_as_a_resource,
)
from .helm import PEERING, all_options_render, default_render, template

# Granted but not used in these runs, each with why. Keep it short: everything else must be observed.
NOT_EXERCISED: dict[Triple, str] = {}
UNPATCHED_KINDS = {"PersistentVolumeClaim", "Job"}  # written once / re-created (kube.py), never patched back


def container_args(docs):
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


async def seed_stale_children(api, owner_kind: str, owner: str, uid: str, kinds) -> list[tuple[str, str, str]]:
    """One object of each child kind, owned by `owner` but no longer wanted (as an earlier operator version, or an
    earlier spec, may have left it): the next resync must prune every one."""
    stale = []
    reference = {"apiVersion": "gaussianavatar.io/v1alpha1", "kind": owner_kind, "name": owner, "uid": uid,
                 "controller": True}  # fmt: skip
    labels = {"app.kubernetes.io/instance": owner, "app.kubernetes.io/managed-by": "gaussian-avatar-operator"}
    for api_version, kind in kinds:
        name = f"{owner}-stale-{kind.lower()}"
        meta = {"name": name, "namespace": NAMESPACE, "labels": labels, "ownerReferences": [reference]}
        body = {"apiVersion": api_version, "kind": kind, "metadata": meta}
        async with api.post(collection_path(api_version, kind, NAMESPACE), json=body) as response:
            assert response.status < 300, await response.text()
        stale.append((api_version, kind, name))
    return stale


def gone(api, stale: list[tuple[str, str, str]]) -> bool:
    """Whether none of these (apiVersion, kind, name) exists any more."""
    for api_version, kind, name in stale:
        key = (kmock.resource(f"{api_version}/{plural(kind)}"), NAMESPACE, name)
        if key in api.objects and not api.objects[key].deleted:
            return False
    return True


async def every_path(api) -> None:
    """Caches, deployments, waiting, readiness, pod metrics and annotations, autoscalers of both engines, drift
    repair, pruning, spec changes.

    Deletion is left out: kopf's finalizer (added for the resync timer, observed as `patch`) is removed with a JSON
    patch testing the resourceVersion, which the emulator answers 500 instead of 422 when it moved, so kopf retries
    the same request for minutes; on a real server that is the same `patch` permission."""
    await llm_secret(api)
    cache_uid = await create_cr(api, "AvatarModelCache", "models", CACHE_SPEC)
    uid = await create_cr(api, "AvatarDeployment", "demo", GPU_SPEC)  # ingress, TLS issuer, coturn, cache
    job = await eventually(lambda: next(iter(live(api, "Job")), None), what="the pull Job")
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN - {RUNTIME}, what="children but the runtime")
    await job_succeeded(api, job)
    await eventually(lambda: get(api, *RUNTIME), what="the runtime Deployment once the cache is ready")
    await all_up(api)
    for pod, active in (("demo-runtime-a1", 1), ("demo-runtime-b2", 2)):
        await runtime_pod(api, pod, active)
    await eventually(lambda: get(api, "AvatarDeployment", "demo")["status"].get("activeSessions") == 3)
    # ... and each pod gets its scale-down annotations (pods patch).
    await eventually(lambda: get(api, "Pod", "demo-runtime-b2")["metadata"].get("annotations"), what="annotated pods")
    # Autoscaling with KEDA: from here on the ScaledObject is a child like the others (tampered and repaired below).
    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"enabled": True}}})
    await eventually(lambda: get(api, "ScaledObject", "demo-runtime"), what="the ScaledObject")

    # Drift and pruning at once: every child edited behind the operator's back is patched back (except the kinds
    # never patched), and a stale child of every kind the prune step lists is deleted.
    children = owned(api, uid) | owned(api, cache_uid)
    tampered = {"metadata": {"labels": {"app.kubernetes.io/part-of": "tampered"}}}
    for kind, name in children - {c for c in children if c[0] in UNPATCHED_KINDS}:
        await patch(api, kind, name, tampered)
    stale = await seed_stale_children(api, "AvatarDeployment", "demo", uid, DEPLOYMENT_CHILD_KINDS)
    stale += await seed_stale_children(api, "AvatarModelCache", "models", cache_uid, CACHE_CHILD_KINDS)
    await eventually(
        lambda: all(get(api, k, n)["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gaussian-avatar"
                    for k, n in children if get(api, k, n) is not None),
        what="every tampered child repaired",
    )  # fmt: skip
    await eventually(lambda: gone(api, stale), what="every stale child pruned")

    # Spec changes: ingress → gateway (Ingress deleted, HTTPRoute created) and a new model list (Job re-created);
    # then a new gateway hostname (HTTPRoute patched) and an existing claim (our PVC deleted).
    gateway = {"parentRef": {"name": "public", "namespace": "infra"}, "hostname": "avatar.example.com"}
    await patch(api, "AvatarDeployment", "demo", {"spec": {"ingress": None, "gateway": gateway}})
    models = [*CACHE_SPEC["models"], {"name": "lam-a2e", "source": "huggingface", "repo": "3DAIGC/LAM_audio2exp"}]
    await patch(api, "AvatarModelCache", "models", {"spec": {"models": models}})
    await eventually(lambda: get(api, "HTTPRoute", "demo") and not get(api, "Ingress", "demo"))
    # The other engine: an HPA instead of the ScaledObject (created, the ScaledObject pruned), then changed.
    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"engine": "hpa"}}})
    await eventually(lambda: get(api, "HorizontalPodAutoscaler", "demo-runtime")
                     and not get(api, "ScaledObject", "demo-runtime"), what="the HPA in its place")  # fmt: skip
    await patch(api, "AvatarDeployment", "demo", {"spec": {"autoscaling": {"maxReplicas": 8}}})
    await eventually(lambda: get(api, "HorizontalPodAutoscaler", "demo-runtime")["spec"]["maxReplicas"] == 8)
    await eventually(lambda: job not in live(api, "Job") and live(api, "Job"), what="the Job replaced")
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared"},
             "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "50Gi"}}}}  # fmt: skip
    async with api.post(collection_path("v1", "PersistentVolumeClaim", NAMESPACE), json=claim) as response:
        assert response.status < 300
    await patch(api, "AvatarDeployment", "demo", {"spec": {"gateway": {"hostname": "avatars.example.com"}}})
    await patch(api, "AvatarModelCache", "models", {"spec": {"storage": {"existingClaim": "shared"}}})
    await eventually(lambda: get(api, "HTTPRoute", "demo")["spec"]["hostnames"] == ["avatars.example.com"])
    await eventually(lambda: get(api, "PersistentVolumeClaim", "models-models") is None, what="our PVC pruned")
    for kind, name in (("AvatarDeployment", "demo"), ("AvatarModelCache", "models")):  # a prompt stop
        await eventually(lambda k=kind, n=name: handled(api, k, n), what=f"kopf done with {kind} {name}")


@pytest.fixture
def peered_render():
    return template(*PEERING)


def allowed_calls(api, rules) -> list:
    """Every request the operator made, after checking that the chart's RBAC allows each one."""
    calls = operator_calls(api)
    refused = sorted({f"{c.triple} ns={c.namespace} name={c.name}" for c in calls if not allowed(rules, c)})
    assert refused == [], "the operator made requests the chart's RBAC refuses"
    return calls


async def test_cluster_wide_rbac_is_exactly_what_the_operator_uses(api, peered_render):
    """Cluster-wide, with leader election on (the rendered ClusterKopfPeering in the emulator)."""
    add_chart_crds(api)
    add_objects(api, [d for d in peered_render if d["apiVersion"] == "kopf.dev/v1"])
    operator = ChartOperator(api, container_args(peered_render))
    await operator.start()
    try:
        await every_path(api)
    finally:
        await operator.stop()

    rules = chart_rules(peered_render)
    calls = allowed_calls(api, rules)
    observed = {call.triple for call in calls}
    unused = granted(rules) - observed - NOT_EXERCISED.keys()
    assert unused == set(), f"granted but never used: {sorted(map(str, unused))}"
    for triple, reason in NOT_EXERCISED.items():
        assert triple in granted(rules) and triple not in observed and reason, triple
    assert Triple("kopf.dev", "clusterkopfpeerings", "patch") in observed  # the peering really ran

    # Without peering the chart grants the same minus the peering rules.
    plain = granted(chart_rules(default_render()))
    assert plain == {t for t in granted(rules) if t.group != "kopf.dev"}
    print("\n".join(sorted(map(str, observed))))  # the list of what the operator uses (pytest -s shows it)


async def test_namespace_mode_rbac_is_exactly_what_the_operator_uses(api, monkeypatch):
    """Watching two namespaces with leader election (values-all.yaml): the operator's requests stay in those
    namespaces (granted by their Roles) apart from kopf's cluster-wide reads of CRDs and namespaces (the small
    ClusterRole), and the Roles hold the same rules as the cluster-wide ClusterRole."""
    docs = all_options_render()
    args = container_args(docs)
    parse_namespaces_as_a_resource(monkeypatch)
    add_namespaces(api, [NAMESPACE, "team-b", "elsewhere"])
    add_chart_crds(api)
    add_objects(api, [d for d in docs if d["apiVersion"] == "kopf.dev/v1"])
    operator = ChartOperator(api, args)
    assert operator.namespaces == [NAMESPACE, "team-b"]
    await operator.start()
    try:
        await llm_secret(api)
        uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
        await eventually(lambda: owned(api, uid) == DEMO_CHILDREN, what="children in namespace mode")
    finally:
        await operator.stop()

    rules = chart_rules(docs)
    calls = allowed_calls(api, rules)
    cluster_wide = {c.triple for c in calls if c.namespace is None}
    cluster_role = granted([rule for rule in rules if rule.namespace is None])
    assert cluster_wide == cluster_role == {
        Triple("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        Triple("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        Triple("", "namespaces", "list"), Triple("", "namespaces", "watch"),
    }  # fmt: skip
    watched = {(c.triple.resource, c.namespace) for c in calls if c.triple.verb == "watch" and c.namespace}
    assert {("avatardeployments", "avatars"), ("avatardeployments", "team-b"), ("kopfpeerings", "team-b")} <= watched
    assert Triple("kopf.dev", "kopfpeerings", "patch") in {c.triple for c in calls}

    # Each Role holds the cluster-wide ClusterRole's namespaced rules (KopfPeering for ClusterKopfPeering).
    namespaced = granted(chart_rules(template(*PEERING))) - cluster_role
    for namespace in (NAMESPACE, "team-b"):
        role = granted([rule for rule in rules if rule.namespace == namespace])
        as_cluster_wide = {
            t._replace(resource="clusterkopfpeerings") if t.resource == "kopfpeerings" else t for t in role
        }
        assert as_cluster_wide == namespaced, namespace
