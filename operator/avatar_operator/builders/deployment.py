"""The runtime Deployment `NAME-runtime`: `avatar-runtime serve` pods (DESIGN §2b) behind the Service `NAME`.

What each choice is for:
- `replicas` is left out when `spec.autoscaling.enabled`: the autoscaler (autoscaler.py) owns it, and writing it on
  every reconcile would fight the autoscaler; kube.apply is told the field is external, so it is not sent as null
  either (a merge patch without the key leaves the live value alone).
- The pod template carries the checksum of the rendered config, so a config change rolls the pods (a mounted
  ConfigMap changes under a running process, which reads its config once at start).
- Rolling updates never take a serving pod away before its replacement is ready (maxUnavailable 0); with GPUs that
  needs room for one extra pod (a spare GPU) during the rollout, or the rollout waits for one.
- Termination drains without cutting conversations: the pod leaves the Service endpoints when it starts
  terminating; preStop only sleeps PRE_STOP_S so that the removal reaches kube-proxy and the ingress controllers
  before the runtime refuses anything; then SIGTERM, on which the runtime drains itself — no new session (503
  `draining`, which the Ingress retries on another pod), live ones go on until they end or
  `spec.sessions.drainSeconds` (runtime `server.drain_timeout_s`) passes, then it closes the rest and exits 0.
  The grace period is PRE_STOP_S + drainSeconds + SHUTDOWN_MARGIN_S, so the kubelet's SIGKILL never comes first.
  Which pod goes on a scale-down is steered by the operator's pod annotations (pods.py: deletion cost = sessions).
"""

from __future__ import annotations

from typing import Any

from .. import GROUP
from ..spec import AvatarDeploymentSpec
from .common import CONFIG_DIR, MODEL_DIR, RUNTIME_PORT, Owner, child, labels, selector
from .model_cache import RUN_AS  # the image's user: the pull Job writes the cache we read as the same user
from .runtime_config import CONFIG_PATH, config_map_name, turn_secret_ref
from .service import PORT_NAME

COMPONENT = "runtime"
CONFIG_CHECKSUM = f"{GROUP}/config-checksum"  # pod template annotation
PRE_STOP_S = 5  # preStop sleep: lets the endpoint removal reach kube-proxy and the ingresses before SIGTERM
SHUTDOWN_MARGIN_S = 15  # after the drain limit: closing the last sessions, stopping the engines, exiting
PRE_STOP = ["python3", "-c", f"import time; time.sleep({PRE_STOP_S})"]  # python3 is in the image; `sleep` may not be
# Model loading on first start: SenseVoice (~900 MB) and LAM (~500 MB) read from a network volume, plus CUDA
# initialisation, can take minutes; the embedded CPU engines load in seconds. 90 x 10 s = 15 min before a restart.
STARTUP_PROBE = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 90}
# Longer than the startup allowance, so a rollout still loading models is not reported as stalled
# (the default 600 s would mark it ProgressDeadlineExceeded while the startup probe still waits).
PROGRESS_DEADLINE_S = 1200


def deployment_name(owner: Owner) -> str:
    return f"{owner.name}-runtime"


def termination_grace_s(spec: AvatarDeploymentSpec) -> int:
    """preStop, then the runtime's own drain (`spec.sessions.drainSeconds`), then its shutdown."""
    return PRE_STOP_S + spec.sessions.drain_seconds + SHUTDOWN_MARGIN_S


def _secret_env(name: str, ref: dict[str, str]) -> dict[str, Any]:
    # optional=false: a missing Secret or key keeps the pod from starting (CreateContainerConfigError, named in
    # its events) instead of starting a runtime that silently lacks its key.
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"], "optional": False}}}


