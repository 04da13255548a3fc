"""The real operator (kopf, in the test's event loop) against the kmock Kubernetes API emulator, over HTTP.

kmock serves discovery, create/patch/delete, list and watch in memory. It does NOT do what a real API server adds
(see /work/shared/notes/operator-testing.md): no validation or defaulting, no server-side apply or strategic merge,
no garbage collection, no status-subresource isolation, and no server-set metadata. `ApiServerEmulator` fills the
metadata kopf and the operator depend on (uid for owner references, generation for observedGeneration,
resourceVersion so kopf can tell its own patches apart); each test says which other real-server behaviour it cannot
cover.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import kopf
import pytest
import yaml
from avatar_operator import GROUP, VERSION, handlers
from avatar_operator.kube import plural
from kmock._internal import dicts

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "avatars"
# Kinds that are not built in (kmock's bundled discovery is a k3s without CRDs; Gateway API is in it).
EXTRA_RESOURCES = {
    "cert-manager.io/v1/certificates": ("Certificate", {"status"}),
    "keda.sh/v1alpha1/scaledobjects": ("ScaledObject", {"status"}),
}
VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock plus the metadata a real API server sets: uid, creationTimestamp, generation, resourceVersion.

    generation starts at 1 and moves when a patch changes `spec` (not for the status subresource);
    resourceVersion moves on every write, which kopf needs to recognise (and skip) the echo of its own patches.
    """

    _versions = itertools.count(1000)
    # Injected API failures: each [method, path fragment, status, times left] answers matching requests with that
    # status (a Kubernetes `Status` body) before anything is stored, as an overloaded or flaky API server would.
    faults: list[list[Any]] = []

    async def _handle(self, request: kmock.Request):  # type: ignore[override]
        for fault in self.faults:
            method, fragment, status, left = fault
            if left > 0 and request.method.value == method and fragment in request.url.path:
                fault[3] -= 1
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                        "reason": {409: "Conflict", 429: "TooManyRequests"}.get(status, "InternalError"),
                        "message": f"injected {status} for {method} {request.url.path}"}  # fmt: skip
                headers = {"Retry-After": "1"} if status == 429 else None
                return aiohttp.web.json_response(body, status=status, headers=headers)
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            if request.action == kmock.action.CREATE:
                meta = data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):  # kopf's Events
                    meta["name"] = meta["generateName"] + secrets.token_hex(4)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                meta.setdefault("generation", 1)
                meta["resourceVersion"] = str(next(self._versions))
            elif request.action == kmock.action.UPDATE:
                meta = data.setdefault("metadata", {})
                meta["resourceVersion"] = str(next(self._versions))
                key = (request.resource, request.namespace, request.name)
                if request.subresource is None and "spec" in data and key in self.objects:
                    current = self.objects[key]
                    if not current.deleted:
                        after = dicts.patch_dict(copy.deepcopy(current.raw), data)
                        if after.get("spec") != current.raw.get("spec"):
                            meta["generation"] = current.raw.get("metadata", {}).get("generation", 1) + 1
        return await super()._handle(request)


def crd_resources() -> dict[str, tuple[str, set[str]]]:
    """Our CRDs as kmock discovery entries, read from crds/*.yaml (the single source of truth)."""
    resources = {}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                key = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
                resources[key] = (spec["names"]["kind"], set(version.get("subresources") or {}))
    assert resources, "crds/*.yaml define no served versions"
    return resources


@pytest.fixture
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    return {**kmock_options, "cls": ApiServerEmulator}


