"""The real operator against the kmock API emulator: children, updates, repairs, waiting, invalid specs, restarts.

Each test runs `kopf.operator` with our handlers (conftest.RunningOperator); the operator talks HTTP to the emulator
with the `kubernetes` client exactly as it would to a cluster (kubeconfig → 127.0.0.1). The test plays the other
controllers of a cluster by writing the children's status (Job succeeded, Deployment available, certificate
issued), because nothing runs pods here. What the emulator cannot show is said in each test.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import signal
import socket
import sys
from typing import Any

import aiohttp
import pytest
from avatar_operator import GROUP, VERSION
from avatar_operator.builders.common import SPEC_HASH
from avatar_operator.handlers import OperatorConfig
from avatar_operator.kube import LAST_APPLIED, contains, plural, removals

from .conftest import (
    NAMESPACE,
    ApiServerEmulator,
    RunningOperator,
    condition,
    create_cr,
    delete,
    dump,
    eventually,
    get,
    live,
    owned,
    patch,
    path,
    post,
    reads,
    reason,
    requests,
)  # fmt: skip
from .schemas import validate_cr, validate_manifest

IMAGE = "registry.example/avatar-runtime:1.0"
LLM = {"baseURL": "https://llm.example/v1", "model": "chat", "apiKeySecretRef": {"name": "llm", "key": "api-key"}}
CPU_SPEC: dict[str, Any] = {
    "image": IMAGE,
    "gpu": {"count": 0},
    "replicas": 2,
    "sessions": {"concurrentLimit": 3},
    "llm": LLM,
    "ingress": {"host": "avatar.example.com", "className": "nginx"},
    "tls": {"issuerRef": {"name": "letsencrypt"}},
    "pod": {"nodeSelector": {"pool": "avatars", "zone": "a"}},
}
GPU_SPEC: dict[str, Any] = {**CPU_SPEC, "gpu": {"count": 1}, "modelCacheRef": "models"}
CACHE_SPEC: dict[str, Any] = {
    "image": IMAGE,
    "storage": {"size": "20Gi"},
    "models": [{"name": "sensevoice-small", "source": "modelscope", "repo": "iic/SenseVoiceSmall"}],
}
# What an AvatarDeployment `demo` with CPU_SPEC or GPU_SPEC owns (the child names fixed in the design).
DEMO_CHILDREN = {
    ("Deployment", "demo-runtime"), ("ConfigMap", "demo-runtime-config"), ("Service", "demo"), ("Ingress", "demo"),
    ("Certificate", "demo-tls"), ("Secret", "demo-turn"), ("StatefulSet", "demo-turn"), ("Service", "demo-turn"),
}  # fmt: skip
RUNTIME = ("Deployment", "demo-runtime")


# -- helpers: what the tests read and what the rest of a cluster would write ---------------------------------------
def versions(api: ApiServerEmulator, children: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(uid, resourceVersion) of each child: unchanged only if nothing re-created or wrote it."""
    return {key: (get(api, *key)["metadata"]["uid"], get(api, *key)["metadata"]["resourceVersion"]) for key in children}


def writes_to_children(api: ApiServerEmulator, since: int) -> list[str]:
    """POST/PATCH/PUT/DELETE requests after request number `since`, except to our own CRs and to Events."""
    found = []
    for request in requests(api, since):
        resource = request.resource
        if request.method.value in ("POST", "PATCH", "PUT", "DELETE") and resource is not None:
            if resource.group != GROUP and resource.plural != "events":
                found.append(f"{request.method.value} {request.url.path}")
    return found


def turn_secret(api: ApiServerEmulator, name: str = "demo") -> str:
    secret = get(api, "Secret", f"{name}-turn")
    assert secret is not None, "no TURN Secret"
    return base64.b64decode(secret["data"]["static-auth-secret"]).decode()


