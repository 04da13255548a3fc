"""coturn and model-cache builders and the children assembly: inputs → exact manifests, every optional path, every
built-in manifest validated offline (strict, Kubernetes 1.30), the pull config read by the runtime's own loader.
What runs for real (turnserver with our arguments, the avatar fetch script) is in test_turn_cache_live.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from avatar_operator.builders import children, coturn, model_cache, runtime_config
from avatar_operator.builders import deployment as runtime_deployment
from avatar_operator.builders.common import SPEC_HASH, Owner, labels, spec_hash
from avatar_operator.spec import parse_deployment, parse_model_cache

from tests.operator.schemas import validate_builtin, validate_manifest

AVD = Owner("AvatarDeployment", "demo", "ns", "uid-1")
AMC = Owner("AvatarModelCache", "cache", "ns", "uid-2")
SECRET = "k3y-Of_the-TURN-server-0123456789abcdefghijk"  # the shape of secrets.token_urlsafe(32)
POD_NET = ["10.244.0.0/16"]
DIGEST = "ab" * 32
SECRET_HASH = hashlib.sha256(SECRET.encode()).hexdigest()[:16]


def deployment(**spec: Any):
    return parse_deployment(
        {"image": "runtime:1", "gpu": {"count": 0}, "ingress": {"host": "avatar.example.com"}, **spec}
    )


def unhashed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its spec-hash annotation, after checking that annotation is the hash of the rest."""
    rest = copy.deepcopy(manifest)
    annotations = rest["metadata"]["annotations"]
    value = annotations.pop(SPEC_HASH)
    assert value == spec_hash(rest)
    if not annotations:
        del rest["metadata"]["annotations"]
    return rest


def meta(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "ns",
        "labels": labels(owner, component),
        "ownerReferences": [
            {"apiVersion": "gaussianavatar.io/v1alpha1", "kind": owner.kind, "name": owner.name, "uid": owner.uid,
             "controller": True, "blockOwnerDeletion": True}
        ],
    }  # fmt: skip


# -- coturn: manifests -------------------------------------------------------------------------------------------
DENIED = [
    "0.0.0.0-0.255.255.255", "10.0.0.0-10.255.255.255", "100.64.0.0-100.127.255.255", "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255", "172.16.0.0-172.31.255.255", "192.0.0.0-192.0.0.255", "192.0.2.0-192.0.2.255",
    "192.88.99.0-192.88.99.255", "192.168.0.0-192.168.255.255", "198.18.0.0-198.19.255.255",
    "198.51.100.0-198.51.100.255", "203.0.113.0-203.0.113.255", "224.0.0.0-255.255.255.255",
    "::1", "::ffff:0:0-::ffff:ffff:ffff", "64:ff9b::-64:ff9b::ffff:ffff",
    "64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
    "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]  # fmt: skip
BASE_ARGS = [
    "-n", "--log-file=stdout", "--pidfile=/var/lib/coturn/turnserver.pid", "--userdb=/var/lib/coturn/turndb",
    "--realm=avatar.example.com", "--listening-port=3478", "--min-port=49152", "--max-port=49252",
    "--use-auth-secret", "--static-auth-secret=$(TURN_SECRET)", "--no-tcp-relay", "--fingerprint", "--no-cli",
    "--no-multicast-peers", "--no-software-attribute", "--no-rfc5780", "--no-stun-backward-compatibility", "--no-dtls",
]  # fmt: skip
TURN_SECRET_REF = {"name": "demo-turn", "key": "static-auth-secret"}
RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}


