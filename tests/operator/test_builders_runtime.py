"""Runtime-side builders of an AvatarDeployment: config, Deployment, Service, Ingress/HTTPRoute, Certificate.

Inputs → exact manifests for the main cases, every optional path, the rendered config accepted by the runtime's own
loader (with the environment the Deployment sets), the config checksum, the drain timing,
and every manifest validated offline (tests/operator/schemas.py: Kubernetes 1.30 strict for built-in kinds,
vendored CRD subsets for Certificate and HTTPRoute).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from avatar_operator.builders import certificate, coturn, deployment, httproute, ingress, runtime_config, service
from avatar_operator.builders.common import SPEC_HASH, Owner, spec_hash
from avatar_operator.spec import AvatarDeploymentSpec, SpecError, parse_deployment
from avatar_runtime.config import VADConfig, load_config

from tests.operator.schemas import Invalid, validate_manifest

OWNER = Owner(kind="AvatarDeployment", name="demo", namespace="avatars", uid="0d7e6f4a-uid")
CPU = {"image": "ghcr.io/example/avatar-runtime:1.0", "gpu": {"count": 0}}
GPU = {"image": "ghcr.io/example/avatar-runtime:1.0", "gpu": {"count": 1}, "modelCacheRef": "cache"}
SECRET = {"name": "llm-key", "key": "api-key"}
SELECTOR = {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "runtime"}


def _spec(base: dict[str, Any], **extra: Any) -> AvatarDeploymentSpec:
    return parse_deployment({**copy.deepcopy(base), **extra})


def _all(spec: AvatarDeploymentSpec, claim: str | None = "cache-models") -> list[dict[str, Any]]:
    """Every manifest these builders produce for one spec (None = child not needed)."""
    built = [
        runtime_config.build(OWNER, spec),
        deployment.build(OWNER, spec, runtime_config.checksum(OWNER, spec), claim),
        service.build(OWNER, spec),
        ingress.build(OWNER, spec),
        httproute.build(OWNER, spec),
        certificate.build(OWNER, spec),
    ]
    return [manifest for manifest in built if manifest is not None]


def _unhashed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its spec-hash annotation, after checking the hash is the hash of exactly that."""
    stripped = copy.deepcopy(manifest)
    digest = stripped["metadata"]["annotations"].pop(SPEC_HASH)
    assert digest == spec_hash(stripped)
    return stripped


def _metadata(name: str, component: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "avatars",
        "labels": {
            "app.kubernetes.io/name": "gaussian-avatar",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "gaussian-avatar",
            "app.kubernetes.io/managed-by": "gaussian-avatar-operator",
        },
        "ownerReferences": [
            {"apiVersion": "gaussianavatar.io/v1alpha1", "kind": "AvatarDeployment", "name": "demo",
             "uid": "0d7e6f4a-uid", "controller": True, "blockOwnerDeletion": True},
        ],
        "annotations": annotations or {},
    }  # fmt: skip


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]["containers"][0]


def _env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in _container(manifest)["env"]}


