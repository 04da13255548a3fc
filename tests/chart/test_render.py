"""What `helm template` renders: valid manifests for every supported Kubernetes version, CRDs identical to crds/, the
operator Deployment running the operator tests' entry point, locked-down pods, RBAC per mode, peering, examples,
monitors that select the operator's runtime pods, NOTES.txt, and operator/deploy/operator.yaml as a fresh render."""

from __future__ import annotations

import shlex
import subprocess
import tomllib
from typing import Any

import pytest
import yaml
from avatar_operator.builders import coturn
from avatar_operator.builders.children import deployment_children
from avatar_operator.builders.common import Owner
from avatar_operator.cli import build_parser
from avatar_operator.spec import Turn, parse_deployment

from .helm import (
    CHART,
    HELM,
    NAMESPACE,
    PEERING,
    REPO,
    SERVED,
    all_options_render,
    default_render,
    find,
    notes,
    pod_specs,
    template,
)
from .manifests import K8S_VERSIONS, validate_rendered

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())


def renders() -> dict[str, list[dict[str, Any]]]:
    """The renders every structural test looks at: defaults, every option, cluster-wide peering, a CPU example."""
    return {
        "defaults": default_render(),
        "all options": all_options_render(),
        "cluster-wide peering": template("--include-crds", *PEERING, "--set", "fullnameOverride=avatars"),
        "cpu example": template(
            "--set", "examples.enabled=true", "--set", "examples.modelCache.enabled=false",
            "--set", "examples.avatarDeployment.gpu=0", "--set", "crds.enabled=false", "--api-versions", SERVED,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_manifest_is_valid_for_each_supported_kubernetes(version):
    kinds = set()
    for name, docs in renders().items():
        for doc in docs:
            kinds.add(doc["kind"])
            try:
                validate_rendered(doc, version)
            except Exception as exc:
                raise AssertionError(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc}") from exc
    assert kinds >= {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role", "RoleBinding", "Service",
                     "ServiceAccount", "Pod", "AvatarDeployment", "AvatarModelCache", "KopfPeering",
                     "ClusterKopfPeering", "PodMonitor", "ServiceMonitor"}  # fmt: skip


def test_the_chart_crds_are_the_repository_crds_with_a_keep_policy():
    """files/crds/ is a byte copy of crds/ (hack/render-deploy-manifests.sh refreshes it), and the rendered CRDs are
    those objects plus the release's labels and, unless crds.keep=false, helm.sh/resource-policy: keep."""
    sources = {path.name: path.read_bytes() for path in sorted((REPO / "crds").glob("*.yaml"))}
    copies = {path.name: path.read_bytes() for path in sorted((CHART / "files" / "crds").glob("*.yaml"))}
    assert copies == sources, "the chart's files/crds/ differ from crds/: run bash hack/render-deploy-manifests.sh"

    for values, keep in ((default_render(), True), (all_options_render(), False)):
        rendered = {d["metadata"]["name"]: d for d in values if d["kind"] == "CustomResourceDefinition"}
        for text in sources.values():
            source = yaml.safe_load(text)
            crd = rendered[source["metadata"]["name"]]
            meta = crd.pop("metadata")
            assert crd == {key: value for key, value in source.items() if key != "metadata"}
            assert meta["labels"].items() >= source["metadata"]["labels"].items()
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
            assert (meta.get("annotations") or {}).get("helm.sh/resource-policy") == ("keep" if keep else None)
    no_crds = template("--set", "crds.enabled=false")
    assert not [d for d in no_crds if d["kind"] == "CustomResourceDefinition"]


def test_operator_yaml_is_a_fresh_render_of_the_chart():
    script = REPO / "hack" / "render-deploy-manifests.sh"
    env = {"HELM": str(HELM), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["bash", str(script), "--stdout"], capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr
    current = (REPO / "operator" / "deploy" / "operator.yaml").read_text()
    assert current == result.stdout, "operator/deploy/operator.yaml is stale: run bash hack/render-deploy-manifests.sh"


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(
    ("render", "namespaces", "peering"),
    [
        (lambda: default_render(), [], None),
        (lambda: all_options_render(), ["avatars", "team-b"], "avatar-operators"),
        (lambda: template(*PEERING), [], "ga-gaussian-avatar"),
    ],
    ids=["cluster-wide", "namespaces+peering", "cluster-wide+peering"],
)
def test_the_operator_runs_the_entry_point_of_the_operator_tests(render, namespaces, peering):
    """The container's command is operator/pyproject.toml's `avatar-operator` script, i.e. avatar_operator.cli —
    the module tests/operator runs as a process — and its arguments parse with that CLI's own parser."""
    scripts = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"avatar-operator": "avatar_operator.cli:main"}
    assert build_parser.__module__ == "avatar_operator.cli"
    docs = render()
    container = operator_container(docs)
    assert container["command"] == ["avatar-operator"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.namespace, args.all_namespaces) == ("run", namespaces, not namespaces)
    assert args.peering == peering
    port = container["ports"][0]["containerPort"]
    assert args.liveness == f"http://0.0.0.0:{port}/healthz"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": container["ports"][0]["name"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AVATAR_POD_CIDRS"] and all("/" in cidr for cidr in env["AVATAR_POD_CIDRS"].split(","))
    strategy = find(docs, "Deployment")["spec"]["strategy"]["type"]
    assert strategy == ("RollingUpdate" if peering else "Recreate")


def test_defaults_one_operator_its_image_at_the_app_version_and_the_documented_settings():
    container = operator_container(default_render())
    assert find(default_render(), "Deployment")["spec"]["replicas"] == 1
    assert container["image"] == f"ghcr.io/gaussian-avatar/operator:{CHART_META['appVersion']}"
    args = build_parser().parse_args(container["args"])
    assert (args.log_format, args.resync_interval, args.verbose) == ("json", 30.0, False)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AVATAR_POD_CIDRS"] == "10.244.0.0/16"
    assert env["AVATAR_PROMETHEUS_SERVER_ADDRESS"] == "http://prometheus-operated.monitoring.svc:9090"
    every = operator_container(all_options_render())
    assert every["image"].startswith("registry.example/mirror/gaussian-avatar-operator@sha256:")  # digest wins
    assert build_parser().parse_args(every["args"]).resync_interval == 12.5


@pytest.mark.parametrize("name", ["defaults", "all options", "cluster-wide peering", "cpu example"])
def test_every_pod_is_non_root_read_only_unprivileged_with_runtime_default_seccomp(name):
    specs = pod_specs(renders()[name])
    assert set(specs) >= ({"Deployment/ga-gaussian-avatar-operator"} if name == "defaults" else set())
    for where, pod in specs.items():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")), where
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert not security.get("privileged"), where
    if name == "defaults":
        assert "Pod/ga-gaussian-avatar-operator-test" in specs  # the helm test hook is checked too


def rules(role: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (group, resource) for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
    }


def test_rbac_cluster_wide_or_per_namespace():
    """Cluster-wide: one ClusterRole with everything. Namespaces: a Role per namespace with the namespaced rules,
    and a ClusterRole with only CRDs and namespaces (what kopf reads cluster-wide). Exactness: test_rbac.py."""
    cluster = default_render()
    (role,) = [d for d in cluster if d["kind"] == "ClusterRole"]
    assert ("", "secrets") in rules(role) and ("apiextensions.k8s.io", "customresourcedefinitions") in rules(role)
    assert not [d for d in cluster if d["kind"] in ("Role", "RoleBinding")]
    assert find(cluster, "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "ga-gaussian-avatar-operator", "namespace": NAMESPACE}
    ]

    scoped = all_options_render()
    assert rules(find(scoped, "ClusterRole")) == {
        ("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}  # fmt: skip
    roles = {d["metadata"]["namespace"]: d for d in scoped if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"]: d for d in scoped if d["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"avatars", "team-b"}
    for namespace, binding in bindings.items():
        assert binding["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "avatar-operator", "namespace": NAMESPACE}
        assert ("", "secrets") in rules(roles[namespace]) and ("kopf.dev", "kopfpeerings") in rules(roles[namespace])
    assert not [d for d in template("--set", "rbac.create=false") if "Role" in d["kind"]]


def test_peering_objects_exist_where_kopf_looks_for_them():
    """kopf patches, but never creates, the peering object: the chart creates it (ClusterKopfPeering cluster-wide,
    a KopfPeering in each watched namespace) under the name given to --peering."""
    cluster = renders()["cluster-wide peering"]
    name = build_parser().parse_args(operator_container(cluster)["args"]).peering
    assert find(cluster, "ClusterKopfPeering")["metadata"]["name"] == name == "avatars"
    peering_rules = [r for r in find(cluster, "ClusterRole")["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert {"resources": ["clusterkopfpeerings"], "resourceNames": [name], "verbs": ["patch"],
            "apiGroups": ["kopf.dev"]} in peering_rules  # fmt: skip
    scoped = all_options_render()
    assert {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in scoped if d["kind"] == "KopfPeering"} == {
        ("avatars", "avatar-operators"), ("team-b", "avatar-operators")}  # fmt: skip
    crds = {d["spec"]["names"]["kind"]: d for d in default_render() if d["kind"] == "CustomResourceDefinition"}
    scopes = {kind: crds[kind]["spec"]["scope"] for kind in ("ClusterKopfPeering", "KopfPeering")}
    assert scopes == {"ClusterKopfPeering": "Cluster", "KopfPeering": "Namespaced"}
    # No status subresource: kopf patches its keep-alives into the object itself, so the RBAC has no /status.
    for kind in ("ClusterKopfPeering", "KopfPeering"):
        assert not any("subresources" in version for version in crds[kind]["spec"]["versions"]), kind


def test_examples_render_only_once_the_crds_are_served():
    assert not [d for d in template("--set", "examples.enabled=true") if d["kind"].startswith("Avatar")]
    every = all_options_render()
    avd, amc = find(every, "AvatarDeployment"), find(every, "AvatarModelCache")
    assert (avd["metadata"]["namespace"], avd["spec"]["modelCacheRef"]) == ("avatars", amc["metadata"]["name"])
    assert avd["spec"]["image"] == amc["spec"]["image"] == "registry.example/mirror/avatar-runtime:0.1.0-rc1"
    assert avd["spec"]["tls"] == {"issuerRef": {"name": "letsencrypt-prod", "kind": "Issuer"}}
    cpu = find(renders()["cpu example"], "AvatarDeployment")
    assert cpu["spec"]["gpu"] == {"count": 0} and "modelCacheRef" not in cpu["spec"]
    assert cpu["spec"]["image"] == f"ghcr.io/gaussian-avatar/avatar-runtime:{CHART_META['appVersion']}"


def test_monitors_select_the_runtime_pods_and_service_the_operator_builds():
    """Feed the chart's example AvatarDeployment to the operator's own builders: the PodMonitor's selector matches the
    runtime pods' labels and its port is their metrics port; the ServiceMonitor's matches the runtime Service."""
    every = all_options_render()
    avd = find(every, "AvatarDeployment")
    owner = Owner("AvatarDeployment", avd["metadata"]["name"], avd["metadata"]["namespace"], "uid-1")
    children = deployment_children(owner, parse_deployment(avd["spec"]), turn_secret="s" * 32,
                                   claim_name="models-models", allowed_peer_cidrs=["10.42.0.0/16"])  # fmt: skip
    runtime = next(c for c in children if c["kind"] == "Deployment")
    service = next(c for c in children if c["kind"] == "Service" and c["metadata"]["name"] == owner.name)
    pod_labels = runtime["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in runtime["spec"]["template"]["spec"]["containers"][0]["ports"]}
    pod_monitor, service_monitor = find(every, "PodMonitor"), find(every, "ServiceMonitor")
    assert pod_labels.items() >= pod_monitor["spec"]["selector"]["matchLabels"].items()
    assert ports[pod_monitor["spec"]["podMetricsEndpoints"][0]["port"]] == 8282
    assert service["metadata"]["labels"].items() >= service_monitor["spec"]["selector"]["matchLabels"].items()
    assert service_monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    turn = next(c for c in children if c["kind"] == "Service" and c["metadata"]["name"] != owner.name)
    assert not turn["metadata"]["labels"].items() >= service_monitor["spec"]["selector"]["matchLabels"].items()
    for monitor in (pod_monitor, service_monitor):
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["avatars", "team-b"]}
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert find(template("--set", "metrics.podMonitor.enabled=true"), "PodMonitor")["spec"]["namespaceSelector"] == {
        "any": True}  # fmt: skip


def test_notes_warn_first_then_say_how_to_check_reach_and_open_the_avatar():
    text = notes("--set", "examples.enabled=true", "--set", "examples.avatarDeployment.host=avatar.example.com",
                 "--set", "examples.avatarDeployment.tlsIssuer.name=le", "--set", "crds.keep=false")  # fmt: skip
    lines = [line for line in text.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("The Gaussian Avatar operator"))
    assert all(line.startswith(("WARNING:", " ")) for line in lines[:first]), "warnings come first"
    assert sum(line.startswith("WARNING:") for line in lines[:first]) == 3
    assert not any("WARNING" in line for line in lines[first:])
    assert "helm upgrade ga <chart> -n avatar-system --reuse-values" in text  # the examples were skipped
    assert "crds.keep=false" in text and "operator.podCIDRs" in text
    commands = [shlex.split(line.split("#")[0]) for line in lines if line.startswith("     kubectl")]
    assert ["kubectl", "-n", NAMESPACE, "wait", "avd/avatar", "--for=condition=Ready", "--timeout=60m"] in commands
    assert ["kubectl", "get", "avd", "-A"] in commands
    assert "helm test ga -n avatar-system" in text and "https://avatar.example.com/" in text
    turn = Turn()  # the operator's defaults: the ports coturn listens on and relays from
    for port in (f"{coturn.TURN_PORT}/udp", f"{coturn.TURN_PORT}/tcp", f"{coturn.TURNS_PORT}/tcp",
                 f"{turn.min_port}-{turn.max_port}/udp"):  # fmt: skip
        assert port in text, port

    quiet = notes("--set", "operator.podCIDRs={10.42.0.0/16}")
    assert "WARNING" not in quiet and "kubectl -n <namespace> wait avd/<name> --for=condition=Ready" in quiet
    lonely = notes("--set", "operator.peering.enabled=true", "--set", "operator.podCIDRs={10.42.0.0/16}")
    assert lonely.startswith("WARNING: operator.peering.enabled with operator.replicas=1")


def test_network_policy_lets_the_operator_reach_only_dns_and_the_api_and_be_reached_only_on_health():
    docs = default_render()
    policy, deployment = find(docs, "NetworkPolicy"), find(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= policy["spec"]["podSelector"]["matchLabels"].items()  # it selects the operator pod
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    (ingress,) = policy["spec"]["ingress"]
    assert ingress == {"ports": [{"port": "health", "protocol": "TCP"}]} and "health" in container_ports
    dns, api = policy["spec"]["egress"]
    assert "to" not in dns and {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert [b["ipBlock"]["cidr"] for b in api["to"]] == ["0.0.0.0/0", "::/0"]

    narrowed = find(
        template(
            "--set", "networkPolicy.apiServerCIDRs={172.20.0.10/32}", "--set", "networkPolicy.apiServerPorts={6443}"
        ),
        "NetworkPolicy",
    )
    assert narrowed["spec"]["egress"][1] == {"to": [{"ipBlock": {"cidr": "172.20.0.10/32"}}],
                                              "ports": [{"port": 6443, "protocol": "TCP"}]}  # fmt: skip
    assert not [d for d in template("--set", "networkPolicy.enabled=false") if d["kind"] == "NetworkPolicy"]