def test_coturn_defaults_exact_manifests():
    secret, sts, service = coturn.build(AVD, deployment(), secret=SECRET, allowed_peer_cidrs=POD_NET)
    assert unhashed(secret) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": meta(AVD, "demo-turn", "turn"),
        "type": "Opaque", "data": {"static-auth-secret": base64.b64encode(SECRET.encode()).decode()},
    }  # fmt: skip
    assert unhashed(sts) == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(AVD, "demo-turn", "turn"),
        "spec": {
            "serviceName": "demo-turn",
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "turn"}},
            "template": {
                "metadata": {
                    "labels": labels(AVD, "turn"),
                    "annotations": {"gaussianavatar.io/turn-secret-hash": SECRET_HASH},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "coturn",
                            "image": "coturn/coturn:4.6",
                            "command": ["turnserver"],
                            "args": [*BASE_ARGS, "--no-tls", *(f"--denied-peer-ip={r}" for r in DENIED),
                                     "--allowed-peer-ip=10.244.0.0-10.244.255.255"],
                            "env": [{"name": "TURN_SECRET", "valueFrom": {"secretKeyRef": TURN_SECRET_REF}}],
                            "ports": [
                                {"name": "turn-udp", "containerPort": 3478, "protocol": "UDP"},
                                {"name": "turn-tcp", "containerPort": 3478, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"tcpSocket": {"port": 3478}, "periodSeconds": 10, "failureThreshold": 3},
                            "livenessProbe": {"tcpSocket": {"port": 3478}, "initialDelaySeconds": 10,
                                              "periodSeconds": 20, "failureThreshold": 3},
                            "resources": RESOURCES,
                            "securityContext": {
                                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            },
                            "volumeMounts": [{"name": "state", "mountPath": "/var/lib/coturn"}],
                        }
                    ],
                    "volumes": [{"name": "state", "emptyDir": {}}],
                },
            },
        },
    }  # fmt: skip
    assert unhashed(service) == {
        "apiVersion": "v1", "kind": "Service", "metadata": meta(AVD, "demo-turn", "turn"),
        "spec": {
            "selector": {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "turn"},
            "ports": [
                {"name": "turn-udp", "port": 3478, "targetPort": 3478, "protocol": "UDP"},
                {"name": "turn-tcp", "port": 3478, "targetPort": 3478, "protocol": "TCP"},
            ],
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
        },
    }  # fmt: skip
    for manifest in (secret, sts, service):
        validate_builtin(manifest)


def test_coturn_tls_from_cert_manager_and_from_user_secret():
    for tls, secret_name in (({"issuerRef": {"name": "letsencrypt"}}, "demo-tls"), ({"secretName": "mine"}, "mine")):
        _, sts, service = coturn.build(AVD, deployment(tls=tls), secret=SECRET, allowed_peer_cidrs=POD_NET)
        pod = sts["spec"]["template"]["spec"]
        container = pod["containers"][0]
        tls_args = ["--tls-listening-port=5349", "--cert=/etc/coturn/tls/tls.crt", "--pkey=/etc/coturn/tls/tls.key"]
        assert container["args"][: len(BASE_ARGS) + 3] == [*BASE_ARGS, *tls_args]
        assert "--no-tls" not in container["args"]
        assert container["ports"][2] == {"name": "turns", "containerPort": 5349, "protocol": "TCP"}
        assert container["volumeMounts"][1] == {"name": "tls", "mountPath": "/etc/coturn/tls", "readOnly": True}
        assert pod["volumes"][1] == {"name": "tls", "secret": {"secretName": secret_name, "defaultMode": 0o440}}
        assert service["spec"]["ports"][2] == {"name": "turns", "port": 5349, "targetPort": 5349, "protocol": "TCP"}
        validate_builtin(sts)
        validate_builtin(service)


def test_turn_host_overrides_the_ingress_host_everywhere_browsers_and_coturn_see_it():
    from avatar_operator.builders import certificate

    spec = deployment(turn={"host": "turn.example.com"}, tls={"issuerRef": {"name": "letsencrypt"}})
    assert runtime_config.turn_urls(AVD, spec) == [
        "turn:turn.example.com:3478?transport=udp",
        "turns:turn.example.com:5349?transport=tcp",
    ]
    _, sts, _ = coturn.build(AVD, spec, secret=SECRET, allowed_peer_cidrs=POD_NET)
    assert "--realm=turn.example.com" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    # One certificate for both names: coturn serves TURNS with it.
    assert certificate.build(AVD, spec)["spec"]["dnsNames"] == ["avatar.example.com", "turn.example.com"]
    plain = deployment(tls={"issuerRef": {"name": "letsencrypt"}})
    assert certificate.build(AVD, plain)["spec"]["dnsNames"] == ["avatar.example.com"]
    assert runtime_config.turn_urls(AVD, plain)[0] == "turn:avatar.example.com:3478?transport=udp"