def _load(spec: AvatarDeploymentSpec, tmp_path: Path, env: dict[str, str] | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(runtime_config.build(OWNER, spec)["data"]["config.yaml"], encoding="utf-8")
    return load_config(path, env=env or {})


# -- the minimal CPU spec: exact manifests -----------------------------------------------------------------------
MINIMAL_CONFIG = """\
# Rendered by the Gaussian Avatar operator from AvatarDeployment avatars/demo.
# Edit the AvatarDeployment (spec.runtimeConfig for any other key), not this file.
server:
  host: 0.0.0.0
  port: 8282
  concurrent_limit: 4
  drain_timeout_s: 300
  retry_after_s: 1
asr:
  engine: whisper
a2e:
  engine: audio
tts:
  engine: edge
turn:
  urls: []
tls:
  enabled: false
avatar:
  name: default
model_dir: /models
"""


def test_minimal_cpu_config_map_is_exact():
    spec = _spec(CPU)
    assert runtime_config.render(OWNER, spec) == MINIMAL_CONFIG
    assert _unhashed(runtime_config.build(OWNER, spec)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata("demo-runtime-config", "runtime"),
        "data": {"config.yaml": MINIMAL_CONFIG},
    }


def test_minimal_cpu_deployment_is_exact():
    spec = _spec(CPU)
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    assert _unhashed(deployment.build(OWNER, spec, "abc123", None)) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata("demo-runtime", "runtime"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": SELECTOR},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": 1200,
            "template": {
                "metadata": {
                    "labels": _metadata("x", "runtime")["labels"],
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "8282",
                        "prometheus.io/path": "/metrics",
                        "gaussianavatar.io/config-checksum": "abc123",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 320,  # 5 s preStop + 300 s drain + 15 s shutdown
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "runtime",
                            "image": "ghcr.io/example/avatar-runtime:1.0",
                            "command": ["avatar-runtime", "serve", "--config", "/etc/avatar/config.yaml", "--no-tls"],
                            "ports": [{"name": "http", "containerPort": 8282, "protocol": "TCP"}],
                            "env": [
                                {"name": "AVATAR_MODEL_DIR", "value": "/models"},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "resources": {},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/avatar", "readOnly": True}],
                            "startupProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 90},
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 2,
                            },
                            "livenessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
                            "lifecycle": {
                                "preStop": {"exec": {"command": ["python3", "-c", "import time; time.sleep(5)"]}},
                            },
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "demo-runtime-config"}}],
                },
            },
        },
    }  # fmt: skip


def test_minimal_cpu_service_is_exact_and_nothing_is_exposed():
    spec = _spec(CPU)
    assert _unhashed(service.build(OWNER, spec)) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata("demo", "runtime"),
        "spec": {
            "type": "ClusterIP",
            "selector": SELECTOR,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}],
        },
    }
    assert ingress.build(OWNER, spec) is None
    assert httproute.build(OWNER, spec) is None
    assert certificate.build(OWNER, spec) is None