async def llm_secret(api: ApiServerEmulator) -> None:
    data = {"api-key": base64.b64encode(b"sk-test").decode()}
    await post(api, "Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "llm"}, "data": data})


async def job_succeeded(api: ApiServerEmulator, name: str) -> None:
    complete = [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]
    await patch(api, "Job", name, {"status": {"succeeded": 1, "conditions": complete}}, status=True)


async def all_up(api: ApiServerEmulator, name: str = "demo", ready: int = 2) -> None:
    """What the Deployment and StatefulSet controllers and cert-manager write once pods run and a cert is issued."""
    generation = get(api, "Deployment", f"{name}-runtime")["metadata"]["generation"]
    available = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]
    counts = {"replicas": ready, "updatedReplicas": ready, "readyReplicas": ready, "availableReplicas": ready}
    runtime = {"status": {"observedGeneration": generation, **counts, "conditions": available}}
    await patch(api, "Deployment", f"{name}-runtime", runtime, status=True)
    await patch(api, "StatefulSet", f"{name}-turn", {"status": {"replicas": 1, "readyReplicas": 1}}, status=True)
    issued = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}}
    await patch(api, "Certificate", f"{name}-tls", issued, status=True)


async def runtime_pod(api: ApiServerEmulator, name: str, active: int) -> None:
    """A ready runtime pod (as its ReplicaSet would create it) whose /metrics reports `active` sessions."""
    labels = {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "runtime"}
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    spec = {"containers": [{"name": "runtime", "image": IMAGE}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}
    await post(api, "Pod", pod | {"status": ready})
    metrics = f"# TYPE avatar_sessions_active gauge\navatar_sessions_active {active}.0\navatar_sessions_limit 3.0\n"
    api[f"get /api/v1/namespaces/{NAMESPACE}/pods/{name}:8282/proxy/metrics"] << metrics.encode()


def handled(api: ApiServerEmulator, kind: str, name: str) -> bool:
    """Whether kopf has recorded the current spec as handled (its diff base), i.e. no handler is still due.

    A resync may apply a new spec before kopf's update handler runs (both reconcile the latest spec); stopping
    the operator while that handler is still due makes kopf 1.45 wait 5 s for a timer it re-spawns meanwhile."""
    obj = get(api, kind, name)
    last = json.loads(obj["metadata"].get("annotations", {}).get(f"{GROUP}/last-handled-configuration", "{}"))
    return last.get("spec") == obj["spec"]


# -- the tests ----------------------------------------------------------------------------------------------------
async def test_waits_for_its_cache_then_builds_every_child_and_reports_ready(api, operator):
    """A GPU AvatarDeployment whose cache is still pulling gets ModelsReady=False/CacheNotReady and no runtime pods;
    once the pull Job succeeds the runtime Deployment appears, and with every child up the status says Ready.

    Not covered by the emulator: defaulting and validation of the CR (the operator's own parsing applies the
    defaults here); garbage collection of these children when the CR is deleted (owner references are asserted
    instead); status-subresource isolation (the test writes the children's status the way their controllers would).
    """
    await llm_secret(api)
    cache_uid = await create_cr(api, "AvatarModelCache", "models", CACHE_SPEC)
    uid = await create_cr(api, "AvatarDeployment", "demo", GPU_SPEC)

    await eventually(lambda: reason(api, "AvatarDeployment", "demo", "ModelsReady") == "CacheNotReady")
    demo = get(api, "AvatarDeployment", "demo")
    assert (condition(demo, "Ready")["status"], condition(demo, "Ready")["reason"]) == ("False", "CacheNotReady")
    assert condition(demo, "Ready")["message"].startswith("waiting for AvatarModelCache models")
    assert condition(demo, "Progressing")["reason"] == "WaitingForCache"
    # Everything but the runtime pods is built already, so the switch-over is quick once the models are there.
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN - {RUNTIME}, show=lambda: sorted(owned(api, uid)))

    cache_children = await eventually(lambda: len(owned(api, cache_uid)) == 3 and owned(api, cache_uid))
    job = next(name for kind, name in cache_children if kind == "Job")
    assert cache_children == {
        ("PersistentVolumeClaim", "models-models"),
        ("ConfigMap", "models-pull-config"),
        ("Job", job),
    }
    assert reason(api, "AvatarModelCache", "models") == "JobRunning"
    await eventually(lambda: reads(api, path("AvatarModelCache", "models")) >= 3)  # a few resyncs later ...
    assert get(api, *RUNTIME) is None  # ... still no runtime pods

    await job_succeeded(api, job)
    await eventually(lambda: reason(api, "AvatarModelCache", "models") == "JobSucceeded")
    assert get(api, "AvatarModelCache", "models")["status"]["claimName"] == "models-models"
    await eventually(lambda: reason(api, "AvatarDeployment", "demo", "ModelsReady") == "CacheReady")
    assert owned(api, uid) == DEMO_CHILDREN
    pod = get(api, *RUNTIME)["spec"]["template"]["spec"]
    models = {"name": "models", "persistentVolumeClaim": {"claimName": "models-models", "readOnly": True}}
    assert models in pod["volumes"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    reference = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AvatarDeployment", "name": "demo", "uid": uid,
                 "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    for kind, name in DEMO_CHILDREN:
        meta = get(api, kind, name)["metadata"]
        assert meta["ownerReferences"] == [reference], (kind, name)
        assert meta["labels"]["app.kubernetes.io/instance"] == "demo" and SPEC_HASH in meta["annotations"]

    assert reason(api, "AvatarDeployment", "demo") == "DeploymentUnavailable", dump(
        get(api, "AvatarDeployment", "demo")
    )
    await all_up(api)
    # The two runtime pods the ReplicaSet would run, with their session gauges behind the API server's pod proxy.
    for pod, active in (("demo-runtime-a1", 1), ("demo-runtime-b2", 2)):
        await runtime_pod(api, pod, active)
    await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "Ready")
    status = await eventually(lambda: (s := get(api, "AvatarDeployment", "demo")["status"]).get("activeSessions") and s)
    assert (status["replicas"], status["readyReplicas"], status["capacity"]) == (2, 2, 6)  # 3 sessions × 2 pods
    assert status["activeSessions"] == 3
    assert (status["url"], status["observedGeneration"]) == ("https://avatar.example.com", 1)
    assert {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]} == {
        "Ready": ("True", "Ready"), "ModelsReady": ("True", "CacheReady"), "TurnReady": ("True", "TurnAvailable"),
        "CertificateReady": ("True", "CertificateIssued"), "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }  # fmt: skip
    # Everything as stored would pass the real API server's validation: our CRs with the status the operator wrote
    # (CRD schema + CEL), and every child as the operator wrote it (Kubernetes / vendored CRD schemas, strict).
    validate_cr(get(api, "AvatarDeployment", "demo"))
    validate_cr(get(api, "AvatarModelCache", "models"))
    for kind, name in DEMO_CHILDREN | cache_children:
        validate_manifest(get(api, kind, name))


async def test_spec_change_updates_children_in_place_without_duplicates(api, operator):
    """A new image and replica count patch the runtime Deployment (the same object, no second one); a removed
    nodeSelector key is removed; switching ingress → gateway deletes the Ingress and creates an HTTPRoute.

    Not covered by the emulator: server-side defaulting inside the pod template (a real server re-fills the
    defaults of list items our merge patch replaces whole) and strategic merge (never used: merge patches treat
    lists the same on both); garbage collection (the operator deletes the Ingress itself, which is what is shown).
    """
    await llm_secret(api)
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN)
    before, secret = get(api, *RUNTIME), turn_secret(api)
    assert before["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "avatars", "zone": "a"}

    gateway = {"parentRef": {"name": "public", "namespace": "infra"}, "hostname": "avatar.example.com"}
    change = {"image": "registry.example/avatar-runtime:2.0", "replicas": 3, "ingress": None, "gateway": gateway,
              "pod": {"nodeSelector": {"zone": None}}}  # fmt: skip
    await patch(api, "AvatarDeployment", "demo", {"spec": change})
    expected = DEMO_CHILDREN - {("Ingress", "demo")} | {("HTTPRoute", "demo")}
    await eventually(lambda: owned(api, uid) == expected, what="Ingress replaced by an HTTPRoute")

    after = get(api, *RUNTIME)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # patched in place, not re-created
    assert list(live(api, "Deployment")) == ["demo-runtime"]
    pod = after["spec"]["template"]["spec"]
    assert (after["spec"]["replicas"], pod["containers"][0]["image"]) == (3, "registry.example/avatar-runtime:2.0")
    assert pod["nodeSelector"] == {"pool": "avatars"}  # "zone" went away: the operator sent it as null
    assert after["metadata"]["annotations"][SPEC_HASH] != before["metadata"]["annotations"][SPEC_HASH]
    route = get(api, "HTTPRoute", "demo")["spec"]
    assert route["parentRefs"][0]["name"] == "public" and route["hostnames"] == ["avatar.example.com"]
    assert get(api, "Certificate", "demo-tls")["spec"]["dnsNames"] == ["avatar.example.com"]
    assert turn_secret(api) == secret  # read back, not regenerated
    await eventually(lambda: get(api, "AvatarDeployment", "demo")["status"].get("observedGeneration") == 2)
    await eventually(lambda: handled(api, "AvatarDeployment", "demo"), what="kopf done with the update")


async def test_deleted_or_edited_children_are_repaired_by_the_resync(api, operator):
    """A child deleted behind the operator's back comes back, and one edited by hand is patched back, without any
    change to the CR — the resync timer re-reads the children (no per-kind child watches, see handlers.py).

    Not covered by the emulator: the controllers that would act on the repaired objects (no pods here), and
    garbage collection of the deleted StatefulSet's pods.
    """
    await llm_secret(api)
    spec = {key: value for key, value in CPU_SPEC.items() if key not in ("ingress", "tls")}
    spec["turn"] = {"host": "turn.example.com"}  # no ingress: coturn needs a name to be announced under
    uid = await create_cr(api, "AvatarDeployment", "demo", spec)
    children = DEMO_CHILDREN - {("Ingress", "demo"), ("Certificate", "demo-tls")}
    await eventually(lambda: owned(api, uid) == children, show=lambda: sorted(owned(api, uid)))
    old_service, secret = get(api, "Service", "demo")["metadata"]["uid"], turn_secret(api)

    await delete(api, "Service", "demo")
    await delete(api, "StatefulSet", "demo-turn")
    wrong = {"containers": [{"name": "runtime", "image": "attacker/image:latest"}]}
    await patch(api, *RUNTIME, {"spec": {"replicas": 9, "template": {"spec": wrong}}})
    assert owned(api, uid) == children - {("Service", "demo"), ("StatefulSet", "demo-turn")}

    await eventually(lambda: owned(api, uid) == children, what="deleted children re-created")
    assert get(api, "Service", "demo")["metadata"]["uid"] != old_service
    await eventually(lambda: get(api, *RUNTIME)["spec"]["replicas"] == 2, what="the hand edit reverted")
    container = get(api, *RUNTIME)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE and container["command"][:2] == ["avatar-runtime", "serve"]
    assert turn_secret(api) == secret  # read back from the Secret, never regenerated


async def test_invalid_spec_or_missing_reference_builds_nothing(api, operator):
    """Invalid specs and missing Secrets or caches give Ready=False with a reason and a message naming the field,
    and not a single child; fixing the reference (here: creating the Secret) is picked up without touching the CR.

    Not covered by the emulator: validation. A real API server rejects most invalid specs at admission (CRD schema
    and CEL rules, tested separately); this shows the operator's own second line for whatever gets through, and
    what only the operator can check: that the referenced objects exist and that no child name is taken.
    """
    bad_tls = {**CPU_SPEC, "llm": {}, "tls": {"issuerRef": {"name": "x"}, "secretName": "y"}}
    cases = {
        "bad-spec": ({"image": IMAGE, "gpu": {"count": 1}}, "InvalidSpec", "spec.modelCacheRef"),
        "bad-tls": (bad_tls, "InvalidSpec", "spec.tls.issuerRef"),
        "no-secret": (CPU_SPEC, "SecretNotFound", "spec.llm.apiKeySecretRef"),
        "no-cache": ({**GPU_SPEC, "llm": {}, "modelCacheRef": "absent"}, "CacheNotFound", "spec.modelCacheRef"),
    }
    # A child's name already taken by an object another controller owns: neither adopted nor overwritten.
    controller = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "other-uid", "controller": True}
    metadata = {"name": "taken", "ownerReferences": [controller]}
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"ports": [{"port": 80}]}}
    await post(api, "Service", foreign)
    cases["taken"] = ({**CPU_SPEC, "llm": {}}, "ChildConflict", "metadata.name")
    uids = {name: await create_cr(api, "AvatarDeployment", name, spec) for name, (spec, _, _) in cases.items()}
    bad_model = {"name": "m", "source": "url", "url": "https://models.example/m.bin"}  # no sha256
    uids["bad-cache"] = await create_cr(api, "AvatarModelCache", "bad-cache", {"image": IMAGE, "models": [bad_model]})

    for name, (_, why, field) in cases.items():
        ready = await eventually(lambda n=name: condition(get(api, "AvatarDeployment", n), "Ready"), what=name)
        assert (ready["status"], ready["reason"]) == ("False", why), (name, ready)
        assert ready["message"].startswith(f"{field}: "), (name, ready)
        assert condition(get(api, "AvatarDeployment", name), "Degraded")["status"] == "True"
    ready = await eventually(lambda: condition(get(api, "AvatarModelCache", "bad-cache"), "Ready"))
    assert (ready["reason"], ready["message"].split(":")[0]) == ("InvalidSpec", "spec.models.0.url")

    # Several resyncs later (each looks for the missing Secret again), still nothing is built.
    await eventually(lambda: reads(api, path("Secret", "llm")) >= 3)
    for name, uid in uids.items():
        assert owned(api, uid) == set(), name

    await llm_secret(api)  # the Secret appears: the next resync builds everything
    no_secret = {(kind, child.replace("demo", "no-secret", 1)) for kind, child in DEMO_CHILDREN}
    await eventually(lambda: owned(api, uids["no-secret"]) == no_secret)
    await eventually(lambda: reason(api, "AvatarDeployment", "no-secret") == "DeploymentUnavailable")
    assert owned(api, uids["bad-spec"]) == set()
    assert get(api, "Service", "taken")["spec"] == foreign["spec"]


