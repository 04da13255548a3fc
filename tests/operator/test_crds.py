"""The CRDs (crds/*.yaml): valid CRDs, structural, CEL rules that hold, examples that pass, parity with spec.py.

No API server runs here; `tests.operator.schemas` does offline what it would do on create (defaults, structural
schema with strict field validation, list-map keys, CEL rules). What no test here can cover, because only a real
API server does it: CEL cost estimation, the server's own compile/type-check of each rule (approximated by
`test_cel_rules_compile_and_reference_only_typed_fields`), and printer-column rendering.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from avatar_operator import API_VERSION, GROUP, VERSION
from avatar_operator.spec import (
    AvatarDeploymentSpec,
    AvatarModelCacheSpec,
    SpecError,
    parse_deployment,
    parse_model_cache,
)
from avatar_runtime.models.specs import ModelSpec

from tests.operator import schemas as S

IMAGE = "ghcr.io/gaussian-avatar/avatar-runtime:0.1.0"
SHA = "0123456789abcdef" * 4
KINDS = {"avd": "AvatarDeployment", "amc": "AvatarModelCache"}
PARSERS = {"AvatarDeployment": parse_deployment, "AvatarModelCache": parse_model_cache}
MODELS = {"AvatarDeployment": AvatarDeploymentSpec, "AvatarModelCache": AvatarModelCacheSpec}
CEL_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
DEFAULT_CONFIG = S.REPO / "runtime" / "avatar_runtime" / "default_config.yaml"


def cr(kind: str, spec: dict[str, Any], name: str = "avatar") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": "demo"}, "spec": spec}


def spec_schema(kind: str) -> dict[str, Any]:
    return S.crd_schema(API_VERSION, kind)["properties"]["spec"]


def example_docs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{i}", doc)
        for path in sorted(S.EXAMPLES_DIR.glob("*.yaml"))
        for i, doc in enumerate(yaml.safe_load_all(path.read_text()))
        if doc
    ]


def schema_nodes(node: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every node of a structural schema that describes a value (properties, items, map values), with its path."""
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += schema_nodes(sub, (*path, name))
    if isinstance(node.get("items"), dict):
        found += schema_nodes(node["items"], (*path, "[]"))
    if isinstance(node.get("additionalProperties"), dict):
        found += schema_nodes(node["additionalProperties"], (*path, "{}"))
    return found