def test_service_selects_exactly_the_pods_the_deployment_makes():
    spec = _spec(CPU)
    made = deployment.build(OWNER, spec, "c", None)
    pod_labels = made["spec"]["template"]["metadata"]["labels"]
    selector = service.build(OWNER, spec)["spec"]["selector"]
    assert selector == made["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert _container(made)["ports"][0]["name"] == service.build(OWNER, spec)["spec"]["ports"][0]["targetPort"]


# -- the runtime accepts what we render ---------------------------------------------------------------------------
VARIANTS: dict[str, dict[str, Any]] = {
    "cpu-minimal": CPU,
    "gpu": {**GPU, "gpu": {"count": 2, "resourceName": "amd.com/gpu"}},
    "llm": {
        **CPU, "llm": {"baseURL": "https://dashscope.example.com/v1", "model": "qwen-plus", "apiKeySecretRef": SECRET},
    },
    "tts-cosyvoice": {**CPU, "tts": {"engine": "cosyvoice", "voice": "longxiaochun"}},
    "tts-espeak": {**CPU, "tts": {"engine": "espeak", "voice": "en-us"}},
    "sessions-avatar": {**CPU, "sessions": {"concurrentLimit": 12}, "avatar": {"name": "p2-1"}},
    "ingress-tls-issuer": {**CPU, "ingress": {"host": "avatar.example.com"}, "tls": {"issuerRef": {"name": "le"}}},
    "ingress-tls-secret": {**CPU, "ingress": {"host": "avatar.example.com"}, "tls": {"secretName": "mine"}},
    "gateway": {**CPU, "gateway": {"parentRef": {"name": "gw"}, "hostname": "avatar.example.com"}},
    "turn-off": {**CPU, "ingress": {"host": "avatar.example.com"}, "turn": {"enabled": False}},
    "turn-external": {**CPU, "turn": {"external": {"urls": ["turn:turn.example.net:3478"], "secretRef": SECRET}}},
    "runtime-config": {
        **CPU,
        "runtimeConfig": {
            "vad": {"hangover_ms": 600}, "server": {"auth_token": "t"}, "turn": {"stun_urls": ["stun:s:3478"]},
        },
    },
    "autoscaling": {**CPU, "autoscaling": {"enabled": True, "maxReplicas": 8}},
    "pod": {
        **GPU,
        "pod": {
            "nodeSelector": {"gpu": "l4"}, "runtimeClassName": "nvidia",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
            "env": [{"name": "LOG_FORMAT", "value": "json"}],
        },
    },
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_renders_a_config_the_runtime_loads(variant, tmp_path):
    spec = _spec(VARIANTS[variant])
    config = _load(spec, tmp_path)
    assert config.server.port == 8282 and config.server.host == "0.0.0.0"
    assert config.tls.enabled is False
    assert config.model_dir == "/models"
    assert config.server.concurrent_limit == spec.sessions.concurrent_limit
    assert config.avatar.name == spec.avatar.name
    assert config.tts.engine == spec.tts.engine
    assert config.llm.api_key is None  # keys never enter the ConfigMap


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_environment_the_deployment_sets_is_the_one_the_runtime_reads(variant, tmp_path):
    """Each secret env var we set lands in the runtime setting it is meant for (names checked end to end)."""
    spec = _spec(VARIANTS[variant])
    made = deployment.build(OWNER, spec, runtime_config.checksum(OWNER, spec), "cache-models")
    env = {name: (value if isinstance(value, str) else f"secret:{name}") for name, value in _env(made).items()}
    config = _load(spec, tmp_path, env)
    assert config.model_dir == "/models"
    assert config.llm.api_key == env.get("OPENAI_API_KEY")
    assert config.turn.static_auth_secret == env.get("AVATAR_TURN_SECRET")
    assert config.tts.cosyvoice.api_key == env.get("DASHSCOPE_API_KEY")
    if env.get("AVATAR_TURN_SECRET"):
        assert config.turn.urls  # a shared secret only where there is a TURN to mint credentials for


def test_gpu_uses_the_production_engines_on_cuda_and_cpu_the_embedded_ones(tmp_path):
    gpu = _load(_spec(GPU), tmp_path)
    assert (gpu.asr.engine, gpu.asr.device, gpu.asr.language) == ("sensevoice", "cuda", "auto")
    assert (gpu.a2e.engine, gpu.a2e.device) == ("lam", "cuda")
    cpu = _load(_spec(CPU), tmp_path)
    assert (cpu.asr.engine, cpu.a2e.engine) == ("whisper", "audio")


def test_llm_endpoint_and_model_in_the_config_key_from_the_secret(tmp_path):
    spec = _spec(VARIANTS["llm"])
    config = _load(spec, tmp_path)
    assert (config.llm.base_url, config.llm.model) == ("https://dashscope.example.com/v1", "qwen-plus")
    assert "api_key" not in runtime_config.render(OWNER, spec)
    made = deployment.build(OWNER, spec, "c", None)
    assert _env(made)["OPENAI_API_KEY"] == {"secretKeyRef": {"name": "llm-key", "key": "api-key", "optional": False}}
    assert "OPENAI_API_KEY" not in _env(deployment.build(OWNER, _spec(CPU), "c", None))


def test_avatar_dir_points_into_the_cache_only_when_asked(tmp_path):
    spec = _spec(GPU, avatar={"name": "p2-1"})
    assert _load(spec, tmp_path).avatar.dir == "./avatars"  # the image's own directory (embedded default)
    cached = tmp_path / "cached.yaml"
    cached.write_text(runtime_config.render(OWNER, spec, avatar_dir="/models/avatars"), encoding="utf-8")
    config = load_config(cached, env={})
    assert (config.avatar.name, config.avatar.dir) == ("p2-1", "/models/avatars")
    plain, moved = (
        runtime_config.checksum(OWNER, spec),
        runtime_config.checksum(OWNER, spec, avatar_dir="/models/avatars"),
    )
    assert plain != moved
    made = runtime_config.build(OWNER, spec, avatar_dir="/models/avatars")
    assert made["data"]["config.yaml"] == runtime_config.render(OWNER, spec, avatar_dir="/models/avatars")


def test_metrics_are_hidden_under_the_public_host_only_when_there_is_one(tmp_path):
    assert _load(_spec(CPU, ingress={"host": "avatar.example.com"}), tmp_path).server.public_hosts == [
        "avatar.example.com"
    ]
    gateway = {"parentRef": {"name": "gw"}, "hostname": "talk.example.com"}
    assert _load(_spec(CPU, gateway=gateway), tmp_path).server.public_hosts == ["talk.example.com"]
    assert _load(_spec(CPU), tmp_path).server.public_hosts == []


def test_tts_engine_and_voice(tmp_path):
    config = _load(_spec(VARIANTS["tts-cosyvoice"]), tmp_path)
    assert (config.tts.engine, config.tts.voice) == ("cosyvoice", "longxiaochun")
    assert _load(_spec(CPU), tmp_path).tts.voice is None


# -- TURN ---------------------------------------------------------------------------------------------------------
def test_operator_turn_is_announced_under_the_public_host_not_the_cluster_name(tmp_path):
    plain = _spec(CPU, ingress={"host": "avatar.example.com"})
    assert _load(plain, tmp_path).turn.urls == ["turn:avatar.example.com:3478?transport=udp"]
    with_tls = _spec(VARIANTS["ingress-tls-issuer"])
    assert _load(with_tls, tmp_path).turn.urls == [
        "turn:avatar.example.com:3478?transport=udp",
        "turns:avatar.example.com:5349?transport=tcp",
    ]
    through_gateway = _spec(VARIANTS["gateway"])
    assert _load(through_gateway, tmp_path).turn.urls == ["turn:avatar.example.com:3478?transport=udp"]
    for spec in (plain, with_tls, through_gateway):
        assert ".svc" not in runtime_config.render(OWNER, spec)
        turn = _env(deployment.build(OWNER, spec, "c", None))["AVATAR_TURN_SECRET"]
        assert turn == {"secretKeyRef": {"name": "demo-turn", "key": "static-auth-secret", "optional": False}}


def test_no_public_host_or_turn_disabled_means_no_turn_url_and_no_secret(tmp_path):
    for spec in (_spec(CPU), _spec(VARIANTS["turn-off"]), _spec(CPU, gateway={"parentRef": {"name": "gw"}})):
        assert _load(spec, tmp_path).turn.urls == []
        assert "AVATAR_TURN_SECRET" not in _env(deployment.build(OWNER, spec, "c", None))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_runtime_points_at_the_operators_coturn_exactly_when_one_is_built(variant):
    spec = _spec(VARIANTS[variant])
    secret = _env(deployment.build(OWNER, spec, "c", None)).get("AVATAR_TURN_SECRET")
    ours = secret == {"secretKeyRef": {"name": "demo-turn", "key": "static-auth-secret", "optional": False}}
    assert ours == coturn.enabled(spec)
    assert any(url.startswith("turn:avatar.example.com:") for url in runtime_config.turn_urls(OWNER, spec)) == ours


def test_external_turn_uses_its_urls_and_its_secret(tmp_path):
    spec = _spec(VARIANTS["turn-external"], ingress={"host": "avatar.example.com"})
    assert _load(spec, tmp_path).turn.urls == ["turn:turn.example.net:3478"]
    turn = _env(deployment.build(OWNER, spec, "c", None))["AVATAR_TURN_SECRET"]
    assert turn == {"secretKeyRef": {"name": "llm-key", "key": "api-key", "optional": False}}
    no_secret = _spec(CPU, turn={"external": {"urls": ["turn:t.example.net:3478"]}})
    assert "AVATAR_TURN_SECRET" not in _env(deployment.build(OWNER, no_secret, "c", None))


# -- spec.runtimeConfig --------------------------------------------------------------------------------------------
def test_runtime_config_is_deep_merged_last(tmp_path):
    spec = _spec(
        CPU, ingress={"host": "avatar.example.com"}, sessions={"concurrentLimit": 9},
        runtimeConfig={
            "server": {"retry_after_s": 3},  # a sibling of operator keys: both kept
            "vad": {"hangover_ms": 600},  # a section we do not write
            "tts": {"engine": "piper"},  # overrides what the spec decided
            "turn": {"urls": ["turn:elsewhere.example.com:3478"]},  # lists are replaced, not appended
        },
    )  # fmt: skip
    config = _load(spec, tmp_path)
    assert (config.server.retry_after_s, config.server.concurrent_limit) == (3, 9)
    assert config.vad.hangover_ms == 600 and config.vad.pause_ms == VADConfig().pause_ms
    assert config.tts.engine == "piper"
    assert config.turn.urls == ["turn:elsewhere.example.com:3478"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"server": {"port": 9000}}, "spec.runtimeConfig.server.port"),
        ({"server": {"host": "127.0.0.1"}}, "spec.runtimeConfig.server.host"),
        ({"tls": {"enabled": True}}, "spec.runtimeConfig.tls.enabled"),
        ({"model_dir": "/data"}, "spec.runtimeConfig.model_dir"),
        ({"server": 5}, "spec.runtimeConfig.server"),
        ({"tts": {"edge": {"rate": "+5%"}}, "asr": ["whisper"]}, "spec.runtimeConfig.asr"),
    ],
)
def test_runtime_config_cannot_move_what_other_children_depend_on(override, field):
    spec = _spec(CPU, runtimeConfig=override)
    for make in (runtime_config.render, runtime_config.build, runtime_config.checksum):
        with pytest.raises(SpecError) as caught:
            make(OWNER, spec)
        assert caught.value.field == field


