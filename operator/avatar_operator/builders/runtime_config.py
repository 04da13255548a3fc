"""The runtime's config file for one AvatarDeployment: spec → YAML → ConfigMap `NAME-runtime-config` (`config.yaml`).

The pods run `avatar-runtime serve --config /etc/avatar/config.yaml --no-tls` (DESIGN §2b); every key written here
is one of runtime/avatar_runtime/default_config.yaml, and the runtime rejects unknown keys at start. Secrets never
enter the file (a ConfigMap is readable by anyone who can read the namespace): the LLM key and the TURN shared
secret reach the runtime as environment variables from Secrets (deployment.py), which win over the file.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import yaml

from ..spec import AvatarDeploymentSpec, SpecError
from . import coturn
from .common import CONFIG_DIR, CONFIG_KEY, MODEL_DIR, RUNTIME_PORT, Owner, child
from .ingress import public_host

COMPONENT = "runtime"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
RETRY_AFTER_S = 1

# Keys that other children depend on (Service/probe port, plain HTTP behind the ingress, the cache mount):
# `spec.runtimeConfig` may not change them, or the pods would listen where nothing looks.
PINNED: dict[tuple[str, ...], Any] = {
    ("server", "host"): "0.0.0.0",
    ("server", "port"): RUNTIME_PORT,
    ("tls", "enabled"): False,
    ("model_dir",): MODEL_DIR,
}


def config_map_name(owner: Owner) -> str:
    return f"{owner.name}-runtime-config"


def turn_urls(owner: Owner, spec: AvatarDeploymentSpec) -> list[str]:
    """TURN URLs handed to browsers in /api/config.

    The operator's coturn is announced under the PUBLIC host (the Ingress host or the Gateway hostname), never
    under its cluster DNS name `NAME-turn.NS.svc`: the browser resolves the URL, outside the cluster. So that host
    must also reach coturn on 3478 (and 5349): coturn with `hostNetwork` on the nodes that name resolves to, or a
    coturn LoadBalancer sharing the ingress address; where it cannot, use `spec.turn.external`. TURNS (TLS on 5349)
    is offered only with `spec.tls`, whose certificate coturn mounts. Without a public host there is no address to
    announce and no coturn is built (`coturn.enabled`): no TURN URL, so browsers only reach pods they can route to.
    """
    if spec.turn.enabled and spec.turn.external is not None:
        return list(spec.turn.external.urls)
    host = coturn.turn_host(spec)
    if not coturn.enabled(spec) or host is None:
        return []
    urls = [f"turn:{host}:{coturn.TURN_PORT}?transport=udp"]
    if spec.tls is not None:
        urls.append(f"turns:{host}:{coturn.TURNS_PORT}?transport=tcp")
    return urls


def turn_secret_ref(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, str] | None:
    """The Secret key holding coturn's `use-auth-secret` (env AVATAR_TURN_SECRET), or None when there is none."""
    if not turn_urls(owner, spec):
        return None
    external = spec.turn.external
    if external is None:
        return {"name": coturn.name(owner), "key": coturn.SECRET_KEY}
    if external.secret_ref is not None:
        return {"name": external.secret_ref.name, "key": external.secret_ref.key}
    return None  # an external TURN with static credentials: those go in spec.runtimeConfig.turn