# -- the files are CRDs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS.values())
def test_crd_file_is_a_valid_crd(kind):
    doc = S.crd_documents()[kind]
    for version in ("1.28.0", S.K8S_VERSION, "1.37.0"):  # strict: no unknown field anywhere in the CRD
        assert S.builtin_problems(doc, version) == [], version
    # Before 1.28 the API had no fieldPath/reason on CEL rules: such a cluster would refuse these files.
    assert S.builtin_problems(doc, "1.27.0")
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{spec['names']['plural']}.{GROUP}"
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == kind.lower() + "s" and spec["names"]["singular"] == kind.lower()
    assert spec["names"]["shortNames"] == [{v: k for k, v in KINDS.items()}[kind]]
    assert spec["names"]["categories"] == ["gaussianavatar"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_strict_crd_validation_catches_a_misspelt_schema_keyword():
    """The check above reaches into nested JSONSchemaProps: a typo deep in the schema is an error."""
    doc = copy.deepcopy(S.crd_documents()["AvatarDeployment"])
    gpu = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["gpu"]
    gpu["properties"]["count"]["maximun"] = 16
    problems = S.builtin_problems(doc)
    assert problems and any("maximun" in p.message for p in problems)


@pytest.mark.parametrize("kind", KINDS.values())
def test_schema_is_structural(kind):
    root = S.crd_schema(API_VERSION, kind)
    assert root["properties"]["metadata"] == {"type": "object"}  # only name/generateName may be restricted
    for path, node in schema_nodes(root):
        where = ".".join(path) or "<root>"
        untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        assert "type" in node or untyped_ok, f"{where}: no type"
        assert node.get("format", "int32") in S.K8S_FORMATS, f"{where}: unknown format {node.get('format')}"
        assert not ("properties" in node and "additionalProperties" in node), f"{where}: both kinds of fields"
        assert set(node.get("required", [])) <= set(node.get("properties", {})), f"{where}: required but undeclared"
        for junctor in ("allOf", "anyOf", "oneOf", "not"):
            for sub in node.get(junctor, []) if junctor != "not" else [node.get("not", {})]:
                assert not {"type", "default", "description", "nullable", "additionalProperties"} & set(sub), where
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], f"{where}.{key}"
        for value in node.get("enum", []):
            assert isinstance(value, {"string": str, "integer": int}[node["type"]]), f"{where}: enum value {value!r}"
        if "default" in node:
            default = S.apply_defaults(node, node["default"])
            errors = list(S.jsonschema_validator(node, root=False).iter_errors(default))
            assert not errors, f"{where}: default {node['default']!r} is invalid: {errors[0].message}"
        if path[:1] in (("spec",), ("status",)):
            scalar_member = path[-1] in ("[]", "{}") and node["type"] != "object"
            assert node.get("description") or scalar_member, f"{where}: no description"


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("AvatarDeployment", ["Replicas", "Ready", "Sessions", "Capacity", "URL", "Status", "Reason", "Age"]),
        ("AvatarModelCache", ["Claim", "Ready", "Reason", "Job", "Size", "Age"]),
    ],
)
def test_printer_columns_point_at_fields_of_their_type(kind, columns):
    version = S.crd_documents()[kind]["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    root = S.crd_schema(API_VERSION, kind)
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        node = root
        condition = re.fullmatch(r'\.status\.conditions\[\?\(@\.type=="(\w+)"\)\]\.(\w+)', path)
        steps = ["status", "conditions", "[]", condition.group(2)] if condition else path.lstrip(".").split(".")
        for step in steps:
            node = node["items"] if step == "[]" else node["properties"][step]
        assert node["type"] == column["type"], column
    ready = [c for c in version["additionalPrinterColumns"] if "conditions" in c["jsonPath"]]
    assert ready and all('@.type=="Ready"' in c["jsonPath"] for c in ready)


# -- CEL rules ---------------------------------------------------------------------------------------------------
def all_rule_sites() -> list[tuple[str, S.RuleSite]]:
    return [(kind, site) for kind in KINDS.values() for site in S.rule_sites(S.crd_schema(API_VERSION, kind))]


def _resolve(node: dict[str, Any], steps: list[str], *, kind: str) -> list[dict[str, Any]]:
    """The schema nodes along `self.a.b` from `node`; fails where CEL would not compile (unknown or untyped field)."""
    chain = []
    for step in steps:
        chain.append(node)
        if step == "metadata" and node is S.crd_schema(API_VERSION, kind):  # name is always there (CEL sees it)
            node = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
            continue
        assert step in node.get("properties", {}), f"self...{step}: no such field"
        node = node["properties"][step]
        # The API server gives CEL no type for an untyped field, so a rule naming it does not compile.
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{step}: untyped, invisible to CEL"
    return chain


@pytest.mark.parametrize(("kind", "site"), all_rule_sites(), ids=lambda v: getattr(v, "rule", v))
def test_cel_rules_compile_and_reference_only_typed_fields(kind, site):
    S.cel_program(site.rule)  # compiles
    assert "\n" not in site.message and site.reason in CEL_REASONS
    guarded = re.findall(r"has\(self((?:\.\w+)+)\)", site.rule)
    bare = re.findall(r"self((?:\.\w+)+)", re.sub(r"has\(self(?:\.\w+)+\)", "", site.rule))
    for chain in guarded + bare:
        steps = [s for s in chain.split(".") if s and s not in ("matches", "size")]
        parents = _resolve(site.node, steps, kind=kind)
        # A field read outside has() must always be there: required, or filled in by a default.
        must_exist = len(steps) if chain in bare else len(steps) - 1
        for depth, (parent, step) in enumerate(list(zip(parents, steps, strict=True))[:must_exist]):
            field = parent["properties"].get(step, {})
            # ... or itself tested with has() in the rule (`!has(self.a) || has(self.a.b)`: CEL's || absorbs the
            # error of the branch it does not need).
            prefix = "." + ".".join(steps[: depth + 1])
            tested = prefix in guarded
            assert step in parent.get("required", []) or "default" in field or step == "metadata" or tested, chain
    if site.field_path:
        _resolve(site.node, site.field_path.lstrip(".").split("."), kind=kind)


@pytest.mark.parametrize(("name", "doc"), example_docs(), ids=lambda v: v if isinstance(v, str) else "")
def test_example_is_accepted(name, doc):
    defaulted = S.validate_cr(doc)  # schema, defaults, list-map keys, every CEL rule
    spec = PARSERS[doc["kind"]](doc["spec"])  # and the operator builds from it
    assert PARSERS[doc["kind"]](defaulted["spec"]) == spec
    pod = defaulted["spec"].get("pod", {})
    for kind, values in (("Toleration", pod.get("tolerations", [])), ("EnvVar", pod.get("env", []))):
        for i, value in enumerate(values):
            assert S.definition_problems(f"io.k8s.api.core.v1.{kind}", value, (i,)) == []
    if "resources" in pod:
        assert S.definition_problems("io.k8s.api.core.v1.ResourceRequirements", pod["resources"]) == []
    config_keys = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for section, values in defaulted["spec"].get("runtimeConfig", {}).items():
        assert set(values) <= set(config_keys[section]), f"runtimeConfig.{section}: not runtime config keys"
    for key in defaulted["spec"].get("hub", {}):
        assert key in config_keys["hub"], f"hub.{key}"


def test_every_cel_rule_is_evaluated_by_some_example_and_passes():
    seen: set[tuple[tuple[str, ...], str]] = set()
    for _, doc in example_docs():
        schema = S.crd_schema(doc["apiVersion"], doc["kind"])
        assert S.cel_problems(schema, S.apply_defaults(schema, doc), seen=seen) == []
    assert {(site.path, site.rule) for _, site in all_rule_sites()} <= seen


def test_examples_cover_the_brief():
    docs = {name.split(":")[0]: doc for name, doc in example_docs()}
    assert set(docs) == {
        "minimal-cpu.yaml",
        "gpu-ingress.yaml",
        "gateway.yaml",
        "external-turn.yaml",
        "model-cache.yaml",
        "chinese-expressive.yaml",
    }
    assert docs["minimal-cpu.yaml"]["spec"] == {"image": IMAGE, "gpu": {"count": 0}}
    full = docs["gpu-ingress.yaml"]["spec"]
    assert full["gpu"]["count"] > 0 and "issuerRef" in full["tls"] and "host" in full["ingress"]
    assert full["turn"]["enabled"] and "external" not in full["turn"]  # the operator's coturn
    assert "parentRef" in docs["gateway.yaml"]["spec"]["gateway"]
    assert docs["external-turn.yaml"]["spec"]["turn"]["external"]["secretRef"]
    refs = {doc["spec"].get("modelCacheRef") for doc in docs.values()} - {None}
    assert refs == {docs["model-cache.yaml"]["metadata"]["name"]}


def test_model_cache_example_lists_the_runtime_default_models():
    example = S.validate_cr(yaml.safe_load((S.EXAMPLES_DIR / "model-cache.yaml").read_text()))
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text())["models"]
    assert example["spec"]["models"] == [{k: v for k, v in m.items() if v is not None} for m in defaults]
    for model in example["spec"]["models"]:
        ModelSpec.model_validate(model)  # what `avatar-runtime models pull` in the Job accepts