def test_runtime_config_may_restate_operator_values():
    spec = _spec(CPU, runtimeConfig={"server": {"port": 8282}, "tls": {"enabled": False}})
    assert runtime_config.render(OWNER, spec) == MINIMAL_CONFIG


# -- checksum ------------------------------------------------------------------------------------------------------
def test_config_checksum_moves_with_the_config_and_only_with_it():
    base = runtime_config.checksum(OWNER, _spec(CPU))
    assert base == runtime_config.checksum(OWNER, _spec(CPU))  # deterministic
    config_changes = [
        {"sessions": {"concurrentLimit": 5}},
        {"sessions": {"drainSeconds": 60}},
        {"runtimeConfig": {"vad": {"hangover_ms": 600}}},
        {"tts": {"engine": "espeak"}},
        {"avatar": {"name": "other"}},
        {"llm": {"model": "qwen-plus"}},
        {"ingress": {"host": "avatar.example.com"}},  # TURN urls follow the public host
    ]
    for change in config_changes:
        assert runtime_config.checksum(OWNER, _spec(CPU, **change)) != base, change
    other_changes = [
        {"replicas": 3},
        {"image": "ghcr.io/example/avatar-runtime:2.0"},
        {"pod": {"nodeSelector": {"a": "b"}, "env": [{"name": "X", "value": "1"}]}},
        {"llm": {"apiKeySecretRef": SECRET}},
        {"autoscaling": {"enabled": True}},
    ]
    for change in other_changes:
        assert runtime_config.checksum(OWNER, _spec(CPU, **change)) == base, change