def values(owner: Owner, spec: AvatarDeploymentSpec, *, avatar_dir: str | None = None) -> dict[str, Any]:
    """The runtime config as data: what the spec decides, then `spec.runtimeConfig` merged over it.

    `avatar_dir`: where the avatar zips are, when the avatar comes from the model cache (`model_cache.AVATAR_DIR`,
    known to the caller, which reads the AvatarModelCache); None keeps the image's own directory, which holds the
    embedded `default` avatar.
    """
    gpu = spec.gpu.count > 0
    # With GPUs, the production engines from the model cache, pinned to CUDA so a pod without a usable GPU stays
    # unready with the reason on /readyz instead of quietly running them on the CPU; without, the embedded engines.
    # SenseVoice detects the language (the runtime's default "en" is Whisper's).
    asr = {"engine": "sensevoice", "language": "auto", "device": "cuda"} if gpu else {"engine": "whisper"}
    a2e = {"engine": "lam", "device": "cuda"} if gpu else {"engine": "audio"}
    llm = {
        key: value for key, value in (("base_url", spec.llm.base_url), ("model", spec.llm.model)) if value is not None
    }
    tts: dict[str, Any] = {"engine": spec.tts.engine}
    if spec.tts.voice is not None:
        tts["voice"] = spec.tts.voice
    config: dict[str, Any] = {
        "server": {
            "host": "0.0.0.0",
            "port": RUNTIME_PORT,
            "concurrent_limit": spec.sessions.concurrent_limit,
            # After SIGTERM, live conversations go on this long (deployment.py sizes the grace period from it).
            "drain_timeout_s": spec.sessions.drain_seconds,
            # A full pod's 503 says "retry in 1 s": in a cluster other pods have room (the Ingress and the web
            # client retry on another pod), unlike a single host where waiting 10 s for a free seat is right.
            "retry_after_s": RETRY_AFTER_S,
            # /metrics answers 404 under the public name: the ingress must not hand our load figures to the internet
            # (Prometheus and the operator's own reads reach the pods by address).
            **({"public_hosts": [host]} if (host := public_host(spec)) else {}),
        },
        "asr": asr,
        "a2e": a2e,
        **({"llm": llm} if llm else {}),
        "tts": tts,
        "turn": {"urls": turn_urls(owner, spec)},
        "tls": {"enabled": False},  # TLS ends at the ingress/gateway; the pod serves plain HTTP
        "avatar": {"name": spec.avatar.name, **({"dir": avatar_dir} if avatar_dir is not None else {})},
        "model_dir": MODEL_DIR,
    }
    merged = _merge(config, spec.runtime_config, "spec.runtimeConfig")
    for path, pinned in PINNED.items():
        value = _get(merged, path)
        if value != pinned:
            field = ".".join(("spec.runtimeConfig", *path))
            raise SpecError(field, f"must stay {pinned!r} (set by the operator; Service, probes and mounts use it)")
    return merged


class _ConfigDumper(yaml.SafeDumper):
    """PyYAML writes NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR raw into a quoted scalar with allow_unicode, and its
    reader then folds them into a space (found by tests/fuzz): such strings go double-quoted, where they are escaped."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ConfigDumper.add_representer(str, _represent_str)


def render(owner: Owner, spec: AvatarDeploymentSpec, *, avatar_dir: str | None = None) -> str:
    """The config file's text (deterministic: same spec, same bytes, so its checksum only moves when it changes)."""
    header = (
        f"# Rendered by the Gaussian Avatar operator from AvatarDeployment {owner.namespace}/{owner.name}.\n"
        "# Edit the AvatarDeployment (spec.runtimeConfig for any other key), not this file.\n"
    )
    config = values(owner, spec, avatar_dir=avatar_dir)
    return header + yaml.dump(config, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=120)


def checksum(owner: Owner, spec: AvatarDeploymentSpec, *, avatar_dir: str | None = None) -> str:
    """sha256 of the rendered file, for the pod template annotation that rolls the pods when it changes."""
    return hashlib.sha256(render(owner, spec, avatar_dir=avatar_dir).encode()).hexdigest()


def build(owner: Owner, spec: AvatarDeploymentSpec, *, avatar_dir: str | None = None) -> dict[str, Any]:
    """The ConfigMap `NAME-runtime-config` holding `config.yaml`."""
    body = {"data": {CONFIG_KEY: render(owner, spec, avatar_dir=avatar_dir)}}
    return child("v1", "ConfigMap", config_map_name(owner), owner, COMPONENT, body)


def _merge(base: dict[str, Any], override: dict[str, Any], field: str) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else (lists included) replaces; a section stays a mapping."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        here = f"{field}.{key}"
        if isinstance(merged.get(key), dict):
            if not isinstance(value, dict):
                raise SpecError(here, "must be a mapping (it is a section of the runtime config)")
            merged[key] = _merge(merged[key], value, here)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _get(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        config = config.get(key) if isinstance(config, dict) else None
    return config