# -- invalid custom resources: the CRD rejects them, and so does spec.py -------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    spec: dict[str, Any]
    field: str  # the field both the CRD and spec.py name
    by: str  # which part of the CRD rejects it: "schema" or "cel"
    gap: str | None = None  # spec.py accepts it: what spec.py should do (the parity test is then xfail, strict)


AVD = {"image": IMAGE, "gpu": {"count": 0}}
AMC = {"image": IMAGE}
HF = {"name": "m", "source": "huggingface", "repo": "o/m"}


def avd(**fields: Any) -> dict[str, Any]:
    return {**AVD, **fields}


def amc(**fields: Any) -> dict[str, Any]:
    return {**AMC, **fields}


CASES = [
    Case("no-image", "AvatarDeployment", {"gpu": {"count": 0}}, "spec.image", "schema"),
    Case("empty-image", "AvatarDeployment", avd(image=""), "spec.image", "schema"),
    Case("unknown-field", "AvatarDeployment", avd(replica=2), "spec.replica", "schema"),
    Case("misspelt-nested", "AvatarDeployment", avd(gpu={"cuont": 0}), "spec.gpu.cuont", "schema"),
    Case("replicas-negative", "AvatarDeployment", avd(replicas=-1), "spec.replicas", "schema"),
    Case("replicas-too-many", "AvatarDeployment", avd(replicas=1001), "spec.replicas", "schema"),
    Case("replicas-string", "AvatarDeployment", avd(replicas="3"), "spec.replicas", "schema"),
    Case("gpu-count-17", "AvatarDeployment", avd(gpu={"count": 17}), "spec.gpu.count", "schema"),
    Case("gpu-without-cache", "AvatarDeployment", {"image": IMAGE}, "spec.modelCacheRef", "cel"),
    Case("gpu-2-without-cache", "AvatarDeployment", avd(gpu={"count": 2}), "spec.modelCacheRef", "cel"),
    Case("sessions-0", "AvatarDeployment", avd(sessions={"concurrentLimit": 0}), "spec.sessions.concurrentLimit",
         "schema"),
    Case("autoscaling-engine", "AvatarDeployment", avd(autoscaling={"engine": "vpa"}), "spec.autoscaling.engine",
         "schema"),
    Case("autoscaling-range", "AvatarDeployment", avd(autoscaling={"minReplicas": 3, "maxReplicas": 2}),
         "spec.autoscaling.maxReplicas", "cel"),
    Case("autoscaling-range-default-max", "AvatarDeployment", avd(autoscaling={"minReplicas": 5}),
         "spec.autoscaling.maxReplicas", "cel"),
    Case("autoscaling-target-0", "AvatarDeployment", avd(autoscaling={"targetActiveSessions": 0}),
         "spec.autoscaling.targetActiveSessions", "schema"),
    Case("autoscaling-enabled-string", "AvatarDeployment", avd(autoscaling={"enabled": "yes"}),
         "spec.autoscaling.enabled", "schema"),
    Case("autoscaling-min-0", "AvatarDeployment", avd(autoscaling={"enabled": True, "minReplicas": 0}),
         "spec.autoscaling.minReplicas", "schema"),
    Case("autoscaling-target-above-limit", "AvatarDeployment",
         avd(sessions={"concurrentLimit": 2}, autoscaling={"targetActiveSessions": 3}),
         "spec.autoscaling.targetActiveSessions", "cel"),
    Case("drain-negative", "AvatarDeployment", avd(sessions={"drainSeconds": -1}), "spec.sessions.drainSeconds",
         "schema"),
    Case("drain-over-a-day", "AvatarDeployment", avd(sessions={"drainSeconds": 86401}),
         "spec.sessions.drainSeconds", "schema"),
    Case("cache-ref-not-a-name", "AvatarDeployment", avd(modelCacheRef="My_Cache"), "spec.modelCacheRef", "schema"),
    Case("avatar-name", "AvatarDeployment", avd(avatar={"name": "-x"}), "spec.avatar.name", "schema"),
    Case("llm-url", "AvatarDeployment", avd(llm={"baseURL": "ftp://llm"}), "spec.llm.baseURL", "schema"),
    Case("llm-secret-key-missing", "AvatarDeployment", avd(llm={"apiKeySecretRef": {"name": "k"}}),
         "spec.llm.apiKeySecretRef.key", "schema"),
    Case("tts-engine", "AvatarDeployment", avd(tts={"engine": "piper"}), "spec.tts.engine", "schema"),
    Case("turn-port-low", "AvatarDeployment", avd(turn={"minPort": 80}), "spec.turn.minPort", "schema"),
    Case("turn-port-range", "AvatarDeployment", avd(turn={"minPort": 50000, "maxPort": 49999}),
         "spec.turn.maxPort", "cel"),
    Case("turn-external-no-urls", "AvatarDeployment", avd(turn={"external": {"urls": []}}),
         "spec.turn.external.urls", "schema"),
    Case("turn-external-secret-key", "AvatarDeployment",
         avd(turn={"external": {"urls": ["turn:t:3478"], "secretRef": {"name": "s"}}}),
         "spec.turn.external.secretRef.key", "schema"),
    Case("tls-empty", "AvatarDeployment", avd(tls={}), "spec.tls.issuerRef", "cel"),
    Case("tls-both", "AvatarDeployment", avd(tls={"issuerRef": {"name": "le"}, "secretName": "s"}),
         "spec.tls.issuerRef", "cel"),
    Case("tls-issuer-kind", "AvatarDeployment", avd(tls={"issuerRef": {"name": "le", "kind": "Foo"}}),
         "spec.tls.issuerRef.kind", "schema"),
    Case("tls-secret-name", "AvatarDeployment", avd(tls={"secretName": "Bad"}), "spec.tls.secretName", "schema"),
    Case("ingress-no-host", "AvatarDeployment", avd(ingress={"className": "nginx"}), "spec.ingress.host", "schema"),
    Case("ingress-host-case", "AvatarDeployment", avd(ingress={"host": "Avatar.example.com"}), "spec.ingress.host",
         "schema"),
    Case("ingress-and-gateway", "AvatarDeployment",
         avd(ingress={"host": "a.example.com"}, gateway={"parentRef": {"name": "gw"}}), "spec.gateway", "cel"),
    Case("gateway-no-parent", "AvatarDeployment", avd(gateway={"hostname": "a.example.com"}),
         "spec.gateway.parentRef", "schema"),
    Case("node-selector-int", "AvatarDeployment", avd(pod={"nodeSelector": {"gpu": 1}}), "spec.pod.nodeSelector.gpu",
         "schema"),
    Case("toleration-not-object", "AvatarDeployment", avd(pod={"tolerations": ["gpu"]}), "spec.pod.tolerations.0",
         "schema"),
    Case("runtime-config-list", "AvatarDeployment", avd(runtimeConfig=["x"]), "spec.runtimeConfig", "schema"),
    Case("cache-no-image", "AvatarModelCache", {"storage": {"size": "1Gi"}}, "spec.image", "schema"),
    Case("cache-size", "AvatarModelCache", amc(storage={"size": "30GB"}), "spec.storage.size", "schema"),
    Case("cache-access-modes-empty", "AvatarModelCache", amc(storage={"accessModes": []}),
         "spec.storage.accessModes", "schema"),
    Case("cache-access-mode", "AvatarModelCache", amc(storage={"accessModes": ["ReadWrite"]}),
         "spec.storage.accessModes.0", "schema"),
    Case("cache-claim-name", "AvatarModelCache", amc(storage={"existingClaim": "Claim"}), "spec.storage.existingClaim",
         "schema"),
    Case("cache-claim-and-class", "AvatarModelCache", amc(storage={"existingClaim": "c", "storageClassName": "nfs"}),
         "spec.storage.storageClassName", "cel"),
    Case("model-no-source", "AvatarModelCache", amc(models=[{"name": "m", "repo": "o/m"}]), "spec.models.0.source",
         "schema"),
    Case("model-source", "AvatarModelCache", amc(models=[{**HF, "source": "s3"}]), "spec.models.0.source", "schema"),
    Case("model-name", "AvatarModelCache", amc(models=[{**HF, "name": "../m"}]), "spec.models.0.name", "schema"),
    Case("model-url-scheme", "AvatarModelCache",
         amc(models=[{"name": "m", "source": "url", "url": "file:///m", "sha256": SHA}]), "spec.models.0.url",
         "schema"),
    Case("model-url-missing", "AvatarModelCache", amc(models=[{"name": "m", "source": "url", "sha256": SHA}]),
         "spec.models.0.url", "cel"),
    Case("model-repo-missing", "AvatarModelCache", amc(models=[HF, {"name": "n", "source": "modelscope"}]),
         "spec.models.1.repo", "cel"),
    Case("model-unpack-string", "AvatarModelCache", amc(models=[{**HF, "unpack": "true"}]), "spec.models.0.unpack",
         "schema"),
    Case("model-duplicate", "AvatarModelCache", amc(models=[HF, {**HF, "repo": "o/n"}]), "spec.models.1", "schema"),
    Case("avatar-no-sha", "AvatarModelCache", amc(avatars=[{"name": "a", "url": "https://a/a.zip"}]),
         "spec.avatars.0.sha256", "schema"),
    Case("avatar-sha-upper", "AvatarModelCache",
         amc(avatars=[{"name": "a", "url": "https://a/a.zip", "sha256": SHA.upper()}]), "spec.avatars.0.sha256",
         "schema"),
    Case("avatar-duplicate", "AvatarModelCache",
         amc(avatars=[{"name": "a", "url": "https://a/a.zip", "sha256": SHA}] * 2), "spec.avatars.1", "schema"),
    Case("hub-not-object", "AvatarModelCache", amc(hub="offline"), "spec.hub", "schema"),
    Case("tls-issuer-without-host", "AvatarDeployment", avd(tls={"issuerRef": {"name": "le"}}),
         "spec.tls", "cel"),
    Case("tls-issuer-gateway-without-hostname", "AvatarDeployment",
         avd(tls={"issuerRef": {"name": "le"}}, gateway={"parentRef": {"name": "gw"}}), "spec.tls", "cel"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_crd_rejects_invalid_spec(case):
    defaulted, problems = S.cr_problems(cr(case.kind, case.spec))
    assert (case.field, case.by) in {(p.field, p.by) for p in problems}, problems
    if case.by == "cel":  # the schema alone lets it through: the CEL rule is what catches it
        assert S.schema_problems(defaulted) == []
    with pytest.raises(S.Invalid):
        S.validate_cr(cr(case.kind, case.spec))


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=c.gap)) if c.gap else c for c in CASES],
    ids=lambda c: c.id,
)
def test_spec_py_rejects_what_the_crd_rejects_naming_the_same_field(case):
    with pytest.raises(SpecError) as caught:
        PARSERS[case.kind](case.spec)
    assert caught.value.field == case.field