def test_the_checksum_is_on_the_pod_template_so_a_new_config_rolls_the_pods():
    spec = _spec(CPU)
    old, new = deployment.build(OWNER, spec, "aaa", None), deployment.build(OWNER, spec, "bbb", None)
    assert old["spec"]["template"]["metadata"]["annotations"]["gaussianavatar.io/config-checksum"] == "aaa"
    assert new["spec"]["template"]["metadata"]["annotations"]["gaussianavatar.io/config-checksum"] == "bbb"
    assert old["metadata"]["annotations"][SPEC_HASH] != new["metadata"]["annotations"][SPEC_HASH]
    assert runtime_config.checksum(OWNER, spec) == hashlib.sha256(MINIMAL_CONFIG.encode()).hexdigest()


# -- Deployment options ---------------------------------------------------------------------------------------------
def test_gpu_count_and_resource_name_become_limits_merged_with_pod_resources():
    made = deployment.build(OWNER, _spec(VARIANTS["pod"]), "c", "cache-models")
    assert _container(made)["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": 1},
    }
    amd = deployment.build(OWNER, _spec(VARIANTS["gpu"]), "c", "cache-models")
    assert _container(amd)["resources"] == {"limits": {"amd.com/gpu": 2}}
    # A GPU request in pod.resources is forced to the count: extended resources need request == limit.
    clash = _spec(GPU, pod={"resources": {"requests": {"nvidia.com/gpu": 4}, "limits": {"nvidia.com/gpu": 4}}})
    resources = _container(deployment.build(OWNER, clash, "c", "m"))["resources"]
    assert resources == {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}}
    assert _container(deployment.build(OWNER, _spec(CPU), "c", None))["resources"] == {}


