"""The autoscaler builders (builders/autoscaler.py) and the pod annotations (pods.py): exact manifests, when each
engine's object exists, the target, the PromQL selection of the pods, and validation against the real schemas —
autoscaling/v2 HPA with kubernetes-validate (strict) for Kubernetes 1.29, 1.32 and 1.35, the KEDA ScaledObject
against the vendored subset of KEDA's CRD (tests/operator/schemas.py), the AvatarDeployment against our CRD.
"""

from __future__ import annotations

import copy
import re

import pytest
from avatar_operator.builders import autoscaler
from avatar_operator.builders.children import deployment_children
from avatar_operator.builders.common import SPEC_HASH, Owner, spec_hash
from avatar_operator.kube import removals, without
from avatar_operator.pods import DELETION_COST, DO_NOT_DISRUPT, SAFE_TO_EVICT, annotation_patch, pod_annotations
from avatar_operator.spec import parse_deployment

from tests.operator import schemas as S

OWNER = Owner(kind="AvatarDeployment", name="demo", namespace="avatars", uid="0d7e6f4a-uid")
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
CPU = {"image": "ghcr.io/example/avatar-runtime:1.0", "gpu": {"count": 0}}
KUBERNETES_VERSIONS = ("1.29.0", "1.32.0", "1.35.0")
METADATA = {
    "name": "demo-runtime",
    "namespace": "avatars",
    "labels": {
        "app.kubernetes.io/name": "gaussian-avatar", "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": "runtime", "app.kubernetes.io/part-of": "gaussian-avatar",
        "app.kubernetes.io/managed-by": "gaussian-avatar-operator",
    },
    "ownerReferences": [{"apiVersion": "gaussianavatar.io/v1alpha1", "kind": "AvatarDeployment", "name": "demo",
                         "uid": "0d7e6f4a-uid", "controller": True, "blockOwnerDeletion": True}],
    "annotations": {},
}  # fmt: skip
TARGET_REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-runtime"}
BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                             {"type": "Pods", "value": 2, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                  "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
}  # fmt: skip


def _spec(**autoscaling):
    sessions = {"concurrentLimit": 4}
    return parse_deployment({**CPU, "sessions": sessions, "autoscaling": {"enabled": True, **autoscaling}})


def _unhashed(manifest):
    stripped = copy.deepcopy(manifest)
    assert stripped["metadata"]["annotations"].pop(SPEC_HASH) == spec_hash(stripped)
    return stripped


def test_keda_scaled_object_is_exact():
    made = autoscaler.build_scaled_object(OWNER, _spec(minReplicas=2, maxReplicas=6), PROMETHEUS)
    assert _unhashed(made) == {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": METADATA,
        "spec": {
            "scaleTargetRef": TARGET_REF,
            "minReplicaCount": 2,
            "maxReplicaCount": 6,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": BEHAVIOR}},
            "triggers": [{
                "type": "prometheus",
                "name": "active-sessions",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": PROMETHEUS,
                    "query": 'sum(avatar_sessions_active{namespace="avatars",pod=~"demo-runtime-[a-z0-9]+-[a-z0-9]+"})',
                    "threshold": "3",  # concurrentLimit 4 - 1
                },
            }],
        },
    }  # fmt: skip
    assert autoscaler.build_hpa(OWNER, _spec(minReplicas=2, maxReplicas=6)) is None  # one engine at a time


def test_hpa_is_exact():
    spec = _spec(engine="hpa", maxReplicas=8, targetActiveSessions=2)
    assert _unhashed(autoscaler.build_hpa(OWNER, spec)) == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": METADATA,
        "spec": {
            "scaleTargetRef": TARGET_REF,
            "minReplicas": 1,
            "maxReplicas": 8,
            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "avatar_sessions_active"},
                                                  "target": {"type": "AverageValue", "averageValue": "2"}}}],
            "behavior": BEHAVIOR,
        },
    }  # fmt: skip
    assert autoscaler.build_scaled_object(OWNER, spec, PROMETHEUS) is None