@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        ("AvatarModelCache", amc(models=[{"name": "m", "source": "url", "url": "https://h/m.bin"}]),
         "spec.models.0.url"),
        ("AvatarModelCache", amc(models=[{"name": "m", "source": "url", "url": "https://h/m.bin", "sha256": 5}]),
         "spec.models.0.sha256"),
    ],
    ids=["url-without-sha256", "sha256-not-string-or-map"],
)  # fmt: skip
def test_what_the_crd_cannot_check_spec_py_does(kind, spec, field):
    """sha256 is a string or a map: untyped in a structural schema, so neither the schema nor CEL can see it."""
    S.validate_cr(cr(kind, spec))  # the API server accepts it ...
    with pytest.raises(SpecError) as caught:  # ... the operator refuses it, naming the field (Ready=False)
        PARSERS[kind](spec)
    assert caught.value.field.startswith(field)


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("AvatarDeployment", "a" * 47, True),
        ("AvatarDeployment", "a" * 48, False),
        ("AvatarDeployment", "1avatar", False),
        ("AvatarDeployment", "avatar.prod", False),
        ("AvatarModelCache", "m" * 49, True),
        ("AvatarModelCache", "m" * 50, False),
        ("AvatarModelCache", "models.v2", True),
    ],
)
def test_names_that_children_cannot_carry_are_rejected(kind, name, ok):
    spec = {"AvatarDeployment": AVD, "AvatarModelCache": AMC}[kind]
    _, problems = S.cr_problems(cr(kind, spec, name=name))
    assert [(p.field, p.by) for p in problems] == ([] if ok else [("metadata.name", "cel")])