def test_pod_passthrough_and_env_overrides():
    spec = _spec(
        {**VARIANTS["pod"], "llm": {"apiKeySecretRef": SECRET}},
        pod={**VARIANTS["pod"]["pod"], "env": [
            {"name": "LOG_FORMAT", "value": "json"},
            {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}},
        ]},
    )  # fmt: skip
    pod = deployment.build(OWNER, spec, "c", "cache-models")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["runtimeClassName"] == "nvidia"
    names = [entry["name"] for entry in pod["containers"][0]["env"]]
    assert names == ["AVATAR_MODEL_DIR", "HOME", "OPENAI_API_KEY", "LOG_FORMAT"]  # replaced in place, then appended
    key = pod["containers"][0]["env"][names.index("OPENAI_API_KEY")]
    assert key["valueFrom"] == {"secretKeyRef": {"name": "other", "key": "k"}}
    plain = deployment.build(OWNER, _spec(CPU), "c", None)["spec"]["template"]["spec"]
    assert not {"nodeSelector", "tolerations", "runtimeClassName"} & plain.keys()


def test_model_cache_claim_is_mounted_read_only_at_models():
    made = deployment.build(OWNER, _spec(GPU), "c", "cache-models")
    pod = made["spec"]["template"]["spec"]
    claim = {"claimName": "cache-models", "readOnly": True}
    assert {"name": "models", "persistentVolumeClaim": claim} in pod["volumes"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in _container(made)["volumeMounts"]
    assert _env(made)["AVATAR_MODEL_DIR"] == "/models"


def test_replicas_are_left_to_the_autoscaler_when_it_is_enabled():
    assert deployment.build(OWNER, _spec(CPU, replicas=3), "c", None)["spec"]["replicas"] == 3
    scaled = deployment.build(OWNER, _spec(VARIANTS["autoscaling"], replicas=3), "c", None)
    assert "replicas" not in scaled["spec"]


@pytest.mark.parametrize("drain", [0, 300, 3600])
def test_grace_period_is_prestop_plus_the_runtime_drain_plus_its_shutdown(drain, tmp_path):
    """The kubelet sends SIGTERM after preStop and SIGKILL at the end of the grace period: the runtime's drain
    limit (the same number, in its config) must fit between the two, with room to close what is left."""
    spec = _spec(CPU, sessions={"drainSeconds": drain})
    made = deployment.build(OWNER, spec, "c", None)
    assert made["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 5 + drain + 15
    assert _load(spec, tmp_path).server.drain_timeout_s == drain
    validate_manifest(made)


def test_prestop_only_waits_for_the_endpoint_removal():
    """The old preStop waited for the sessions itself; now the runtime drains on SIGTERM and preStop only lets the
    endpoint removal reach kube-proxy and the ingresses first. It is valid Python doing exactly that."""
    command = _container(deployment.build(OWNER, _spec(CPU), "c", None))["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python3", "-c"]
    compile(command[2], "<preStop>", "exec")
    assert command[2] == f"import time; time.sleep({deployment.PRE_STOP_S})" and deployment.PRE_STOP_S == 5


def test_a_rollout_is_not_called_stalled_while_the_startup_probe_still_waits():
    made = deployment.build(OWNER, _spec(GPU), "c", "cache-models")
    startup = _container(made)["startupProbe"]
    assert made["spec"]["progressDeadlineSeconds"] > startup["periodSeconds"] * startup["failureThreshold"]


# -- Ingress, HTTPRoute, Certificate ---------------------------------------------------------------------------------
NGINX = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
    "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_503 non_idempotent",
    "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "3",
}
RULE = {
    "host": "avatar.example.com",
    "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "demo", "port": {"name": "http"}}}}]},
}  # fmt: skip


def test_ingress_with_class_and_cert_manager_tls_is_exact():
    spec = _spec(CPU, ingress={"host": "avatar.example.com", "className": "nginx"}, tls={"issuerRef": {"name": "le"}})
    assert _unhashed(ingress.build(OWNER, spec)) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata("demo", "runtime", NGINX),
        "spec": {
            "rules": [RULE],
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["avatar.example.com"], "secretName": "demo-tls"}],
        },
    }
    assert _unhashed(certificate.build(OWNER, spec)) == {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _metadata("demo-tls", "tls"),
        "spec": {
            "secretName": "demo-tls",
            "dnsNames": ["avatar.example.com"],
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "le"},
            "secretTemplate": {"labels": _metadata("x", "tls")["labels"]},
        },
    }
    assert httproute.build(OWNER, spec) is None


