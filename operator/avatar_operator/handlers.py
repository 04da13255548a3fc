"""kopf wiring: thin handlers that parse the spec, resolve references, build children, apply them and write status.

Level-based: create, update, resume and a periodic timer all run the same reconcile, which reads the world, writes
what differs and recomputes status from what it read. The timer is what repairs a child deleted or edited behind our
back and what notices a cache becoming ready or a Deployment becoming available. We chose it over watching every
Deployment, StatefulSet, Service, ... cluster-wide: one code path, no per-kind watch streams (each a memory and API
cost on a big cluster, and each a silent-stall risk), and nothing lost when an event is missed; the price is up to
one interval (30 s by default) before a deleted child is back or a status catches up.

Nothing half-built: an invalid spec, a missing referenced Secret or cache, or a child name taken by someone else's
object stops the reconcile before its first write (status Ready=False names the field); children left from an
earlier valid spec are kept, so a bad edit does not take a working avatar down. A child whose kind the cluster does
not serve (KEDA, cert-manager or the Gateway API missing) is only found when it is created, after the children
before it: Ready=False with reason KindNotServed names the spec field that asked for it.

The TURN shared secret is generated once and then always read back from its Secret (never regenerated while that
Secret holds a usable value): coturn and the runtime pods read it at start, so a new value means restarting both.

Handlers are sync `def`s: they use the blocking `kubernetes` client and kopf runs them in worker threads. A timer may
run beside an event handler for the same object, so each object's reconcile holds a lock.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from . import GROUP, VERSION, pods, status
from .builders import autoscaler, coturn, model_cache
from .builders.children import cache_children, deployment_children
from .builders.common import RUNTIME_PORT, Owner, selector
from .builders.deployment import COMPONENT as RUNTIME_COMPONENT
from .builders.deployment import deployment_name
from .builders.ingress import managed_tls_secret
from .kube import ApiError, ChildConflict, Kube, api_client_from_environment, conflict, owned_by
from .spec import AvatarDeploymentSpec, SecretKeyRef, SpecError, parse_deployment, parse_model_cache

DEPLOYMENTS, CACHES = "avatardeployments", "avatarmodelcaches"
log = logging.getLogger(__name__)
# Every kind a builder may produce for each owner: what the prune step lists to find children no longer wanted.
DEPLOYMENT_CHILD_KINDS = (
    ("apps/v1", "Deployment"), ("v1", "ConfigMap"), ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("cert-manager.io/v1", "Certificate"), ("v1", "Secret"),
    ("apps/v1", "StatefulSet"), ("keda.sh/v1alpha1", "ScaledObject"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
)  # fmt: skip
CACHE_CHILD_KINDS = (("v1", "PersistentVolumeClaim"), ("v1", "ConfigMap"), ("batch/v1", "Job"))
# The status fields we own (anything else under status is not ours to clear).
STATUS_FIELDS = {
    "AvatarDeployment": frozenset(
        {"observedGeneration", "replicas", "readyReplicas", "activeSessions", "capacity", "url", "conditions"}
    ),
    "AvatarModelCache": frozenset({"observedGeneration", "claimName", "jobName", "conditions"}),
}
Key = tuple[str, str]  # (kind, name) of a child


TRANSIENT_API_ERRORS = {409, 429, 500, 502, 503, 504}  # a conflict is a race with another writer: read and retry


def retry_delay_s(retry: int) -> float:
    """Seconds before the next try after `retry` failed ones: 1, 2, 4 … capped at a minute."""
    return float(min(60, 2 ** min(retry, 6)))


@dataclass(frozen=True)
class OperatorConfig:
    """What the CLI (or a test) decides; the rest of the settings are fixed in `configure`."""

    pod_cidrs: tuple[str, ...] = ()  # the pod network: coturn may relay to it (AVATAR_POD_CIDRS)
    resync_interval_s: float = 30.0  # the timer: how often children and status are re-read
    resync_idle_s: float = 10.0  # ... but not sooner than this after the object last changed
    peering: str | None = None  # a KopfPeering name: leader election among replicas; None = standalone
    watch_timeout_s: float = 300.0  # server-side watch timeout (see `configure`)
    # Where KEDA ScaledObjects query avatar_sessions_active (AVATAR_PROMETHEUS_SERVER_ADDRESS; unset or "" = this).
    prometheus_address: str = autoscaler.DEFAULT_PROMETHEUS_ADDRESS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> OperatorConfig:
        """The settings from the environment, checked now: a bad value stops the operator at start with its name,
        instead of failing every reconcile (or, for the Prometheus address, every KEDA query) later."""
        env = os.environ if env is None else env
        cidrs = tuple(part.strip() for part in env.get("AVATAR_POD_CIDRS", "").split(",") if part.strip())
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"AVATAR_POD_CIDRS: {exc}") from None
        address = env.get("AVATAR_PROMETHEUS_SERVER_ADDRESS", "").strip() or autoscaler.DEFAULT_PROMETHEUS_ADDRESS
        parsed = urllib.parse.urlsplit(address)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"AVATAR_PROMETHEUS_SERVER_ADDRESS: {address!r} is not an http(s):// URL")
        return cls(pod_cidrs=cidrs, prometheus_address=address, **overrides)


# -- reconcile (sync, runs in kopf's worker threads) --------------------------------------------------------------
def _owner(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(body["kind"], meta["name"], meta["namespace"], meta["uid"])


def _key(obj: Mapping[str, Any]) -> Key:
    return obj["kind"], obj["metadata"]["name"]


def _ours(obj: dict[str, Any] | None, owner: Owner) -> dict[str, Any] | None:
    return obj if obj is not None and owned_by(obj, owner.uid) else None


def _secret_blocker(kube: Kube, namespace: str, ref: SecretKeyRef, field: str) -> status.Blocker | None:
    secret = kube.get("v1", "Secret", namespace, ref.name)
    if secret is None:
        return status.Blocker(status.SECRET_NOT_FOUND, field, f"Secret {ref.name} not found in namespace {namespace}")
    if ref.key not in (secret.get("data") or {}) and ref.key not in (secret.get("stringData") or {}):
        return status.Blocker(status.SECRET_KEY_NOT_FOUND, field, f"Secret {ref.name} has no key {ref.key}")
    return None


def _references(kube: Kube, owner: Owner, spec: AvatarDeploymentSpec) -> tuple[status.Blocker | None, dict | None]:
    """(what blocks building, the referenced AvatarModelCache): every object the spec names must exist first."""
    ns = owner.namespace
    refs = [(spec.llm.api_key_secret_ref, "spec.llm.apiKeySecretRef")]
    if spec.turn.enabled and spec.turn.external is not None:
        refs.append((spec.turn.external.secret_ref, "spec.turn.external.secretRef"))
    for ref, field in refs:
        if ref is not None and (blocker := _secret_blocker(kube, ns, ref, field)) is not None:
            return blocker, None
    if spec.tls is not None and spec.tls.secret_name is not None:
        if kube.get("v1", "Secret", ns, spec.tls.secret_name) is None:
            message = f"TLS Secret {spec.tls.secret_name} not found in namespace {ns}"
            return status.Blocker(status.SECRET_NOT_FOUND, "spec.tls.secretName", message), None
    if spec.model_cache_ref is None:
        return None, None
    cache = kube.get(f"{GROUP}/{VERSION}", "AvatarModelCache", ns, spec.model_cache_ref)
    if cache is None:
        message = f"AvatarModelCache {spec.model_cache_ref} not found in namespace {ns}"
        return status.Blocker(status.CACHE_NOT_FOUND, "spec.modelCacheRef", message), None
    return None, cache


def _avatars_of(cache: Mapping[str, Any] | None) -> frozenset[str]:
    """Names of the avatar zips an AvatarModelCache fetches (served from the cache when the deployment picks one)."""
    try:
        return frozenset(a.name for a in parse_model_cache(dict((cache or {}).get("spec") or {})).avatars)
    except SpecError:
        return frozenset()


def _claim_of(cache: Mapping[str, Any] | None, namespace: str) -> str | None:
    """The PVC an AvatarModelCache fills; None without a cache, or while the cache's own spec is invalid."""
    if cache is None:
        return None
    meta = cache["metadata"]
    try:
        spec = parse_model_cache(dict(cache.get("spec") or {}))
    except SpecError:
        return None  # the cache reports its own InvalidSpec
    return model_cache.claim_name(Owner("AvatarModelCache", meta["name"], namespace, meta.get("uid", "")), spec)


