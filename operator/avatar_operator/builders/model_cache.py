"""An AvatarModelCache's children: PVC `CACHE-models`, ConfigMap `CACHE-pull-config`, Job `CACHE-pull-<hash8>`.

The Job runs the runtime's own `avatar-runtime models pull --config /etc/avatar/config.yaml` (same downloader, same
verification as on a single host), then, when the cache lists avatars, `fetch_avatars.py` (shipped in the ConfigMap)
puts each verified zip at `/models/avatars/<name>.zip`. The Job's name carries a hash of what it fetches (image,
models, avatars), so a changed list runs a new Job while an unchanged one is never re-run; it has no
`ttlSecondsAfterFinished`, because the cache's `Ready` condition is read from the finished Job.

With `spec.storage.existingClaim` the user's claim is filled instead and no PVC is built (we never create or delete
it). The claim is mounted read-write at /models, and the pod's fsGroup makes a fresh volume writable by the non-root
user; runtime pods mount the same claim read-only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from ..spec import AvatarModelCacheSpec
from .common import CONFIG_DIR, CONFIG_KEY, MODEL_DIR, Owner, child, labels

STORAGE_COMPONENT = "model-cache"
PULL_COMPONENT = "model-pull"
AVATARS_KEY = "avatars.json"
FETCH_SCRIPT_KEY = "fetch_avatars.py"
FETCH_SCRIPT = (Path(__file__).with_name("fetch_avatars.py")).read_text(encoding="utf-8")
AVATAR_DIR = f"{MODEL_DIR}/avatars"  # the runtime's `avatar.dir` when it serves avatars from the cache
RUN_AS = 1000  # the runtime image's user; fsGroup gives it the volume
BACKOFF_LIMIT = 4
PULL_RESOURCES: dict[str, Any] = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}
_MAX_NAME = 63  # a Job's name is also a label value on its pods


def claim_name(owner: Owner, spec: AvatarModelCacheSpec) -> str:
    """The claim holding the cache: the user's existing claim, or our `CACHE-models`."""
    return spec.storage.existing_claim or f"{owner.name}-models"


def pull_config(spec: AvatarModelCacheSpec) -> dict[str, Any]:
    """The runtime config of the pull: `models:` only when listed (else the runtime's defaults), `hub:` when set."""
    config: dict[str, Any] = {"model_dir": MODEL_DIR}
    if spec.models:
        config["models"] = [model.model_dump(mode="json", exclude_none=True) for model in spec.models]
    if spec.hub:
        config["hub"] = dict(spec.hub)
    return config


def render_pull_config(spec: AvatarModelCacheSpec) -> str:
    return yaml.safe_dump(pull_config(spec), sort_keys=False)


def pull_hash(spec: AvatarModelCacheSpec) -> str:
    """8 hex characters over what the Job fetches (image, models, avatars); hub settings do not change the result."""
    what = {
        "image": spec.image,
        "models": [model.model_dump(mode="json") for model in spec.models],
        "avatars": [avatar.model_dump(mode="json") for avatar in spec.avatars],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:8]


def job_name(owner: Owner, spec: AvatarModelCacheSpec) -> str:
    suffix = f"-pull-{pull_hash(spec)}"
    return owner.name[: _MAX_NAME - len(suffix)].rstrip("-.") + suffix


def build_pvc(owner: Owner, spec: AvatarModelCacheSpec) -> dict[str, Any] | None:
    """PVC `CACHE-models`, or None with an existing claim."""
    storage = spec.storage
    if storage.existing_claim is not None:
        return None
    pvc: dict[str, Any] = {
        "accessModes": list(storage.access_modes),
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name is not None:
        pvc["storageClassName"] = storage.storage_class_name
    return child("v1", "PersistentVolumeClaim", claim_name(owner, spec), owner, STORAGE_COMPONENT, {"spec": pvc})


def build_config_map(owner: Owner, spec: AvatarModelCacheSpec) -> dict[str, Any]:
    """ConfigMap `CACHE-pull-config`: the pull's runtime config, plus the avatar list and fetch script when needed."""
    data = {CONFIG_KEY: render_pull_config(spec)}
    if spec.avatars:
        avatars = [avatar.model_dump(mode="json") for avatar in spec.avatars]
        data[AVATARS_KEY] = json.dumps(avatars, indent=2) + "\n"
        data[FETCH_SCRIPT_KEY] = FETCH_SCRIPT
    return child("v1", "ConfigMap", f"{owner.name}-pull-config", owner, PULL_COMPONENT, {"data": data})


def _container(name: str, image: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "command": command,
        "env": [{"name": "AVATAR_MODEL_DIR", "value": MODEL_DIR}, {"name": "HOME", "value": "/tmp"}],
        "resources": PULL_RESOURCES,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "models", "mountPath": MODEL_DIR},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def build_job(owner: Owner, spec: AvatarModelCacheSpec) -> dict[str, Any]:
    """Job `CACHE-pull-<hash8>`: models pull, then (with avatars) the avatar fetch, in order, as the runtime user."""
    config = f"{CONFIG_DIR}/{CONFIG_KEY}"
    pull = _container("pull", spec.image, ["avatar-runtime", "models", "pull", "--config", config])
    pod: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            # Re-own the volume only when its root is not ours yet: a full cache has many files to walk.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [pull],
        "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": claim_name(owner, spec)}},
            {"name": "config", "configMap": {"name": f"{owner.name}-pull-config", "defaultMode": 0o444}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if spec.avatars:
        # Init containers run to completion in order: the avatars are fetched only after the models pull succeeded.
        script, avatars = f"{CONFIG_DIR}/{FETCH_SCRIPT_KEY}", f"{CONFIG_DIR}/{AVATARS_KEY}"
        pod["initContainers"] = [pull]
        pod["containers"] = [_container("avatars", spec.image, ["python3", script, avatars, AVATAR_DIR])]
    body = {
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "template": {"metadata": {"labels": labels(owner, PULL_COMPONENT)}, "spec": pod},
        }
    }
    return child("batch/v1", "Job", job_name(owner, spec), owner, PULL_COMPONENT, body)


def build(owner: Owner, spec: AvatarModelCacheSpec) -> list[dict[str, Any]]:
    """Every child of one AvatarModelCache, in creation order (claim and config before the Job that mounts them)."""
    pvc = build_pvc(owner, spec)
    return [*([pvc] if pvc else []), build_config_map(owner, spec), build_job(owner, spec)]