def test_coturn_host_network():
    spec = deployment(turn={"hostNetwork": True, "minPort": 50000, "maxPort": 50010}, tls={"secretName": "mine"})
    _, sts, service = coturn.build(AVD, spec, secret=SECRET, allowed_peer_cidrs=POD_NET)
    pod = sts["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["containers"][0]["ports"] == [
        {"name": "turn-udp", "containerPort": 3478, "protocol": "UDP", "hostPort": 3478},
        {"name": "turn-tcp", "containerPort": 3478, "protocol": "TCP", "hostPort": 3478},
        {"name": "turns", "containerPort": 5349, "protocol": "TCP", "hostPort": 5349},
    ]
    assert "--min-port=50000" in pod["containers"][0]["args"]
    assert "--max-port=50010" in pod["containers"][0]["args"]
    assert service["spec"]["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in service["spec"]
    validate_builtin(sts)
    validate_builtin(service)


def test_coturn_not_built_without_a_turn_of_ours():
    off = deployment(turn={"enabled": False})
    external = deployment(turn={"external": {"urls": ["turn:turn.example.org:3478"]}})
    no_host = parse_deployment({"image": "runtime:1", "gpu": {"count": 0}})
    for spec in (off, external, no_host):
        assert not coturn.enabled(spec)
        assert coturn.build(AVD, spec, secret=None, allowed_peer_cidrs=POD_NET) == []
    gateway = parse_deployment(
        {"image": "r", "gpu": {"count": 0}, "gateway": {"parentRef": {"name": "gw"}, "hostname": "a.example.com"}}
    )
    assert coturn.enabled(gateway)
    assert "--realm=a.example.com" in coturn.turnserver_args(AVD, gateway, [])
    with pytest.raises(ValueError, match="static-auth-secret"):
        coturn.build(AVD, deployment(), secret=None, allowed_peer_cidrs=POD_NET)


def test_coturn_secret_is_checked_and_restarts_the_pod_when_it_changes():
    for bad in ("short", "has space in it and is long", "quote'and-$(shell)-expansion", "x" * 257):
        assert not coturn.valid_secret(bad)
        with pytest.raises(ValueError, match="URL-safe"):
            coturn.build_secret(AVD, bad)
    first = coturn.build_statefulset(AVD, deployment(), secret=SECRET, allowed_peer_cidrs=POD_NET)
    again = coturn.build_statefulset(AVD, deployment(), secret=SECRET, allowed_peer_cidrs=POD_NET)
    other = coturn.build_statefulset(AVD, deployment(), secret=SECRET[::-1], allowed_peer_cidrs=POD_NET)
    annotation = "gaussianavatar.io/turn-secret-hash"
    assert first == again
    assert (
        first["spec"]["template"]["metadata"]["annotations"][annotation]
        != (other["spec"]["template"]["metadata"]["annotations"][annotation])
    )
    assert SECRET not in json.dumps(first)  # the StatefulSet names the Secret, never the value


def test_peer_ranges_are_coturn_ranges_never_cidrs():
    cidrs = ["10.244.0.0/16", "10.96.5.7/32", "10.1.2.3", "fd00:10:244::/56", " 192.168.5.9/24 "]
    assert coturn.peer_ranges(cidrs) == [
        "10.244.0.0-10.244.255.255", "10.96.5.7", "10.1.2.3", "fd00:10:244::-fd00:10:244:ff:ffff:ffff:ffff:ffff",
        "192.168.5.0-192.168.5.255",
    ]  # fmt: skip
    peer_args = [a for a in coturn.turnserver_args(AVD, deployment(), ["10.244.0.0/16", "fd00::/8"]) if "peer-ip" in a]
    assert len(peer_args) == len(DENIED) + 2 and all("/" not in arg for arg in peer_args)
    with pytest.raises(ValueError):
        coturn.peer_ranges(["10.244.0.0/33"])
    args = coturn.turnserver_args(AVD, deployment(), ["10.244.0.0/16", "10.245.0.0/16"])
    assert args[-2:] == ["--allowed-peer-ip=10.244.0.0-10.244.255.255", "--allowed-peer-ip=10.245.0.0-10.245.255.255"]
    assert not any(arg.startswith("--allowed-peer-ip") for arg in coturn.turnserver_args(AVD, deployment(), []))


# -- model cache: manifests --------------------------------------------------------------------------------------
PULL_COMMAND = ["avatar-runtime", "models", "pull", "--config", "/etc/avatar/config.yaml"]
POD_SECURITY = {
    "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
    "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"},
}  # fmt: skip