def _turn_secret(kube: Kube, owner: Owner) -> str:
    """coturn's shared secret: read back from Secret NAME-turn; a new one only when that is missing or unusable
    (edited by hand). Only read here: the Secret is written with the other children, after the conflict check."""
    value = kube.secret_value(owner.namespace, coturn.name(owner), coturn.SECRET_KEY)
    return value if value is not None and coturn.valid_secret(value) else secrets.token_urlsafe(32)


def _active_sessions(kube: Kube, owner: Owner, runtime: Mapping[str, Any] | None) -> int | None:
    """Conversations in progress: the sum of every ready runtime pod's `avatar_sessions_active`, read through the
    API server's pod proxy. None (left out of the status) if any ready pod cannot be read — never a partial sum.

    Each pod read is also written back onto the pod as its scale-down annotations (pods.py), one merge patch per
    pod whose values changed; a failed patch (the pod just went away) only waits for the next resync."""
    if runtime is None:
        return None
    wanted = selector(owner, RUNTIME_COMPONENT)
    total: int | None = 0
    try:
        listed = kube.list("v1", "Pod", owner.namespace, wanted)
    except ApiError as exc:  # e.g. no RBAC for pods
        log.info("active sessions of %s/%s unknown: %s", owner.namespace, owner.name, exc)
        return None
    for pod in listed:
        meta = pod["metadata"]
        if any((meta.get("labels") or {}).get(key) != value for key, value in wanted.items()):
            continue  # the label selector again: not every API (the test emulator) filters
        if meta.get("deletionTimestamp") or not status.is_true(pod, "Ready"):
            continue  # not in the Service's endpoints: it serves no session
        try:
            active = status.sessions_active(kube.pod_get(owner.namespace, meta["name"], RUNTIME_PORT, "/metrics"))
        except (ApiError, ValueError) as exc:  # e.g. no RBAC for pods/proxy, a pod gone, an unparsable exposition
            log.info("sessions of pod %s/%s unknown: %s", owner.namespace, meta["name"], exc)
            active = None
        if active is None:
            total = None
            continue
        total = None if total is None else total + active
        _annotate(kube, owner.namespace, pod, active)
    return total