async def test_model_cache_follows_its_spec_and_never_deletes_an_existing_claim(api, operator):
    """A changed model list runs a new Job (the old one is deleted); switching to `existingClaim` deletes our own
    PVC, re-runs the pull into the user's claim, and leaves the user's claim alone.

    Not covered by the emulator: the PVC protection finalizer and garbage collection of the old Job's pods
    (a real server does both; the operator asks for background propagation), and the Job controller (the test
    writes the Job's status).
    """
    uid = await create_cr(api, "AvatarModelCache", "models", CACHE_SPEC)
    first = await eventually(lambda: next(iter(live(api, "Job")), None), what="the first pull Job")
    pvc_uid = get(api, "PersistentVolumeClaim", "models-models")["metadata"]["uid"]

    models = [*CACHE_SPEC["models"], {"name": "lam-a2e", "source": "huggingface", "repo": "3DAIGC/LAM_audio2exp"}]
    await patch(api, "AvatarModelCache", "models", {"spec": {"models": models}})
    await eventually(lambda: set(live(api, "Job")) - {first}, what="a new Job")
    await eventually(lambda: first not in live(api, "Job"), what="the old Job deleted")
    (second,) = live(api, "Job")
    assert second.startswith("models-pull-")
    assert get(api, "PersistentVolumeClaim", "models-models")["metadata"]["uid"] == pvc_uid

    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared-models"},
             "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "50Gi"}}}}  # fmt: skip
    claim = await post(api, "PersistentVolumeClaim", claim)
    await job_succeeded(api, second)
    await eventually(lambda: reason(api, "AvatarModelCache", "models") == "JobSucceeded")

    await patch(api, "AvatarModelCache", "models", {"spec": {"storage": {"existingClaim": "shared-models"}}})
    await eventually(lambda: get(api, "PersistentVolumeClaim", "models-models") is None, what="our PVC deleted")
    # Same models, same Job name — but its pod template (the claim) changed and is immutable: the Job is re-created,
    # and the cache is not Ready until that one succeeds.
    await eventually(lambda: "status" not in get(api, "Job", second), what="the Job re-created")
    volumes = get(api, "Job", second)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "shared-models"}} in volumes
    await eventually(lambda: reason(api, "AvatarModelCache", "models") == "JobRunning")
    assert get(api, "AvatarModelCache", "models")["status"]["claimName"] == "shared-models"
    assert get(api, "PersistentVolumeClaim", "shared-models") == claim  # untouched: not ours
    assert owned(api, uid) == {("ConfigMap", "models-pull-config"), ("Job", second)}