def pull_container(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": "runtime:1",
        "command": command,
        "env": [{"name": "AVATAR_MODEL_DIR", "value": "/models"}, {"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "models", "mountPath": "/models"},
            {"name": "config", "mountPath": "/etc/avatar", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }  # fmt: skip


def cache(**spec: Any):
    return parse_model_cache({"image": "runtime:1", **spec})


def test_model_cache_defaults_exact_manifests():
    spec = cache()
    pvc, config_map, job = model_cache.build(AMC, spec)
    assert unhashed(pvc) == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(AMC, "cache-models", "model-cache"),
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "30Gi"}}},
    }  # fmt: skip
    # No `models:` (the runtime's production defaults), no `hub:`: only the cache directory.
    assert unhashed(config_map) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(AMC, "cache-pull-config", "model-pull"),
        "data": {"config.yaml": "model_dir: /models\n"},
    }  # fmt: skip
    name = f"cache-pull-{model_cache.pull_hash(spec)}"
    assert unhashed(job) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(AMC, name, "model-pull"),
        "spec": {
            "backoffLimit": 4,
            "template": {
                "metadata": {"labels": labels(AMC, "model-pull")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": POD_SECURITY,
                    "containers": [pull_container("pull", PULL_COMMAND)],
                    "volumes": [
                        {"name": "models", "persistentVolumeClaim": {"claimName": "cache-models"}},
                        {"name": "config", "configMap": {"name": "cache-pull-config", "defaultMode": 0o444}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    assert "ttlSecondsAfterFinished" not in job["spec"]  # ModelsReady is read from the finished Job
    for manifest in (pvc, config_map, job):
        validate_builtin(manifest)


MODELS = [
    {"name": "sensevoice-small", "source": "modelscope", "repo": "iic/SenseVoiceSmall", "files": ["model.pt"]},
    {"name": "voice", "source": "url", "url": "https://files.example.com/voice.onnx", "sha256": DIGEST},
]
AVATARS = [{"name": "alice", "url": "https://files.example.com/alice.zip", "sha256": DIGEST}]
HUB = {"huggingface_endpoint": "https://hf-mirror.example.com", "retries": 2}


def test_model_cache_models_hub_avatars_and_storage():
    storage = {"size": "100Gi", "storageClassName": "fast", "accessModes": ["ReadWriteOnce"]}
    spec = cache(models=MODELS, avatars=AVATARS, hub=HUB, storage=storage)
    pvc, config_map, job = model_cache.build(AMC, spec)
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}, "storageClassName": "fast",
    }  # fmt: skip
    assert config_map["data"]["config.yaml"] == (
        "model_dir: /models\n"
        "models:\n"
        "- name: sensevoice-small\n  source: modelscope\n  repo: iic/SenseVoiceSmall\n  files:\n  - model.pt\n"
        "  unpack: false\n"
        f"- name: voice\n  source: url\n  url: https://files.example.com/voice.onnx\n  sha256: {DIGEST}\n  files: []\n"
        "  unpack: false\n"
        "hub:\n  huggingface_endpoint: https://hf-mirror.example.com\n  retries: 2\n"
    )
    assert json.loads(config_map["data"]["avatars.json"]) == AVATARS
    script = Path(model_cache.__file__).with_name("fetch_avatars.py").read_text()
    assert config_map["data"]["fetch_avatars.py"] == script
    pod = job["spec"]["template"]["spec"]
    # The models first (an init container runs to completion), then the avatars, into the runtime's avatar dir.
    assert pod["initContainers"] == [pull_container("pull", PULL_COMMAND)]
    fetch = ["python3", "/etc/avatar/fetch_avatars.py", "/etc/avatar/avatars.json", "/models/avatars"]
    assert pod["containers"] == [pull_container("avatars", fetch)]
    for manifest in (pvc, config_map, job):
        validate_builtin(manifest)


def test_model_cache_existing_claim_is_used_never_built():
    spec = cache(storage={"existingClaim": "shared-models"})
    assert model_cache.build_pvc(AMC, spec) is None
    built = model_cache.build(AMC, spec)
    assert [m["kind"] for m in built] == ["ConfigMap", "Job"]
    volumes = built[1]["spec"]["template"]["spec"]["volumes"]
    assert volumes[0] == {"name": "models", "persistentVolumeClaim": {"claimName": "shared-models"}}
    assert model_cache.claim_name(AMC, spec) == "shared-models"
    assert children.cache_children(AMC, spec) == built


def test_the_runtime_reads_the_pull_config(tmp_path):
    from avatar_runtime.config import load_config
    from avatar_runtime.models.specs import default_models

    path = tmp_path / "config.yaml"
    path.write_text(model_cache.build_config_map(AMC, cache(models=MODELS, hub=HUB))["data"]["config.yaml"])
    config = load_config(path, env={})
    assert config.model_dir == "/models"
    assert [(m.name, m.source, m.origin()) for m in config.models] == [
        ("sensevoice-small", "modelscope", "iic/SenseVoiceSmall@master"),
        ("voice", "url", "https://files.example.com/voice.onnx"),
    ]
    assert config.models[1].pinned_sha256("voice.onnx") == DIGEST
    assert (config.hub.huggingface_endpoint, config.hub.retries) == ("https://hf-mirror.example.com", 2)
    path.write_text(model_cache.build_config_map(AMC, cache())["data"]["config.yaml"])
    assert load_config(path, env={}).models == default_models()  # empty spec.models: the runtime's defaults


def test_pull_job_name_changes_with_what_it_fetches_and_only_then():
    base = cache(models=MODELS, avatars=AVATARS)
    name = model_cache.job_name(AMC, base)
    assert name == f"cache-pull-{model_cache.pull_hash(base)}" and len(model_cache.pull_hash(base)) == 8
    same = [
        cache(models=copy.deepcopy(MODELS), avatars=AVATARS),
        cache(models=MODELS, avatars=AVATARS, hub=HUB),  # where to download from is not what is downloaded
        cache(models=MODELS, avatars=AVATARS, storage={"size": "1Ti"}),
        cache(models=[{**MODELS[0], "revision": None}, MODELS[1]], avatars=AVATARS),  # explicit default
    ]
    assert {model_cache.job_name(AMC, spec) for spec in same} == {name}
    different = [
        cache(models=[{**MODELS[0], "revision": "v2.0"}, MODELS[1]], avatars=AVATARS),
        cache(models=[MODELS[0]], avatars=AVATARS),
        cache(models=MODELS[::-1], avatars=AVATARS),
        cache(models=MODELS),
        cache(models=MODELS, avatars=[{**AVATARS[0], "sha256": "cd" * 32}]),
        parse_model_cache({"image": "runtime:2", "models": MODELS, "avatars": AVATARS}),
        cache(avatars=AVATARS),
    ]
    names = [model_cache.job_name(AMC, spec) for spec in different]
    assert name not in names and len(set(names)) == len(names)
    long_owner = Owner("AvatarModelCache", "c" * 60, "ns", "uid")
    long_name = model_cache.job_name(long_owner, base)
    assert len(long_name) == 63 and long_name.endswith(f"-pull-{model_cache.pull_hash(base)}")
    validate_builtin(model_cache.build_job(long_owner, base))


# -- assembly ----------------------------------------------------------------------------------------------------
def kinds(manifests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["kind"], m["metadata"]["name"]) for m in manifests]


def test_deployment_children_with_our_coturn():
    spec = deployment(modelCacheRef="cache", tls={"issuerRef": {"name": "letsencrypt"}})
    built = children.deployment_children(
        AVD, spec, turn_secret=SECRET, claim_name="cache-models", allowed_peer_cidrs=POD_NET
    )
    assert kinds(built) == [
        ("ConfigMap", "demo-runtime-config"), ("Certificate", "demo-tls"), ("Secret", "demo-turn"),
        ("StatefulSet", "demo-turn"), ("Service", "demo-turn"), ("Deployment", "demo-runtime"), ("Service", "demo"),
        ("Ingress", "demo"),
    ]  # fmt: skip
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in built}
    assert by_name["StatefulSet", "demo-turn"] == coturn.build_statefulset(
        AVD, spec, secret=SECRET, allowed_peer_cidrs=POD_NET
    )
    runtime = by_name["Deployment", "demo-runtime"]
    assert runtime == runtime_deployment.build(AVD, spec, children.pod_checksum(AVD, spec, SECRET), "cache-models")
    volumes = runtime["spec"]["template"]["spec"]["volumes"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "cache-models", "readOnly": True}} in volumes
    for manifest in built:
        validate_manifest(manifest)