def _annotate(kube: Kube, namespace: str, pod: Mapping[str, Any], active: int) -> None:
    changes = pods.annotation_patch(pod["metadata"].get("annotations"), active)
    if changes is None:
        return
    try:
        kube.patch("v1", "Pod", namespace, pod["metadata"]["name"], {"metadata": {"annotations": changes}})
    except ApiError as exc:
        log.info("pod %s/%s not annotated: %s", namespace, pod["metadata"]["name"], exc)


# Children of kinds that only exist where an add-on is installed: the spec field that asked for one, and the fix.
ADD_ON_KINDS = {
    "ScaledObject": ("spec.autoscaling.engine", "install KEDA, or set spec.autoscaling.engine: hpa"),
    "Certificate": ("spec.tls.issuerRef", "install cert-manager, or use spec.tls.secretName"),
    "HTTPRoute": ("spec.gateway", "install the Gateway API CRDs, or use spec.ingress"),
}


def _write_children(
    kube: Kube, wanted: list[dict[str, Any]], external: Mapping[Key, tuple[tuple[str, ...], ...]] | None = None
) -> dict[Key, dict[str, Any]] | status.Blocker:
    """Apply every wanted child and return them as the server has them — or why not: a name taken by another
    controller's object (found before any write), or a kind this cluster does not serve (an add-on is missing).
    `external`: per child, the fields another controller owns (kube.apply leaves them alone)."""
    external = external or {}
    live = {_key(manifest): kube.read(manifest) for manifest in wanted}
    for manifest in wanted:
        if (why := conflict(manifest, live[_key(manifest)])) is not None:
            return status.Blocker(status.CHILD_CONFLICT, "metadata.name", why)
    applied = {}
    for manifest in wanted:
        key = _key(manifest)
        try:
            applied[key] = kube.apply(manifest, live[key], external=external.get(key, ())).object
        except ChildConflict as exc:  # taken between our read and write
            return status.Blocker(status.CHILD_CONFLICT, "metadata.name", str(exc))
        except ApiError as exc:
            if exc.status != 404 or live[key] is not None or manifest["kind"] not in ADD_ON_KINDS:
                raise
            field, fix = ADD_ON_KINDS[manifest["kind"]]
            message = f"{manifest['kind']} ({manifest['apiVersion']}) is not served by this cluster: {fix}"
            return status.Blocker(status.KIND_NOT_SERVED, field, message)
    return applied