def _env(owner: Owner, spec: AvatarDeploymentSpec) -> list[dict[str, Any]]:
    """The environment contract; `spec.pod.env` entries replace ours of the same name, others are appended."""
    env: list[dict[str, Any]] = [
        # Environment wins over the config file: pin the cache directory against an image default.
        {"name": "AVATAR_MODEL_DIR", "value": MODEL_DIR},
        # A writable home whatever the image's passwd says: libraries cache there (CUDA kernels, numba, hubs).
        {"name": "HOME", "value": "/tmp"},
    ]
    key = spec.llm.api_key_secret_ref
    if key is not None:
        env.append(_secret_env("OPENAI_API_KEY", {"name": key.name, "key": key.key}))
    dashscope = spec.tts.api_key_secret_ref
    if dashscope is not None:
        env.append(_secret_env("DASHSCOPE_API_KEY", {"name": dashscope.name, "key": dashscope.key}))
    turn = turn_secret_ref(owner, spec)
    if turn is not None:
        env.append(_secret_env("AVATAR_TURN_SECRET", turn))
    overrides = {entry["name"]: entry for entry in spec.pod.env}
    merged = [overrides.pop(entry["name"], entry) for entry in env]
    return merged + [entry for entry in spec.pod.env if entry["name"] in overrides]


def _resources(spec: AvatarDeploymentSpec) -> dict[str, Any]:
    """`spec.pod.resources` plus the GPUs (an extended resource: its request, if given, must equal the limit)."""
    resources = {section: dict(amounts) for section, amounts in spec.pod.resources.items()}
    if spec.gpu.count > 0:
        name = spec.gpu.resource_name
        resources.setdefault("limits", {})[name] = spec.gpu.count
        if name in resources.get("requests", {}):
            resources["requests"][name] = spec.gpu.count
    return resources


def _probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": PORT_NAME}, **timing}


def build(owner: Owner, spec: AvatarDeploymentSpec, config_checksum: str, claim_name: str | None) -> dict[str, Any]:
    """The runtime Deployment; `claim_name` is the model cache's PVC (mounted read-only at /models), if any."""
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": config_map_name(owner)}}]
    if claim_name is not None:
        mounts.append({"name": "models", "mountPath": MODEL_DIR, "readOnly": True})
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": claim_name, "readOnly": True}})
    container = {
        "name": "runtime",
        "image": spec.image,
        "command": ["avatar-runtime", "serve", "--config", CONFIG_PATH, "--no-tls"],
        "ports": [{"name": PORT_NAME, "containerPort": RUNTIME_PORT, "protocol": "TCP"}],
        "env": _env(owner, spec),
        "resources": _resources(spec),
        "volumeMounts": mounts,
        # /healthz answers once the engines are loaded (the server starts listening after that), /readyz only
        # when they loaded without error; liveness is lenient because a restart drops every open conversation.
        "startupProbe": _probe("/healthz", **STARTUP_PROBE),
        "readinessProbe": _probe("/readyz", periodSeconds=5, timeoutSeconds=3, failureThreshold=2),
        "livenessProbe": _probe("/healthz", periodSeconds=10, timeoutSeconds=5, failureThreshold=6),
        "lifecycle": {"preStop": {"exec": {"command": list(PRE_STOP)}}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        # Not readOnlyRootFilesystem: the engines' libraries write caches whose paths are not all known here.
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the runtime never talks to the API server
        "enableServiceLinks": False,  # no *_SERVICE_HOST/*_PORT variables beside the runtime's AVATAR_* ones
        "terminationGracePeriodSeconds": termination_grace_s(spec),
        # A numeric user, so the kubelet can verify runAsNonRoot whatever USER line the image has.
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }  # fmt: skip
    if spec.pod.node_selector:
        pod["nodeSelector"] = dict(spec.pod.node_selector)
    if spec.pod.tolerations:
        pod["tolerations"] = [dict(toleration) for toleration in spec.pod.tolerations]
    if spec.pod.runtime_class_name is not None:
        pod["runtimeClassName"] = spec.pod.runtime_class_name  # e.g. "nvidia" where the GPU runtime is not default
    template_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(RUNTIME_PORT),
        "prometheus.io/path": "/metrics",
        CONFIG_CHECKSUM: config_checksum,
    }
    deployment: dict[str, Any] = {}
    if not spec.autoscaling.enabled:
        deployment["replicas"] = spec.replicas
    deployment |= {
        "selector": {"matchLabels": selector(owner, COMPONENT)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "progressDeadlineSeconds": PROGRESS_DEADLINE_S,
        "template": {
            "metadata": {"labels": labels(owner, COMPONENT), "annotations": template_annotations},
            "spec": pod,
        },
    }
    return child("apps/v1", "Deployment", deployment_name(owner), owner, COMPONENT, {"spec": deployment})