def test_a_new_turn_secret_rolls_the_runtime_pods_a_config_change_too():
    spec = deployment()

    def checksum(spec, secret) -> str:
        built = children.deployment_children(AVD, spec, turn_secret=secret, claim_name=None, allowed_peer_cidrs=[])
        runtime = next(m for m in built if m["kind"] == "Deployment")
        return runtime["spec"]["template"]["metadata"]["annotations"][runtime_deployment.CONFIG_CHECKSUM]

    first = checksum(spec, SECRET)
    assert checksum(spec, SECRET) == first
    assert checksum(spec, SECRET[::-1]) != first
    assert checksum(deployment(sessions={"concurrentLimit": 2}), SECRET) != first
    external = deployment(turn={"external": {"urls": ["turn:turn.example.org:3478"]}})
    # No coturn of ours: the secret argument is ignored and the checksum is the config file's alone.
    assert checksum(external, SECRET) == checksum(external, None) == runtime_config.checksum(AVD, external)


def test_deployment_children_without_our_coturn_and_with_a_gateway():
    spec = parse_deployment({
        "image": "runtime:1", "gpu": {"count": 0}, "turn": {"external": {"urls": ["turns:turn.example.org:5349"]}},
        "gateway": {"parentRef": {"name": "gw", "namespace": "infra"}, "hostname": "a.example.com"},
        "tls": {"secretName": "mine"},
    })  # fmt: skip
    built = children.deployment_children(AVD, spec, turn_secret=None, claim_name=None, allowed_peer_cidrs=POD_NET)
    assert kinds(built) == [
        ("ConfigMap", "demo-runtime-config"), ("Deployment", "demo-runtime"), ("Service", "demo"),
        ("HTTPRoute", "demo"),
    ]  # fmt: skip
    for manifest in built:
        validate_manifest(manifest)
    with pytest.raises(ValueError, match="static-auth-secret"):
        children.deployment_children(AVD, deployment(), turn_secret=None, claim_name=None, allowed_peer_cidrs=[])