def test_nothing_is_built_while_autoscaling_is_off():
    for engine in ("keda", "hpa"):
        spec = parse_deployment({**CPU, "autoscaling": {"enabled": False, "engine": engine}})
        assert autoscaler.build_scaled_object(OWNER, spec, PROMETHEUS) is None
        assert autoscaler.build_hpa(OWNER, spec) is None
        assert autoscaler.external_fields(spec) == ()


@pytest.mark.parametrize(("limit", "target", "expected"), [(4, None, 3), (1, None, 1), (2, None, 1), (8, 8, 8)])
def test_target_defaults_to_one_seat_below_the_limit(limit, target, expected):
    autoscaling = {"enabled": True, **({"targetActiveSessions": target} if target else {})}
    spec = parse_deployment({**CPU, "sessions": {"concurrentLimit": limit}, "autoscaling": autoscaling})
    assert autoscaler.target_active_sessions(spec) == expected
    made = autoscaler.build_scaled_object(OWNER, spec, PROMETHEUS)
    assert made["spec"]["triggers"][0]["metadata"]["threshold"] == str(expected)


def test_the_query_selects_exactly_this_avatars_runtime_pods():
    """PromQL label regexes are fully anchored (RE2); re.fullmatch reads them the same way for this syntax."""
    pattern = re.search(r'pod=~"([^"]+)"', autoscaler.sessions_query(OWNER)).group(1)
    assert re.fullmatch(pattern, "demo-runtime-7d9f8c6b5-x2x4z")
    for other in ("demo-runtime-x-runtime-7d9f8c6b5-x2x4z", "demo-turn-0", "demo-runtime", "demo2-runtime-7d9f-x2x4z"):
        assert not re.fullmatch(pattern, other), other


def test_autoscaler_owns_the_replicas_exactly_while_enabled():
    assert autoscaler.external_fields(_spec()) == (("spec", "replicas"),)
    assert autoscaler.external_fields(_spec(engine="hpa")) == (("spec", "replicas"),)


def test_an_external_field_is_not_sent_as_null_from_the_old_last_applied():
    """The pure half of kube.apply's `external`: the patch after switching autoscaling on. Without `without`, the
    removal step would send replicas: null (the API server's default, 1) — the emulator test shows the whole path."""
    before = {"spec": {"replicas": 2, "template": {"spec": {"nodeSelector": {"zone": "a"}}}}}
    after = {"spec": {"template": {"spec": {}}}}
    assert removals(before, after)["spec"]["replicas"] is None
    body = without(removals(before, after), autoscaler.external_fields(_spec()))
    assert body == {"spec": {"template": {"spec": {"nodeSelector": None}}}}
    assert without(before, [("spec", "replicas"), ("spec", "absent", "deeper"), ()]) == {
        "spec": {"template": {"spec": {"nodeSelector": {"zone": "a"}}}}}  # fmt: skip
    assert before["spec"]["replicas"] == 2  # the input is left alone


@pytest.mark.parametrize("engine", ["keda", "hpa"])
def test_the_autoscaler_is_a_child_right_after_its_scale_target(engine):
    children = deployment_children(
        OWNER, _spec(engine=engine), turn_secret=None, claim_name=None, allowed_peer_cidrs=[],
        prometheus_address="https://prometheus.example:9091",
    )  # fmt: skip
    kinds = [manifest["kind"] for manifest in children]
    expected = {"keda": "ScaledObject", "hpa": "HorizontalPodAutoscaler"}[engine]
    assert kinds[kinds.index("Deployment") + 1] == expected
    assert {"ScaledObject", "HorizontalPodAutoscaler"} & set(kinds) == {expected}
    deployment = children[kinds.index("Deployment")]
    assert "replicas" not in deployment["spec"]
    if engine == "keda":
        assert children[kinds.index(expected)]["spec"]["triggers"][0]["metadata"]["serverAddress"] == (
            "https://prometheus.example:9091"
        )