# -- defaults: the CRD's and spec.py's agree ---------------------------------------------------------------------
DEFAULT_FIXTURES = [
    ("AvatarDeployment", {"image": IMAGE, "modelCacheRef": "models"}),
    ("AvatarDeployment", {
        "image": IMAGE, "modelCacheRef": "models", "llm": {"apiKeySecretRef": {"name": "k", "key": "api-key"}},
        "turn": {"external": {"urls": ["turn:t.example.com:3478"]}}, "tls": {"issuerRef": {"name": "le"}},
        "ingress": {"host": "avatar.example.com"}, "pod": {}, "runtimeConfig": {},
    }),
    ("AvatarDeployment", {"image": IMAGE, "gpu": {"count": 0}, "gateway": {"parentRef": {"name": "gw"}},
                          "tls": {"secretName": "tls"}}),
    ("AvatarModelCache", {"image": IMAGE}),
    ("AvatarModelCache", {
        "image": IMAGE, "storage": {"existingClaim": "claim"}, "hub": {},
        "models": [HF, {"name": "u", "source": "url", "url": "https://h/u.bin", "sha256": SHA}],
        "avatars": [{"name": "a", "url": "https://h/a.zip", "sha256": SHA}],
    }),
]  # fmt: skip


def without_empty(value: Any) -> Any:
    """Absent, null, {} and [] mean the same to spec.py (default_factory) and to the CRD (no default needed)."""
    if isinstance(value, dict):
        cleaned = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