def test_cache_children_order():
    built = children.cache_children(AMC, cache(avatars=AVATARS))
    assert kinds(built) == [
        ("PersistentVolumeClaim", "cache-models"), ("ConfigMap", "cache-pull-config"),
        ("Job", model_cache.job_name(AMC, cache(avatars=AVATARS))),
    ]  # fmt: skip


def test_an_avatar_from_the_model_cache_is_served_from_the_cache():
    spec = deployment(avatar={"name": "alice"})
    plain = children.deployment_children(AVD, spec, turn_secret=SECRET, claim_name="cache-models",
                                         allowed_peer_cidrs=POD_NET)  # fmt: skip
    cached = children.deployment_children(AVD, spec, turn_secret=SECRET, claim_name="cache-models",
                                          allowed_peer_cidrs=POD_NET, cached_avatars=frozenset({"alice"}))  # fmt: skip
    config = {m["kind"]: m for m in cached}["ConfigMap"]["data"]["config.yaml"]
    assert f"dir: {model_cache.AVATAR_DIR}" in config
    assert model_cache.AVATAR_DIR not in {m["kind"]: m for m in plain}["ConfigMap"]["data"]["config.yaml"]
    # The pods roll when the avatar source changes.
    checksum = runtime_deployment.CONFIG_CHECKSUM
    pods = [{m["kind"]: m for m in made}["Deployment"]["spec"]["template"]["metadata"]["annotations"][checksum]
            for made in (plain, cached)]  # fmt: skip
    assert pods[0] != pods[1]
