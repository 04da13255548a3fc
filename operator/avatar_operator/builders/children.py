"""Every child of one custom resource, in creation order: the single list the handlers apply and prune against.

Order matters on a real API server only for what a pod needs at start: the ConfigMap and Secrets a pod mounts or
reads come before the workloads that use them (a pod created first would sit in CreateContainerConfigError until
they appear). Optional children whose builder returns None (no ingress, no certificate, ...) are left out.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..spec import AvatarDeploymentSpec, AvatarModelCacheSpec
from . import autoscaler, certificate, coturn, deployment, httproute, ingress, model_cache, runtime_config, service
from .common import Owner


def pod_checksum(
    owner: Owner, spec: AvatarDeploymentSpec, turn_secret: str | None, avatar_dir: str | None = None
) -> str:
    """What the runtime pods read only at start: the config file and, with our coturn, the TURN shared secret.

    Both change rarely, and a pod keeps the old values until it restarts: a regenerated TURN secret (its Secret
    was deleted) must roll the runtime pods with coturn, or every credential they hand out would be refused.
    """
    config = runtime_config.checksum(owner, spec, avatar_dir=avatar_dir)
    if turn_secret is None:
        return config
    return hashlib.sha256(f"{config}\nturn:{turn_secret}".encode()).hexdigest()


def deployment_children(
    owner: Owner,
    spec: AvatarDeploymentSpec,
    *,
    turn_secret: str | None,
    claim_name: str | None,
    allowed_peer_cidrs: list[str],
    cached_avatars: frozenset[str] = frozenset(),
    prometheus_address: str = autoscaler.DEFAULT_PROMETHEUS_ADDRESS,
) -> list[dict[str, Any]]:
    """An AvatarDeployment's children; `turn_secret` is required when `coturn.enabled(spec)`, else ignored.

    `claim_name` is the model cache's claim (the handler resolves `spec.modelCacheRef` to it), `allowed_peer_cidrs`
    the pod network coturn may relay to, `cached_avatars` the avatar names that cache fetches: when it holds
    `spec.avatar.name`, the runtime serves avatars from the cache (/models/avatars) instead of the image's;
    `prometheus_address` is where a KEDA ScaledObject reads the session metric.
    """
    turn_secret = turn_secret if coturn.enabled(spec) else None
    avatar_dir = model_cache.AVATAR_DIR if claim_name and spec.avatar.name in cached_avatars else None
    built = [
        runtime_config.build(owner, spec, avatar_dir=avatar_dir),
        certificate.build(owner, spec),  # its Secret is what the Ingress and coturn's TURNS use
        *coturn.build(owner, spec, secret=turn_secret, allowed_peer_cidrs=allowed_peer_cidrs),
        deployment.build(owner, spec, pod_checksum(owner, spec, turn_secret, avatar_dir), claim_name),
        autoscaler.build_scaled_object(owner, spec, prometheus_address),  # after its scale target
        autoscaler.build_hpa(owner, spec),
        service.build(owner, spec),
        ingress.build(owner, spec),
        httproute.build(owner, spec),
    ]
    return [manifest for manifest in built if manifest is not None]


def cache_children(owner: Owner, spec: AvatarModelCacheSpec) -> list[dict[str, Any]]:
    """An AvatarModelCache's children: the claim (unless an existing one is used), the pull config and the Job."""
    return model_cache.build(owner, spec)