def test_ingress_without_tls_or_class():
    spec = _spec(CPU, ingress={"host": "avatar.example.com"})
    assert _unhashed(ingress.build(OWNER, spec))["spec"] == {"rules": [RULE]}
    assert certificate.build(OWNER, spec) is None


def test_an_existing_tls_secret_is_used_and_no_certificate_made():
    spec = _spec(VARIANTS["ingress-tls-secret"])
    assert ingress.build(OWNER, spec)["spec"]["tls"] == [{"hosts": ["avatar.example.com"], "secretName": "mine"}]
    assert certificate.build(OWNER, spec) is None


def test_issuer_kind_is_passed_through():
    spec = _spec(CPU, ingress={"host": "avatar.example.com"}, tls={"issuerRef": {"name": "ca", "kind": "Issuer"}})
    issuer = certificate.build(OWNER, spec)["spec"]["issuerRef"]
    assert issuer == {"group": "cert-manager.io", "kind": "Issuer", "name": "ca"}


def test_gateway_route_is_exact():
    spec = _spec(
        CPU, tls={"issuerRef": {"name": "le"}},
        gateway={
            "parentRef": {"name": "gw", "namespace": "infra", "sectionName": "https"}, "hostname": "avatar.example.com",
        },
    )  # fmt: skip
    assert _unhashed(httproute.build(OWNER, spec)) == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata("demo", "runtime"),
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw",
                            "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["avatar.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": [{"group": "", "kind": "Service", "name": "demo", "port": 80}]}],
        },
    }  # fmt: skip
    assert ingress.build(OWNER, spec) is None
    assert certificate.build(OWNER, spec)["spec"]["dnsNames"] == ["avatar.example.com"]


