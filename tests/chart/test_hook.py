"""The `helm test` hook: the script the rendered test Pod runs, run as a process against the API emulator and the
real operator's liveness endpoint — it passes when the CRDs are established, the operator's RBAC lets it list our
resources and the operator is alive, names what is wrong otherwise, and needs no permission the chart does not grant.

Not covered here: the Pod itself in a cluster (image, DNS name of the Service); the test calls the liveness endpoint
on loopback instead of through the Service.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.operator.conftest import ApiServerEmulator

from .emulator import ChartOperator, allowed, chart_rules, operator_calls
from .helm import CHART, all_options_render, default_render, find

TOKEN = "helm-test-token"  # the hook's requests, told apart from the operator's (both use the operator's account)


def hook(docs: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """(the Python script, its environment) of the rendered test Pod."""
    pod = next(d for d in docs if d["kind"] == "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python3", "-c"]
    return container["command"][2], {e["name"]: e["value"] for e in container["env"]}


def established(crd: dict[str, Any]) -> dict[str, Any]:
    """A CRD as the API server has it once it serves it."""
    since = "2026-01-01T00:00:00Z"
    conditions = [{"type": t, "status": "True", "reason": r, "message": "", "lastTransitionTime": since}
                  for t, r in (("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted"))]  # fmt: skip
    versions = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    return crd | {
        "status": {"acceptedNames": crd["spec"]["names"], "storedVersions": versions, "conditions": conditions}
    }


async def run_hook(api: ApiServerEmulator, script: str, env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    kubeconfig["users"][0]["user"]["token"] = TOKEN
    (tmp_path / "hook-kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env={**env, "KUBECONFIG": str(tmp_path / "hook-kubeconfig")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, output.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_pod_runs_the_chart_script_unchanged():
    script, env = hook(default_render())
    assert script.rstrip("\n") == (CHART / "files" / "helm-test.py").read_text().rstrip("\n")
    assert env == {"HEALTH_URL": "http://ga-gaussian-avatar-operator.avatar-system.svc:8080/healthz",
                   "WATCH_NAMESPACES": ""}  # fmt: skip
    service = find(default_render(), "Service")
    assert service["metadata"]["name"] == "ga-gaussian-avatar-operator"
    assert service["spec"]["ports"][0]["port"] == 8080 and service["spec"]["ports"][0]["targetPort"] == "health"


async def test_passes_against_a_live_operator_with_only_the_operators_permissions(api, tmp_path):
    docs = default_render()
    for crd in (d for d in docs if d["kind"] == "CustomResourceDefinition"):
        key = ("apiextensions.k8s.io/v1/customresourcedefinitions", None, crd["metadata"]["name"])
        api.objects[key] = established(crd)
    port = free_port()
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    operator = ChartOperator(api, args, liveness=f"http://127.0.0.1:{port}/healthz")
    script, env = hook(docs)
    await operator.start()
    try:
        code, output = await run_hook(
            api, script, {**os.environ, **env, "HEALTH_URL": f"http://127.0.0.1:{port}/healthz"}, tmp_path
        )
    finally:
        await operator.stop()
    assert code == 0, output
    assert [line.split()[0] for line in output.splitlines()] == ["ok"] * 5, output
    assert "the operator may list avatardeployments in all namespaces" in output

    calls = operator_calls(api, token=TOKEN)  # the hook's requests, as the operator's service account
    assert calls and all(allowed(chart_rules(docs), call) for call in calls), calls


async def test_fails_naming_the_crd_that_is_not_established(api, tmp_path):
    script, env = hook(all_options_render())
    assert env["WATCH_NAMESPACES"] == "avatars,team-b"
    code, output = await run_hook(api, script, {**os.environ, **env}, tmp_path)
    assert code == 1, output
    assert output.splitlines()[-1].startswith("FAIL CRD avatardeployments.gaussianavatar.io is not established"), output
