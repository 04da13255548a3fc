"""The operator's side effects on the API server: create, drift-repair, read and prune children.

Blocking calls with the `kubernetes` client — call them from sync handlers (kopf runs those in worker threads);
from an `async def` handler they would stall the event loop that also serves the watches.

How a child is written, and why:
- Read it; POST it if absent; else, if our spec-hash changed or the live object drifted from what we built, send a
  JSON merge patch (RFC 7386). Merge patches are understood by every API server, by every kind (custom resources
  included, where strategic merge is not) and by the test emulator; no PUT (it would race with the status writers
  and needs the resourceVersion) and no server-side apply (the emulator has none; see tests/operator).
- A merge patch cannot remove a key by leaving it out, so, like `kubectl apply`, the manifest we last wrote is kept
  in an annotation and every key that was in it but is no longer wanted is sent as `null`. Lists are replaced whole,
  so a removed container env var or toleration disappears too; defaults the server filled into list items are filled
  again by the server.
- Fields another controller owns (`external` in `apply`: the runtime Deployment's `spec.replicas` while an
  autoscaler runs) are neither written, nor removed, nor compared: leaving `replicas` out of the manifest is not
  enough, because the annotation from before autoscaling was on still holds it, and the removal step would send
  `replicas: null` — which the API server reads as "default", 1, undoing the autoscaler's choice on every switch.
- PVCs are written once (`CREATE_ONLY_KINDS`), Jobs are replaced (`REPLACE_KINDS`), Secrets are patched but their
  data is never copied into the annotation (`UNRECORDED_KINDS`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kubernetes
from kubernetes.utils import parse_quantity

from . import GROUP
from .builders.common import MANAGED_BY, SPEC_HASH, Owner

MERGE_PATCH = "application/merge-patch+json"
LAST_APPLIED = f"{GROUP}/last-applied"
# Written once, never patched: a PVC's spec is immutable apart from growing (a resize is left to the user).
CREATE_ONLY_KINDS = frozenset({"PersistentVolumeClaim"})
# Never copied into the last-applied annotation: a Secret's data would be readable by whoever can read the object.
# (Our only Secret, the TURN one, has a fixed shape: nothing ever needs removing from it.)
UNRECORDED_KINDS = frozenset({"Secret"})
# Deleted and created again when what we build changes: a Job's pod template is immutable. (A changed model list
# already gets a new Job name; this covers the rest, e.g. the claim it fills.) Drift alone does not re-run a Job.
REPLACE_KINDS = frozenset({"Job"})
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
REQUEST_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` is the HTTP code, `reason` the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


class ChildConflict(Exception):
    """A child's name is taken by an object another controller owns; we neither adopt nor overwrite it."""


@dataclass(frozen=True)
class Applied:
    """What `Kube.apply` did to one child and the object as the server returned it (status included)."""

    action: Literal["created", "patched", "replaced", "unchanged"]
    object: dict[str, Any]


def plural(kind: str) -> str:
    """The resource name of a kind (Ingress → ingresses, NetworkPolicy → networkpolicies) for the kinds we use."""
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural(kind)}"


def api_client_from_environment() -> kubernetes.client.ApiClient:
    """In a pod: the service account; elsewhere: $KUBECONFIG (read now — the library reads it once at import)."""
    configuration = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.exists():
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    else:
        config_file = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
        kubernetes.config.load_kube_config(
            config_file=os.path.expanduser(config_file), client_configuration=configuration
        )
    return kubernetes.client.ApiClient(configuration)