async def test_restart_does_no_duplicate_work(api, operator: RunningOperator):
    """A restarted operator finds everything in place: it resumes and resyncs (reads), but writes no child and no
    status, creates no duplicate and keeps the TURN secret; kopf's own state lives in annotations of our group.

    Not covered by the emulator: leader election between two replicas (peering needs the KopfPeering CRD; the
    operator runs standalone here) and watch resumption from a resourceVersion (kopf lists again on start).
    """
    await llm_secret(api)
    uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
    await eventually(lambda: owned(api, uid) == DEMO_CHILDREN)
    await all_up(api)
    await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "Ready")
    snapshot, secret = versions(api, DEMO_CHILDREN), turn_secret(api)
    demo = get(api, "AvatarDeployment", "demo")
    assert f"{GROUP}/last-handled-configuration" in demo["metadata"]["annotations"]  # kopf's diff base
    assert not any(key.startswith("kopf.zalando.org") for key in demo["metadata"]["annotations"])

    await operator.stop()
    since = len(requests(api))
    await operator.start()
    await eventually(lambda: reads(api, path(*RUNTIME), since) >= 3, what="the resume handler and two resyncs")

    assert writes_to_children(api, since) == []
    assert versions(api, DEMO_CHILDREN) == snapshot and owned(api, uid) == DEMO_CHILDREN
    assert get(api, "AvatarDeployment", "demo")["status"] == demo["status"]
    status_writes = [r.data for r in requests(api, since) if r.method.value == "PATCH" and "status" in (r.data or {})]
    assert status_writes == []
    assert turn_secret(api) == secret
    assert LAST_APPLIED in get(api, *RUNTIME)["metadata"]["annotations"]