@pytest.fixture
async def api(kmock: ApiServerEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ApiServerEmulator:
    """The emulator with built-in kinds, our CRDs, cert-manager and KEDA; $KUBECONFIG points at it."""
    kmock.resources.load_bundled()
    for key, (kind, subresources) in {**crd_resources(), **EXTRA_RESOURCES}.items():
        kmock.resources[key] = kmock.ResourceInfo(kind=kind, namespaced=True, verbs=VERBS, subresources=subresources)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test", "namespace": NAMESPACE}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # never the real in-cluster config
    return kmock


class RunningOperator:
    """The real operator (`handlers.register` + `kopf.operator`) in a thread with its own event loop.

    Not in the test's loop: when kopf stops it cancels every task created after it started — in a shared loop that
    includes the emulator's request handlers and pytest's own teardown.
    """

    def __init__(self, api: ApiServerEmulator, config: handlers.OperatorConfig) -> None:
        self.api, self.config = api, config
        self.thread: threading.Thread | None = None
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None

    def _watches(self) -> int:
        return sum(1 for request in iter(self.api) if request.action == kmock.action.WATCH)

    def _run(self, registry: kopf.OperatorRegistry) -> None:
        try:
            asyncio.run(kopf.operator(registry=registry, clusterwide=True, stop_flag=self.stop_flag, memo=kopf.Memo()))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def start(self) -> None:
        registry = kopf.OperatorRegistry()
        handlers.register(registry, self.config)
        self.stop_flag, self.error = threading.Event(), None
        watches = self._watches()
        self.thread = threading.Thread(target=self._run, args=(registry,), name="operator", daemon=True)
        self.thread.start()
        # kopf's ready flag fires before its watches open: wait until both custom resources are being watched.
        await eventually(
            lambda: self._watches() >= watches + 2 or self.error, what="kopf watching both custom resources"
        )
        assert self.error is None, self.error

    async def stop(self) -> None:
        if self.thread is not None:
            self.stop_flag.set()
            await asyncio.to_thread(self.thread.join, 15)
            assert not self.thread.is_alive(), "the operator did not stop within 15 s"
            self.thread = None
            if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
                raise self.error


# Short resync so that level-based repairs show within a test (the default is 30 s with 10 s idle).
TEST_CONFIG = handlers.OperatorConfig(pod_cidrs=("10.42.0.0/16",), resync_interval_s=0.4, resync_idle_s=0.2)


@pytest.fixture
async def operator(api: ApiServerEmulator):
    running = RunningOperator(api, TEST_CONFIG)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def eventually(
    check: Callable[[], Any], *, within_s: float = 10.0, what: str = "condition", show: Callable[[], Any] | None = None
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` (and `show()`) after `within_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            shown = f": {dump(show())}" if show is not None else ""
            raise AssertionError(f"timed out after {within_s} s waiting for {what}{shown}")
        await asyncio.sleep(0.05)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


# -- reading and writing the emulator (as kubectl and the other controllers would) ------------------------------
API_VERSIONS = {  # kind → group/version, to find objects in the emulator; our own kinds by default
    "Deployment": "apps/v1", "StatefulSet": "apps/v1", "ConfigMap": "v1", "Service": "v1", "Secret": "v1",
    "PersistentVolumeClaim": "v1", "Pod": "v1", "Job": "batch/v1", "Ingress": "networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1", "Certificate": "cert-manager.io/v1",
    "ScaledObject": "keda.sh/v1alpha1", "HorizontalPodAutoscaler": "autoscaling/v2",
}  # fmt: skip


def path(kind: str, name: str = "") -> str:
    api_version = API_VERSIONS.get(kind, f"{GROUP}/{VERSION}")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{NAMESPACE}/{plural(kind)}" + (f"/{name}" if name else "")


def live(api: ApiServerEmulator, kind: str) -> dict[str, dict[str, Any]]:
    """Objects of a kind that exist now (not deleted), by name."""
    resource = kmock.resource(f"{API_VERSIONS.get(kind, f'{GROUP}/{VERSION}')}/{plural(kind)}")
    return {
        name: obj.raw
        for (res, namespace, name), obj in api.objects.items()
        if res == resource and namespace == NAMESPACE and not obj.deleted
    }


def get(api: ApiServerEmulator, kind: str, name: str) -> dict[str, Any] | None:
    return live(api, kind).get(name)


def owned(api: ApiServerEmulator, uid: str) -> set[tuple[str, str]]:
    """(kind, name) of every object whose ownerReferences name `uid` — the children, however they are named."""
    return {
        (kind, name)
        for kind in API_VERSIONS
        for name, obj in live(api, kind).items()
        if any(ref["uid"] == uid for ref in obj["metadata"].get("ownerReferences") or [])
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def reason(api: ApiServerEmulator, kind: str, name: str, type_: str = "Ready") -> str | None:
    return condition(get(api, kind, name), type_).get("reason")


def requests(api: ApiServerEmulator, since: int = 0) -> list[kmock.Request]:
    return list(iter(api))[since:]


def reads(api: ApiServerEmulator, url_path: str, since: int = 0) -> int:
    return sum(1 for r in requests(api, since) if r.method.value == "GET" and r.url.path == url_path)


async def post(api: ApiServerEmulator, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    async with api.post(path(kind), json=body) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def patch(api: ApiServerEmulator, kind: str, name: str, body: dict[str, Any], *, status: bool = False) -> None:
    url = path(kind, name) + ("/status" if status else "")
    async with api.patch(url, json=body, headers={"Content-Type": "application/merge-patch+json"}) as response:
        assert response.status < 300, await response.text()


async def delete(api: ApiServerEmulator, kind: str, name: str) -> None:
    async with api.delete(path(kind, name)) as response:
        assert response.status < 300, await response.text()


async def create_cr(api: ApiServerEmulator, kind: str, name: str, spec: dict[str, Any]) -> str:
    """kubectl apply of a new custom resource; returns its uid."""
    meta = {"name": name, "namespace": NAMESPACE}
    created = await post(api, kind, {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta, "spec": spec})
    return created["metadata"]["uid"]