# -- pure helpers (tested through the operator tests) -------------------------------------------------------------
def contains(live: Any, wanted: Any) -> bool:
    """Whether `live` still holds everything in `wanted`: extra keys (server defaults, status) are fine, lists must
    have the same length and contain item by item (the server adds defaults inside container specs)."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(contains, live, wanted))
    if isinstance(live, bool) or isinstance(wanted, bool):
        return live is wanted  # in Python 1 == True; in a manifest they differ
    return live == wanted or _same_quantity(live, wanted)


def _same_quantity(live: Any, wanted: Any) -> bool:
    """The server stores resource quantities canonically (a GPU count 1 comes back as "1", "1000m" as "1", "1024Mi"
    as "1Gi"): without this, such a field would look drifted and be re-patched on every resync."""
    if not isinstance(live, str | int | float) or not isinstance(wanted, str | int | float):
        return False
    if not (isinstance(live, str) or isinstance(wanted, str)):
        return False
    try:
        return parse_quantity(live) == parse_quantity(wanted)
    except (ValueError, ArithmeticError):
        return False


def removals(previous: Any, wanted: Any) -> Any:
    """The merge-patch nulls for keys that `previous` had and `wanted` no longer has (recursing through dicts)."""
    if not isinstance(previous, Mapping) or not isinstance(wanted, Mapping):
        return wanted
    patch = dict(wanted)
    for key, value in previous.items():
        if key not in wanted:
            patch[key] = None
        elif isinstance(value, Mapping):
            patch[key] = removals(value, wanted[key])
    return patch


def without(obj: Any, paths: Iterable[tuple[str, ...]]) -> Any:
    """`obj` minus the keys at these paths (a path that is not there is fine); the input is not changed."""
    for path in paths:
        obj = _without(obj, path)
    return obj


def _without(obj: Any, path: tuple[str, ...]) -> Any:
    if not path or not isinstance(obj, Mapping) or path[0] not in obj:
        return obj
    head, rest = path[0], path[1:]
    if not rest:
        return {key: value for key, value in obj.items() if key != head}
    return {**obj, head: _without(obj[head], rest)}


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def conflict(manifest: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
    """Why `live` must not be taken over for `manifest`: another object is its controller. None = ours or free."""
    refs = (live or {}).get("metadata", {}).get("ownerReferences") or []
    controller = next((ref.get("uid") for ref in refs if ref.get("controller")), None)
    if controller is None or controller == manifest["metadata"]["ownerReferences"][0]["uid"]:
        return None
    return (
        f"{manifest['kind']} {manifest['metadata']['name']} exists and is controlled by another object ({controller})"
    )


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _with_last_applied(manifest: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(manifest["metadata"])
    annotations = dict(metadata.get("annotations") or {})
    annotations[LAST_APPLIED] = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def _last_applied(live: Mapping[str, Any]) -> dict[str, Any]:
    text = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        return json.loads(text) if text else {}
    except ValueError:  # hand-edited: fall back to "remove nothing"
        return {}


class Kube:
    """The API calls of the operator, on one `kubernetes` ApiClient (thread-safe: urllib3 pools connections)."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api

    def close(self) -> None:
        self.api.close()

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def _call(
        self, method: str, path: str, *, body: Any = None, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json", accept: str = "application/json",
    ) -> bytes:  # fmt: skip
        headers = {"Content-Type": content_type, "Accept": accept}
        request = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT_S)
        try:
            data = response.read() or b""
        finally:
            response.response.release_conn()  # back to the pool (the client reads without preloading)
        if not 200 <= response.status <= 299:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = {"message": data.decode(errors="replace")[:500]}
            raise ApiError(response.status, payload.get("reason") or str(response.reason), payload.get("message", ""))
        return data

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return json.loads(self._call(method, path, **kwargs) or b"{}")

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", f"{collection_path(api_version, kind, namespace)}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Objects of a kind with these labels; [] when the kind is not served (e.g. cert-manager not installed)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        try:
            payload = self._request(
                "GET", collection_path(api_version, kind, namespace), query=[("labelSelector", selector)]
            )
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return [{"apiVersion": api_version, "kind": kind, **item} for item in payload.get("items") or []]

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        return self._request(
            "POST", collection_path(manifest["apiVersion"], manifest["kind"], namespace), body=manifest
        )

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"{collection_path(api_version, kind, namespace)}/{name}"
        return self._request("PATCH", path, body=body, content_type=MERGE_PATCH)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete with background propagation (a Job's pods go too); False if it was already gone."""
        path = f"{collection_path(api_version, kind, namespace)}/{name}"
        try:
            self._request("DELETE", path, query=[("propagationPolicy", "Background")])
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pod_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET `path` from a pod's port through the API server's pod proxy (no network path to pods needed)."""
        url = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}"
        return self._call("GET", url, accept="text/plain").decode(errors="replace")

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """A Secret's decoded value; None if the Secret or the key is missing."""
        secret = self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        if key in (secret.get("data") or {}):
            return base64.b64decode(secret["data"][key]).decode()
        return (secret.get("stringData") or {}).get(key)  # only ever seen on the emulator, which does not convert

    # -- reconciliation ------------------------------------------------------------------------------------------
    def read(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object a manifest describes (same kind, namespace and name), or None."""
        meta = manifest["metadata"]
        return self.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])

    def apply(
        self, manifest: dict[str, Any], live: dict[str, Any] | None, *, external: Iterable[tuple[str, ...]] = ()
    ) -> Applied:
        """Create the child, or bring `live` (as just read) back to `manifest` (see the module docstring).

        `external`: paths (("spec", "replicas")) another controller owns — left out of what is written, never sent
        as null, never compared. In the steady state (every resync) this writes nothing: the caller's read was the
        only request.
        """
        external = tuple(external)
        manifest = without(manifest, external)
        create_only, replace = manifest["kind"] in CREATE_ONLY_KINDS, manifest["kind"] in REPLACE_KINDS
        unrecorded = create_only or replace or manifest["kind"] in UNRECORDED_KINDS
        desired = manifest if unrecorded else _with_last_applied(manifest)
        api_version, kind, meta = manifest["apiVersion"], manifest["kind"], manifest["metadata"]
        if live is None:
            try:
                return self._did("created", manifest, self.create(desired))
            except ApiError as exc:
                if exc.status != 409:
                    raise
            live = self.read(manifest)  # another writer was faster
            if live is None:
                raise ApiError(409, "Conflict", f"{kind} {meta['name']} is being replaced; the next pass retries")
        if (why := conflict(manifest, live)) is not None:
            raise ChildConflict(why)
        same = (live.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH) == meta["annotations"][SPEC_HASH]
        if replace and not same:
            self.delete(api_version, kind, meta["namespace"], meta["name"])
            return self._did("replaced", manifest, self.create(desired))
        if create_only or replace or (same and contains(live, desired)):
            return Applied("unchanged", live)
        body = without(removals(_last_applied(live), desired), external)
        return self._did("patched", manifest, self.patch(api_version, kind, meta["namespace"], meta["name"], body))

    @staticmethod
    def _did(action: Literal["created", "patched", "replaced"], manifest: Mapping[str, Any], obj: dict) -> Applied:
        meta = manifest["metadata"]
        log.info("%s %s %s/%s", action, manifest["kind"], meta["namespace"], meta["name"])
        return Applied(action, obj)

    def prune(self, owner: Owner, wanted: Iterable[Mapping[str, Any]], kinds: Iterable[tuple[str, str]]) -> list[str]:
        """Delete the children of `owner` (by owner uid) of these (apiVersion, kind)s that are not in `wanted`.

        Only objects whose ownerReferences name the owner's uid are touched: a user's `existingClaim`, or anything
        else we did not create, is never deleted. The label selector keeps the list small on a real server.
        """
        keep = {_key(obj) for obj in wanted}
        selector = {"app.kubernetes.io/instance": owner.name, "app.kubernetes.io/managed-by": MANAGED_BY}
        deleted = []
        for api_version, kind in kinds:
            for obj in self.list(api_version, kind, owner.namespace, selector):
                if owned_by(obj, owner.uid) and _key(obj) not in keep:
                    if self.delete(api_version, kind, owner.namespace, obj["metadata"]["name"]):
                        log.info("deleted %s %s/%s (no longer wanted)", kind, owner.namespace, obj["metadata"]["name"])
                        deleted.append(f"{kind}/{obj['metadata']['name']}")
        return deleted