async def test_cli_runs_the_operator_with_json_logs_and_a_liveness_probe(api, tmp_path):
    """`avatar-operator run` (the chart's command) as a process: it logs JSON lines, answers its liveness probe,
    reconciles, and exits on SIGTERM.

    Not covered here: in-cluster login with a service account (the test logs in through $KUBECONFIG) and
    `--namespace` (kmock cannot list namespaces, which kopf does for namespace patterns).
    """
    port = free_port()
    command = [sys.executable, "-m", "avatar_operator.cli", "run", "--all-namespaces", "--resync-interval", "1",
               "--liveness", f"http://127.0.0.1:{port}/healthz"]  # fmt: skip
    log_path = tmp_path / "operator.log"
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        await llm_secret(api)
        uid = await create_cr(api, "AvatarDeployment", "demo", CPU_SPEC)
        await eventually(lambda: owned(api, uid) == DEMO_CHILDREN, within_s=30, what="children from the CLI operator")
        await eventually(lambda: reason(api, "AvatarDeployment", "demo") == "DeploymentUnavailable")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), 15)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r.get("message") == "Handler 'reconcile' succeeded." and r.get("object", {}).get("name") == "demo"
               for r in records), lines  # fmt: skip
    assert exit_code == 0, lines[-5:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_drift_comparison_tolerates_server_defaults_and_canonical_quantities():
    """The pure half of drift repair (kube.contains / kube.removals): what a real API server returns for what we
    sent must not look drifted — the emulator neither defaults nor normalises quantities, so it is shown here."""
    limits = {"nvidia.com/gpu": 1, "memory": "1024Mi", "cpu": "2000m"}
    containers = [{"name": "runtime", "resources": {"limits": limits}}]
    wanted = {"spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}}
    served = copy.deepcopy(wanted)
    container = served["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"] = {"nvidia.com/gpu": "1", "memory": "1Gi", "cpu": "2"}
    container |= {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"}
    served["spec"] |= {"revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    assert contains(served, wanted)
    assert not contains(served | {"spec": {**served["spec"], "replicas": 3}}, wanted)
    served["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})  # someone injected a container
    assert not contains(served, wanted)
    assert not contains({"port": "http"}, {"port": 80}) and not contains({"flag": 1}, {"flag": True})

    previous = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"nodeSelector": {"zone": "a"}, "x": 1}}
    now = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 2}}
    assert removals(previous, now) == {
        "metadata": {"labels": {"a": "1", "b": None}},
        "spec": {"x": 2, "nodeSelector": None},
    }
    assert [plural(kind) for kind in ("Ingress", "NetworkPolicy", "HTTPRoute", "Job")] == [
        "ingresses", "networkpolicies", "httproutes", "jobs"]  # fmt: skip


def test_pod_cidrs_come_from_the_environment_and_are_checked_at_start():
    config = OperatorConfig.from_env({"AVATAR_POD_CIDRS": " 10.42.0.0/16, fd00:10:42::/56 ,"})
    assert config.pod_cidrs == ("10.42.0.0/16", "fd00:10:42::/56")
    assert OperatorConfig.from_env({}).pod_cidrs == ()
    with pytest.raises(ValueError, match="AVATAR_POD_CIDRS: '10.0.0.0/33'"):
        OperatorConfig.from_env({"AVATAR_POD_CIDRS": "10.0.0.0/33"})
