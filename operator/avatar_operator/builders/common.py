"""What every child shares: names, labels, owner references and the spec-hash annotation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .. import API_VERSION, GROUP

MANAGED_BY = "gaussian-avatar-operator"
PART_OF = "gaussian-avatar"
SPEC_HASH = f"{GROUP}/spec-hash"  # annotation: sha256 of the manifest as built (before the hash is added)
RUNTIME_PORT = 8282
# Paths inside every pod running the runtime image (the runtime Deployment and the model-pull Job):
CONFIG_KEY = "config.yaml"  # the runtime's config file, the key of each ConfigMap that carries one
CONFIG_DIR = "/etc/avatar"  # where that ConfigMap is mounted
MODEL_DIR = "/models"  # where the model cache claim is mounted (read-write in the Job, read-only in the runtime)


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns a child (from the handler's body: kind, metadata.name/namespace/uid)."""

    kind: str  # AvatarDeployment | AvatarModelCache
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION, "kind": self.kind, "name": self.name, "uid": self.uid,
            "controller": True, "blockOwnerDeletion": True,
        }  # fmt: skip


def labels(owner: Owner, component: str) -> dict[str, str]:
    """Recommended labels; `instance` is the owner's name, `component` says which child (runtime, turn, ...)."""
    return {
        "app.kubernetes.io/name": PART_OF,
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(owner: Owner, component: str) -> dict[str, str]:
    """The stable subset used in selectors (selectors are immutable: never put changing labels in them)."""
    return {"app.kubernetes.io/instance": owner.name, "app.kubernetes.io/component": component}


def spec_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def child(
    api_version: str, kind: str, name: str, owner: Owner, component: str, body: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A complete child manifest: metadata (name, namespace, labels, owner, annotations) + `body` + spec hash."""
    manifest: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels(owner, component),
            "ownerReferences": [owner.reference()],
            "annotations": dict(annotations or {}),
        },
        **body,
    }
    manifest["metadata"]["annotations"][SPEC_HASH] = spec_hash(manifest)
    return manifest