@pytest.mark.parametrize(("kind", "spec"), DEFAULT_FIXTURES)
def test_crd_defaults_equal_spec_py_defaults(kind, spec):
    by_crd = S.apply_defaults(spec_schema(kind), spec)
    by_spec_py = PARSERS[kind](spec).model_dump(by_alias=True, exclude_none=True)
    assert without_empty(by_crd) == without_empty(by_spec_py)
    assert S.validate_cr(cr(kind, spec))["spec"] == by_crd


def present_paths(value: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = {path}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= present_paths(item, (*path, key))
    elif isinstance(value, list):
        for item in value:
            found |= present_paths(item, (*path, "[]"))
    return found


@pytest.mark.parametrize("kind", KINDS.values())
def test_the_fixtures_reach_every_crd_default(kind):
    """So the comparison above covers every default the CRD declares (a new one must be added to the fixtures)."""
    declared = {path for path, node in schema_nodes(spec_schema(kind)) if "default" in node}
    reached = set().union(
        *(present_paths(S.apply_defaults(spec_schema(k), s)) for k, s in DEFAULT_FIXTURES if k == kind)
    )
    assert declared and declared <= reached, declared - reached


# -- the CRD's schema mirrors spec.py's models field by field ------------------------------------------------------
CONSTRAINTS = ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern")
# Where a structural schema cannot say what pydantic says: a string-or-map field has no type in a CRD.
UNTYPED_UNIONS = {"AvatarModelCache": {"models.[].sha256"}, "AvatarDeployment": set()}


def _py(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON-schema node with $ref resolved and Optional[...] unwrapped."""
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _py({**rest, **options[0]}, defs)
        return {**rest, "anyOf": options}
    return node


def mirror_differences(py: dict[str, Any], crd: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    description = py.get("description")  # the field's own, not a model class docstring reached through $ref
    py = _py(py, defs)
    if "anyOf" in py:
        ok = "type" not in crd and crd.get("x-kubernetes-preserve-unknown-fields")
        return [] if ok else [f"{path}: a union in spec.py must be untyped + preserve-unknown-fields in the CRD"]
    diffs = [f"{path}: {k} spec.py={py.get(k)!r} crd={crd.get(k)!r}" for k in CONSTRAINTS if py.get(k) != crd.get(k)]
    if py.get("default") is not None and py["default"] != crd.get("default"):
        diffs.append(f"{path}: default spec.py={py['default']!r} crd={crd.get('default')!r}")
    if description and description not in crd.get("description", ""):
        diffs.append(f"{path}: description should include spec.py's {description!r}")
    if py.get("type") == "object":
        if "properties" in py:
            names, crd_names = set(py["properties"]), set(crd.get("properties", {}))
            diffs += [f"{path}.{n}: only in spec.py" for n in sorted(names - crd_names)]
            diffs += [f"{path}.{n}: only in the CRD" for n in sorted(crd_names - names)]
            if set(py.get("required", [])) != set(crd.get("required", [])):
                diffs.append(f"{path}: required spec.py={py.get('required')} crd={crd.get('required')}")
            for name in (n for n in py["properties"] if n in crd_names):
                diffs += mirror_differences(py["properties"][name], crd["properties"][name], defs, f"{path}.{name}")
        elif isinstance(py.get("additionalProperties"), dict) and py["additionalProperties"]:
            diffs += mirror_differences(py["additionalProperties"], crd.get("additionalProperties", {}), defs,
                                        f"{path}.{{}}")  # fmt: skip
        elif not crd.get("x-kubernetes-preserve-unknown-fields"):
            diffs.append(f"{path}: free-form in spec.py, so x-kubernetes-preserve-unknown-fields in the CRD")
    if py.get("type") == "array":
        diffs += mirror_differences(py.get("items", {}), crd.get("items", {}), defs, f"{path}.[]")
    return diffs


@pytest.mark.parametrize("kind", KINDS.values())
def test_crd_schema_mirrors_spec_py(kind):
    py = MODELS[kind].model_json_schema(by_alias=True, mode="validation")
    diffs = mirror_differences(py, spec_schema(kind), py.get("$defs", {}), "spec")
    assert diffs == []
    untyped = {".".join(path) for path, node in schema_nodes(spec_schema(kind)) if "type" not in node}
    assert untyped == UNTYPED_UNIONS[kind]


def test_mirror_check_sees_a_drifted_bound():
    py = AvatarDeploymentSpec.model_json_schema(by_alias=True, mode="validation")
    drifted = copy.deepcopy(spec_schema("AvatarDeployment"))
    drifted["properties"]["gpu"]["properties"]["count"]["maximum"] = 8
    drifted["properties"]["tts"]["properties"]["engine"]["enum"].append("piper")
    assert mirror_differences(py, drifted, py["$defs"], "spec") == [
        "spec.gpu.count: maximum spec.py=16 crd=8",
        "spec.tts.engine: enum spec.py=['edge', 'cosyvoice', 'espeak'] crd=['edge', 'cosyvoice', 'espeak', 'piper']",
    ]


# -- status: what the operator writes fits ------------------------------------------------------------------------
def test_status_in_metav1_condition_shape_is_accepted_and_a_bad_one_is_not():
    status = {
        "observedGeneration": 3, "replicas": 2, "readyReplicas": 1, "activeSessions": 3, "capacity": 4,
        "url": "https://avatar.example.com/",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "CacheNotReady", "message": "waiting for avatar-models",
             "lastTransitionTime": "2025-01-02T03:04:05Z", "observedGeneration": 3},
            {"type": "ModelsReady", "status": "Unknown", "reason": "Pending", "message": "",
             "lastTransitionTime": "2025-01-02T03:04:05+00:00"},
        ],
    }  # fmt: skip
    ok = {**cr("AvatarDeployment", AVD), "status": status}
    assert S.validate_cr(ok)["status"] == status
    bad_conditions = [
        ({"status": "Maybe"}, "status.conditions.0.status"),
        ({"reason": "cache not ready"}, "status.conditions.0.reason"),
        ({"lastTransitionTime": "yesterday"}, "status.conditions.0.lastTransitionTime"),
        ({"message": None}, "status.conditions.0.message"),
    ]
    for change, field in bad_conditions:
        bad = copy.deepcopy(ok)
        bad["status"]["conditions"][0].update(change)
        assert field in {p.field for p in S.cr_problems(bad)[1]}, change
    stray = {**ok, "status": {**status, "kopf": {"progress": {}}}}  # kopf keeps its progress in annotations
    assert "status.kopf" in {p.field for p in S.cr_problems(stray)[1]}
    twice = copy.deepcopy(ok)
    twice["status"]["conditions"][1]["type"] = "Ready"
    assert "status.conditions.1" in {p.field for p in S.cr_problems(twice)[1]}
    cache_status = {"claimName": "avatar-models-models", "jobName": "avatar-models-pull-0123abcd", "conditions": []}
    assert S.validate_cr({**cr("AvatarModelCache", AMC), "status": cache_status})["status"] == cache_status


# -- the helpers other tests use --------------------------------------------------------------------------------
def test_validate_builtin_is_strict_cached_and_never_silent():
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "avatar-runtime", "namespace": "demo"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "runtime", "image": IMAGE}]}}},
    }  # fmt: skip
    S.validate_builtin(deployment)
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(S.Invalid, match="imagePullPolice"):
        S.validate_builtin(typo)
    for unknown in ({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"},
                    {"apiVersion": "apps.example.com/v1", "kind": "Deployment"}):  # fmt: skip
        with pytest.raises(KeyError):
            S.validate_builtin({**unknown, "metadata": {"name": "x"}})
    started = time.perf_counter()
    for _ in range(50):
        S.validate_builtin(deployment)
    assert time.perf_counter() - started < 1.0  # kubernetes-validate itself takes ~9 ms per object


CERTIFICATE = {
    "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "avatar-tls", "namespace": "demo"},
    "spec": {"secretName": "avatar-tls", "dnsNames": ["avatar.example.com"],
             "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer", "group": "cert-manager.io"},
             "duration": "2160h", "renewBefore": "360h", "privateKey": {"rotationPolicy": "Always"}},
}  # fmt: skip
HTTPROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": "avatar", "namespace": "demo"},
    "spec": {"parentRefs": [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}],
             "hostnames": ["avatar.example.com"],
             "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": [{"name": "avatar", "port": 80}], "timeouts": {"request": "3600s"}}]},
}  # fmt: skip
SCALEDOBJECT = {
    "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "avatar", "namespace": "demo"},
    "spec": {"scaleTargetRef": {"name": "avatar-runtime"}, "minReplicaCount": 1, "maxReplicaCount": 4,
             "triggers": [{"type": "prometheus", "metadata": {"serverAddress": "http://prometheus:9090",
                                                              "query": "sum(avatar_sessions)", "threshold": "3"}}]},
}  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "change", "field", "by"),
    [
        (CERTIFICATE, lambda s: s.pop("issuerRef"), "spec.issuerRef", "schema"),
        (CERTIFICATE, lambda s: s.update(dnsName=["a"]), "spec.dnsName", "schema"),
        (CERTIFICATE, lambda s: s.update(duration="90d"), "spec.duration", "schema"),
        (CERTIFICATE, lambda s: s["privateKey"].update(rotationPolicy="Sometimes"), "spec.privateKey.rotationPolicy",
         "schema"),
        (HTTPROUTE, lambda s: s["rules"][0]["backendRefs"][0].pop("port"), "spec.rules.0.backendRefs.0", "cel"),
        (HTTPROUTE, lambda s: s["rules"][0].update(timeouts={"request": "1 hour"}), "spec.rules.0.timeouts.request",
         "schema"),
        (HTTPROUTE, lambda s: s.update(hostnames=["Avatar.example.com"]), "spec.hostnames.0", "schema"),
        (HTTPROUTE, lambda s: s["parentRefs"][0].update(port=0), "spec.parentRefs.0.port", "schema"),
        (SCALEDOBJECT, lambda s: s["triggers"][0]["metadata"].update(threshold=3), "spec.triggers.0.metadata.threshold",
         "schema"),
        (SCALEDOBJECT, lambda s: s.pop("scaleTargetRef"), "spec.scaleTargetRef", "schema"),
    ],
    ids=["cert-no-issuer", "cert-typo", "cert-duration", "cert-rotation", "route-backend-port", "route-timeout",
         "route-hostname", "route-parent-port", "keda-int-metadata", "keda-no-target"],
)  # fmt: skip
def test_vendored_schemas_accept_a_good_manifest_and_catch_mistakes(manifest, change, field, by):
    defaulted = S.validate_manifest(copy.deepcopy(manifest))
    if manifest is HTTPROUTE:  # upstream's defaults apply, as the API server would fill them
        assert (
            defaulted["spec"]["parentRefs"][0]["group"],
            defaulted["spec"]["parentRefs"][0]["kind"],
            defaulted["spec"]["rules"][0]["backendRefs"][0]["kind"],
            defaulted["spec"]["rules"][0]["backendRefs"][0]["weight"],
        ) == ("gateway.networking.k8s.io", "Gateway", "Service", 1)
    bad = copy.deepcopy(manifest)
    change(bad["spec"])
    _, problems = S.cr_problems(bad)
    assert (field, by) in {(p.field, p.by) for p in problems}, problems


def test_metadata_of_custom_objects_is_checked_as_object_meta():
    bad = cr("AvatarDeployment", AVD)
    bad["metadata"]["labels"] = {"tier": 1}
    assert ("metadata.labels.tier", "kubernetes") in {(p.field, p.by) for p in S.cr_problems(bad)[1]}