def test_gateway_without_hostname_has_no_hostnames_and_no_certificate():
    # (tls.issuerRef without any host is rejected by the CRD and spec.py: nothing to put in dnsNames)
    spec = _spec(CPU, gateway={"parentRef": {"name": "gw"}}, tls={"secretName": "own-cert"})
    route = httproute.build(OWNER, spec)["spec"]
    assert "hostnames" not in route
    assert route["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]
    assert certificate.build(OWNER, spec) is None  # the user's own Secret: no Certificate


# -- offline schema validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_manifest_passes_its_schema(variant):
    """Built-in kinds: Kubernetes 1.30 strict; Certificate and HTTPRoute: the vendored subsets of their CRDs."""
    spec = _spec(VARIANTS[variant])
    kinds = set()
    for claim in (None, "cache-models"):
        for manifest in _all(spec, claim):
            validate_manifest(manifest)
            kinds.add(manifest["kind"])
    assert {"ConfigMap", "Deployment", "Service"} <= kinds


def test_every_kind_is_validated_somewhere():
    kinds = {manifest["kind"] for variant in VARIANTS.values() for manifest in _all(_spec(variant))}
    assert kinds == {"ConfigMap", "Deployment", "Service", "Ingress", "HTTPRoute", "Certificate"}


def test_the_schema_check_rejects_what_an_api_server_would():
    made = deployment.build(OWNER, _spec(CPU), "c", None)
    typo = copy.deepcopy(made)
    typo["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(Invalid):
        validate_manifest(typo)
    wrong_type = copy.deepcopy(made)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "300"
    with pytest.raises(Invalid):
        validate_manifest(wrong_type)
    route = httproute.build(OWNER, _spec(VARIANTS["gateway"]))
    route["spec"]["rules"][0]["backendRefs"][0]["prot"] = 80
    with pytest.raises(Invalid):
        validate_manifest(route)


def test_rendered_yaml_is_plain_data():
    # safe_load of the ConfigMap text gives back exactly the values (no tags, anchors or aliases).
    spec = _spec(VARIANTS["runtime-config"])
    assert yaml.safe_load(runtime_config.render(OWNER, spec)) == runtime_config.values(OWNER, spec)


def test_cosyvoice_key_from_its_secret_reaches_the_runtime(tmp_path):
    spec = _spec({**CPU, "tts": {"engine": "cosyvoice", "apiKeySecretRef": {"name": "dashscope", "key": "k"}}})
    made = deployment.build(OWNER, spec, "c", None)
    assert _env(made)["DASHSCOPE_API_KEY"] == {"secretKeyRef": {"name": "dashscope", "key": "k", "optional": False}}
    config = _load(spec, tmp_path, {"DASHSCOPE_API_KEY": "ds-secret"})
    assert config.tts.engine == "cosyvoice" and config.tts.cosyvoice.api_key == "ds-secret"
    assert "ds-secret" not in runtime_config.render(OWNER, spec)
    validate_manifest(made)


def test_the_expressive_mandarin_example_renders_a_config_that_converses_in_chinese(tmp_path):
    from avatar_runtime.languages import languages_of

    from tests.operator.schemas import EXAMPLES_DIR

    doc = yaml.safe_load((EXAMPLES_DIR / "chinese-expressive.yaml").read_text(encoding="utf-8"))
    config = _load(parse_deployment(doc["spec"]), tmp_path)
    assert languages_of(config).conversation == ("zh",) and languages_of(config).problem() is None
    assert config.expression.llm_control == "tools" and config.expression.strength == 1.2
    assert config.llm.system_prompt.startswith("你是") and config.tts.voice == "zh-CN-XiaoxiaoNeural"