def reconcile_deployment(kube: Kube, config: OperatorConfig, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Bring an AvatarDeployment's children in line with its spec; returns its new status."""
    owner = _owner(body)
    runtime_key = ("Deployment", deployment_name(owner))
    report = functools.partial(
        status.deployment_status, name=owner.name, namespace=owner.namespace,
        generation=body["metadata"].get("generation"), old=body.get("status") or {}, now=now,
    )  # fmt: skip
    try:
        spec: AvatarDeploymentSpec | None = parse_deployment(dict(body.get("spec") or {}))
        blocker, cache = _references(kube, owner, spec)
    except SpecError as error:
        spec, blocker, cache = None, status.Blocker.from_spec_error(error), None
    if blocker is not None:
        runtime = _ours(kube.get("apps/v1", "Deployment", owner.namespace, runtime_key[1]), owner)
        return report(spec=spec, blocker=blocker, observed=status.DeploymentObserved(runtime=runtime))
    assert spec is not None

    claim = _claim_of(cache, owner.namespace)
    waiting = status.cache_readiness(cache).status != "True" or (cache is not None and claim is None)
    turn_secret = _turn_secret(kube, owner) if coturn.enabled(spec) else None
    wanted = deployment_children(
        owner, spec, turn_secret=turn_secret, claim_name=claim, allowed_peer_cidrs=list(config.pod_cidrs),
        cached_avatars=_avatars_of(cache), prometheus_address=config.prometheus_address,
    )  # fmt: skip
    if waiting:
        # No runtime pods until the models are there (they would crash-loop on missing files). One that already
        # runs (its cache is re-pulling a changed model list) keeps serving: neither updated nor deleted.
        wanted = [manifest for manifest in wanted if _key(manifest) != runtime_key]
    # With an autoscaler the runtime's replicas are its to set (see kube.py for why leaving them out is not enough).
    applied = _write_children(kube, wanted, {runtime_key: autoscaler.external_fields(spec)})
    if isinstance(applied, status.Blocker):
        return report(spec=spec, blocker=applied, observed=status.DeploymentObserved())
    runtime = applied.get(runtime_key)
    if waiting:
        runtime = _ours(kube.get("apps/v1", "Deployment", owner.namespace, runtime_key[1]), owner)
    kube.prune(owner, [*wanted, *([runtime] if runtime else [])], DEPLOYMENT_CHILD_KINDS)
    observed = status.DeploymentObserved(
        runtime=runtime,
        cache=cache,
        turn=applied.get(("StatefulSet", coturn.name(owner))),
        certificate=applied.get(("Certificate", managed_tls_secret(owner))),
    )
    return report(spec=spec, blocker=None, observed=observed, active_sessions=_active_sessions(kube, owner, runtime))


def reconcile_cache(kube: Kube, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Bring an AvatarModelCache's PVC, pull ConfigMap and Job in line with its spec; returns its new status."""
    owner = _owner(body)
    report = functools.partial(
        status.cache_status, generation=body["metadata"].get("generation"), old=body.get("status") or {}, now=now
    )
    try:
        spec = parse_model_cache(dict(body.get("spec") or {}))
    except SpecError as error:
        return report(spec=None, blocker=status.Blocker.from_spec_error(error), job=None, claim_name=None)
    claim = model_cache.claim_name(owner, spec)
    if (
        spec.storage.existing_claim is not None
        and kube.get("v1", "PersistentVolumeClaim", owner.namespace, claim) is None
    ):
        message = f"PersistentVolumeClaim {claim} not found in namespace {owner.namespace}"
        blocker = status.Blocker(status.CLAIM_NOT_FOUND, "spec.storage.existingClaim", message)
        return report(spec=spec, blocker=blocker, job=None, claim_name=claim)
    wanted = cache_children(owner, spec)
    applied = _write_children(kube, wanted)
    if isinstance(applied, status.Blocker):
        return report(spec=spec, blocker=applied, job=None, claim_name=claim)
    # A changed model list has a new Job name: the old Job (and its pods) go; so does our own PVC when the user
    # switched to an existingClaim. The user's claim is not ours (no owner reference to us): never touched.
    kube.prune(owner, wanted, CACHE_CHILD_KINDS)
    job = applied[("Job", model_cache.job_name(owner, spec))]
    return report(spec=spec, blocker=None, job=job, claim_name=claim)


# -- kopf glue ----------------------------------------------------------------------------------------------------
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(uid: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def _write_status(body: kopf.Body, new: dict[str, Any], patch: kopf.Patch) -> None:
    """Patch only the status fields that changed (an unchanged resync writes nothing); post Events on transitions."""
    old = dict(body.get("status") or {})
    for key, value in new.items():
        if old.get(key) != value:
            patch.status[key] = value
    for key in STATUS_FIELDS[body["kind"]] - new.keys():
        if key in old:
            patch.status[key] = None  # no longer known (e.g. the jobName of a cache whose spec became invalid)
    for condition in status.transitions(old.get("conditions"), new["conditions"]):
        if condition["type"] == status.READY or (
            condition["type"] == status.DEGRADED and condition["status"] == "True"
        ):
            good = condition["type"] == status.READY and condition["status"] == "True"
            message = f"{condition['type']}={condition['status']}: {condition['message']}"[:1024]
            kopf.event(body, type="Normal" if good else "Warning", reason=condition["reason"], message=message)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Declare the operator's handlers on `registry` (the CLI's, or a test's own)."""

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # Progress and the last handled spec live in annotations of our group: they survive restarts, keep status
        # free for our own fields, and do not depend on the status subresource.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # kopf puts this finalizer on every resource it runs a timer for (our resync; kopf hard-wires timers to need
        # one so it can stop them cleanly) and removes it when the resource is deleted. We have no deletion handler:
        # children go by owner references. Consequence: deleting a resource while no operator runs waits for the
        # operator (docs/kubernetes.md shows the uninstall order and how to remove the finalizer by hand).
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Watches can stall silently (a half-open connection that never delivers another event): have the server
        # end each watch after a while, and drop it client-side a little later if the server does not.
        settings.watching.server_timeout = config.watch_timeout_s
        settings.watching.client_timeout = config.watch_timeout_s + 30
        settings.watching.connect_timeout = 30
        settings.networking.request_timeout = 60
        # A resync in flight when the operator stops (or hands over leadership) gets a moment to finish rather than
        # being orphaned: an orphan would go on writing children after another replica has taken over.
        settings.background.instant_exit_timeout = 3.0
        # `kubectl describe` shows problems as Events: post warnings and our own condition transitions only.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = "gaussian-avatar-operator"
        # Leader election: with a peering name, replicas of the operator elect one active (the KopfPeering CRDs
        # must be installed — the chart does); without, this instance acts alone (tests, single replica).
        settings.peering.standalone = config.peering is None
        if config.peering is not None:
            settings.peering.name = config.peering
            settings.peering.mandatory = True
        memo.kube = Kube(api_client_from_environment())

    @kopf.on.cleanup(registry=registry)
    def close(memo: kopf.Memo, **_: Any) -> None:
        if getattr(memo, "kube", None) is not None:
            memo.kube.close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    def handler(reconcile: Callable[[Kube, dict[str, Any], datetime], dict[str, Any]]) -> Callable[..., None]:
        def handle(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
            try:
                with _lock(body["metadata"]["uid"]):
                    # Read the object again under the lock: a timer's body may predate an update handled meanwhile,
                    # and reconciling an old spec would undo it until the next pass.
                    meta = body["metadata"]
                    fresh = memo.kube.get(f"{GROUP}/{VERSION}", body["kind"], meta["namespace"], meta["name"])
                    if fresh is None or fresh["metadata"].get("uid") != meta["uid"]:
                        return  # deleted meanwhile: its children go with it (owner references)
                    new = reconcile(memo.kube, fresh, datetime.now(UTC))
            except ApiError as exc:
                if exc.status not in TRANSIENT_API_ERRORS:
                    raise
                # An overloaded or briefly failing API server (or a webhook behind it): try again soon, backing
                # off, instead of kopf's fixed 10 s for handlers and 60 s for a failed timer.
                raise kopf.TemporaryError(f"the API server answered {exc}", delay=retry_delay_s(retry)) from exc
            _write_status(fresh, new, patch)

        return handle

    deployment = handler(lambda kube, body, now: reconcile_deployment(kube, config, body, now))
    cache = handler(reconcile_cache)

    for plural, handle in ((DEPLOYMENTS, deployment), (CACHES, cache)):
        resource = {"group": GROUP, "version": VERSION, "plural": plural, "registry": registry}
        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(**resource, id="reconcile", backoff=10)(handle)
        kopf.timer(**resource, id="resync", interval=config.resync_interval_s, idle=config.resync_idle_s)(handle)