# -- schemas ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_hpa_passes_the_kubernetes_schema(version):
    for spec in (_spec(engine="hpa"), _spec(engine="hpa", minReplicas=3, maxReplicas=3, targetActiveSessions=4)):
        assert S.builtin_problems(autoscaler.build_hpa(OWNER, spec), version) == []
    bad = autoscaler.build_hpa(OWNER, _spec(engine="hpa"))
    bad["spec"]["metrics"][0]["pods"]["target"]["averagevalue"] = "2"  # a typo: strict validation sees it
    assert S.builtin_problems(bad, version)


def test_scaled_object_passes_the_keda_schema_and_the_schema_sees_mistakes():
    made = autoscaler.build_scaled_object(OWNER, _spec(maxReplicas=10), PROMETHEUS)
    S.validate_manifest(made)
    hpa = "spec.advanced.horizontalPodAutoscalerConfig"
    cases = [
        (lambda s: s["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["policies"][0].pop(
            "periodSeconds"), f"{hpa}.behavior.scaleDown.policies.0.periodSeconds"),
        (lambda s: s["advanced"]["horizontalPodAutoscalerConfig"].update(behaviour={}), f"{hpa}.behaviour"),
        (lambda s: s["triggers"][0].update(metricType="Average"), "spec.triggers.0.metricType"),
        (lambda s: s.update(minReplicaCount="1"), "spec.minReplicaCount"),
    ]  # fmt: skip
    for change, field in cases:
        bad = copy.deepcopy(made)
        change(bad["spec"])
        _, problems = S.cr_problems(bad)
        assert field in {p.field for p in problems}, (field, problems)


@pytest.mark.parametrize("engine", ["keda", "hpa"])
def test_an_avatar_deployment_with_autoscaling_passes_the_crd(engine):
    autoscaling = {"enabled": True, "engine": engine, "minReplicas": 2, "maxReplicas": 12, "targetActiveSessions": 3}
    sessions = {"concurrentLimit": 4, "drainSeconds": 600}
    doc = {"apiVersion": "gaussianavatar.io/v1alpha1", "kind": "AvatarDeployment",
           "metadata": {"name": "demo", "namespace": "avatars"},
           "spec": {**CPU, "sessions": sessions, "autoscaling": autoscaling}}  # fmt: skip
    defaulted = S.validate_cr(doc)
    assert parse_deployment(defaulted["spec"]) == parse_deployment(doc["spec"])


# -- pod annotations -------------------------------------------------------------------------------------------------
def test_pod_annotations_follow_the_session_count():
    assert pod_annotations(0) == {DELETION_COST: "0", SAFE_TO_EVICT: "true", DO_NOT_DISRUPT: None}
    assert pod_annotations(3) == {DELETION_COST: "3", SAFE_TO_EVICT: "false", DO_NOT_DISRUPT: "true"}
    assert (DELETION_COST, SAFE_TO_EVICT, DO_NOT_DISRUPT) == (
        "controller.kubernetes.io/pod-deletion-cost",
        "cluster-autoscaler.kubernetes.io/safe-to-evict",
        "karpenter.sh/do-not-disrupt",
    )


def test_annotation_patch_changes_only_what_differs():
    other = {"kubectl.kubernetes.io/restartedAt": "x"}
    assert annotation_patch(None, 0) == {DELETION_COST: "0", SAFE_TO_EVICT: "true"}  # nothing to remove
    busy = {**other, DELETION_COST: "2", SAFE_TO_EVICT: "false", DO_NOT_DISRUPT: "true"}
    assert annotation_patch(busy, 2) is None  # unchanged: no write
    assert annotation_patch(busy, 5) == {DELETION_COST: "5"}
    assert annotation_patch(busy, 0) == {DELETION_COST: "0", SAFE_TO_EVICT: "true", DO_NOT_DISRUPT: None}
    idle = {DELETION_COST: "0", SAFE_TO_EVICT: "true"}
    assert annotation_patch(idle, 0) is None
    assert annotation_patch(idle, 1) == {DELETION_COST: "1", SAFE_TO_EVICT: "false", DO_NOT_DISRUPT: "true"}
