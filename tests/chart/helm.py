"""Running the real `helm` (hack/install-helm.sh puts v4.1.4 in .venv/bin) on charts/gaussian-avatar, with caching.

Every render is cached for the session by its arguments (helm takes ~50 ms per call, and the tests look at the same
few renders from many angles); callers get a deep copy, so no test can change another's view of a render.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "gaussian-avatar"
HELM = REPO / ".venv" / "bin" / "helm"
VALUES_ALL = Path(__file__).with_name("values-all.yaml")
RELEASE, NAMESPACE = "ga", "avatar-system"
SERVED = "gaussianavatar.io/v1alpha1"  # with --api-versions: our CRDs are already in the cluster (examples render)
PEERING = ("--set", "operator.peering.enabled=true", "--set", "operator.replicas=2")  # cluster-wide leader election


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm; fails the test (never skips) when hack/install-helm.sh has not been run."""
    if not HELM.is_file():
        pytest.fail(f"{HELM.relative_to(REPO)} is missing: run bash hack/install-helm.sh (make test does)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def _template(args: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert result.returncode == 0, f"helm template {' '.join(args)} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def template(*args: str) -> list[dict[str, Any]]:
    """The documents `helm template` renders (release `ga` in `avatar-system`) with these extra arguments."""
    return copy.deepcopy(list(_template(args)))


def template_error(*args: str) -> str:
    """What helm says when it refuses to render with these arguments (the test fails if it renders)."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert result.returncode != 0, f"helm template {' '.join(args)} rendered, expected a refusal"
    return result.stderr


@functools.cache
def notes(*args: str) -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it (no cluster: the CRDs are never served there)."""
    result = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:\n", 1)[1]


def default_render() -> list[dict[str, Any]]:
    """Default values, with the kopf CRDs of the chart's crds/ directory and the test hook."""
    return template("--include-crds")


def all_options_render() -> list[dict[str, Any]]:
    """values-all.yaml (every option set), our CRDs served so that the examples render too."""
    return template("--include-crds", "-f", str(VALUES_ALL), "--api-versions", SERVED)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one document of `kind` (and `name`); fails naming what was rendered."""
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec the chart renders, by 'Kind/name' (workload templates and bare Pods)."""
    specs = {}
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc["kind"] == "Pod":
            specs[f"Pod/{doc['metadata']['name']}"] = spec
        elif "template" in spec and "spec" in spec["template"]:
            specs[f"{doc['kind']}/{doc['metadata']['name']}"] = spec["template"]["spec"]
    return specs
