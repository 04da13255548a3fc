"""operator/deploy/operator.yaml (install without Helm): valid objects, RBAC covering what the operator does."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.operator.schemas import validate_builtin

DEPLOY = Path(__file__).resolve().parents[2] / "operator" / "deploy" / "operator.yaml"


def _documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(DEPLOY.read_text()) if doc]


def test_every_object_is_valid():
    docs = _documents()
    assert [d["kind"] for d in docs] == [
        "Namespace", "NetworkPolicy", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"
    ]  # fmt: skip
    for doc in docs:
        validate_builtin(doc)


def test_rbac_lets_the_operator_write_every_child_kind_and_its_status():
    rules = next(d for d in _documents() if d["kind"] == "ClusterRole")["rules"]

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)

    children = [("", "configmaps"), ("", "secrets"), ("", "services"), ("", "persistentvolumeclaims"),
                ("apps", "deployments"), ("apps", "statefulsets"), ("batch", "jobs"),
                ("networking.k8s.io", "ingresses"), ("gateway.networking.k8s.io", "httproutes"),
                ("cert-manager.io", "certificates")]  # fmt: skip
    for group, resource in children:
        # PVCs are written once and Jobs re-created, never patched (kube.py); tests/chart/test_rbac.py checks it all.
        patched = ("patch",) if resource not in ("persistentvolumeclaims", "jobs") else ()
        for verb in ("get", "list", "create", "delete", *patched):
            assert allowed(group, resource, verb), (group, resource, verb)
    for resource in ("avatardeployments", "avatarmodelcaches"):
        assert allowed("gaussianavatar.io", resource, "watch") and allowed("gaussianavatar.io", resource, "patch")
        assert allowed("gaussianavatar.io", f"{resource}/status", "patch")
    assert allowed("", "pods/proxy", "get") and allowed("", "events", "create")
