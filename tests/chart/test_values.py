"""The chart's values: values.yaml, values.schema.json and tests/chart/values-all.yaml agree, every value is documented,
`helm lint --strict` passes, and bad values are refused by helm with a message that names the offending key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .helm import CHART, VALUES_ALL, helm, template_error

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
# Values that are Kubernetes types passed to the pod spec as they are: their own keys (requests, nodeAffinity...) are
# Kubernetes' fields, not chart options (the schema still closes their first level; test_render.py validates the
# rendered pod against Kubernetes' schema, which checks the rest).
KUBERNETES_TYPES = ("operator.affinity", "operator.resources")


def schema_keys(node: dict[str, Any], path: str = "") -> Iterator[str]:
    """Dotted paths of every declared property (recursing into objects with declared properties)."""
    for key, sub in (node.get("properties") or {}).items():
        yield f"{path}{key}"
        if f"{path}{key}" not in KUBERNETES_TYPES:
            yield from schema_keys(sub, f"{path}{key}.")


def value_keys(values: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Dotted paths of the keys of `values` at the levels where the schema declares properties (not inside maps
    such as nodeSelector or resources.requests, whose keys are data)."""
    if not isinstance(values, dict) or "properties" not in schema or path.rstrip(".") in KUBERNETES_TYPES:
        return
    for key, value in values.items():
        yield f"{path}{key}"
        yield from value_keys(value, schema["properties"].get(key, {}), f"{path}{key}.")


def object_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if node.get("type") == "object":
        yield path, node
    for key, sub in (node.get("properties") or {}).items():
        yield from object_nodes(sub, f"{path}.{key}".lstrip("."))
    if isinstance(node.get("items"), dict):
        yield from object_nodes(node["items"], f"{path}[]")


def test_lint_strict_passes_with_the_defaults_and_with_every_option_set():
    for args in ([], ["-f", str(VALUES_ALL)]):
        result = helm("lint", "--strict", str(CHART), *args)
        assert result.returncode == 0 and "0 chart(s) failed" in result.stdout, result.stdout + result.stderr


def test_values_yaml_and_the_schema_declare_the_same_keys():
    in_values, in_schema = set(value_keys(VALUES, SCHEMA)), set(schema_keys(SCHEMA))
    assert in_values - in_schema == set(), "in values.yaml, missing from values.schema.json"
    assert in_schema - in_values == set(), "in values.schema.json, missing from values.yaml (undocumented)"
    assert "operator.replicas" in in_values and "examples.avatarDeployment.llm.apiKeySecret" in in_values


def test_values_all_sets_every_option():
    """tests/chart/values-all.yaml names every key of values.yaml (the "every option set" render)."""
    every = yaml.safe_load(VALUES_ALL.read_text())
    assert set(value_keys(every, SCHEMA)) == set(value_keys(VALUES, SCHEMA))


def test_the_schema_closes_every_object_and_requires_every_key():
    """Unknown keys are errors at every level (additionalProperties: false, or a typed map such as nodeSelector);
    every key of values.yaml is required, so `--set x=null` (which deletes a default) is refused too."""
    for path, node in object_nodes(SCHEMA):
        if path.startswith(tuple(f"{t}." for t in KUBERNETES_TYPES)):
            continue
        extra = node.get("additionalProperties")
        assert extra is False or isinstance(extra, dict), f"{path or '(root)'}: unknown keys would pass"
        if extra is False and path not in KUBERNETES_TYPES and not path.endswith("[]"):
            assert set(node.get("required", [])) == set(node["properties"]), f"{path or '(root)'}: not all required"


def test_every_value_is_documented_in_a_comment_where_it_is_defined():
    """Each key of values.yaml has a comment on the lines right above it (or at the end of its line)."""
    lines = VALUES_TEXT.splitlines()
    root = yaml.compose(VALUES_TEXT)
    undocumented = []

    def walk(node: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(node, yaml.MappingNode) or "properties" not in schema or path.rstrip(".") in KUBERNETES_TYPES:
            return
        for key_node, value_node in node.value:
            line = lines[key_node.start_mark.line]
            above = lines[key_node.start_mark.line - 1].strip() if key_node.start_mark.line else ""
            if not above.startswith("#") and " # " not in line:
                undocumented.append(f"{path}{key_node.value}")
            walk(value_node, schema["properties"].get(key_node.value, {}), f"{path}{key_node.value}.")

    walk(root, SCHEMA, "")
    assert undocumented == []


BAD_VALUES = [  # (helm arguments, the message's key path, what it says)
    (["--set", "operator.replicas=0"], "'/operator/replicas'", "minimum: got 0, want 1"),
    (["--set", "operator.replicas=two"], "'/operator/replicas'", "got string, want integer"),
    (["--set", "operatr.replicas=1"], "additional properties 'operatr' not allowed", ""),
    (["--set", "operator.replica=2"], "'/operator'", "additional properties 'replica' not allowed"),
    (["--set", "metrics.podMonitor.enable=true"], "'/metrics/podMonitor'", "additional properties 'enable'"),
    (["--set", "operator.logFormat=xml"], "'/operator/logFormat'", "value must be one of 'json', 'full', 'plain'"),
    (["--set", "crds.enabled=yes"], "'/crds/enabled'", "got string, want boolean"),
    (["--set", "operator.podCIDRs=null"], "'/operator'", "missing property 'podCIDRs'"),
    (["--set", "operator.podCIDRs[0]=10.244.0.0"], "'/operator/podCIDRs/0'", "does not match pattern"),
    (["--set", "operator.watchNamespaces[0]=Team_B"], "'/operator/watchNamespaces/0'", "does not match pattern"),
    (["--set", "metrics.podMonitor.interval=15 seconds"], "'/metrics/podMonitor/interval'", "does not match"),
    (["--set", "examples.avatarDeployment.gpu=-1"], "'/examples/avatarDeployment/gpu'", "minimum: got -1, want 0"),
    (["--set", "networkPolicy.apiServerPorts={0}"], "'/networkPolicy/apiServerPorts/0'", "minimum: got 0, want 1"),
    (["--set", "networkPolicy.apiServerCIDRs={10.0.0.1}"], "'/networkPolicy/apiServerCIDRs/0'", "does not match"),
    (["--set", "examples.avatarDeployment.tlsIssuer.kind=Vault"], "'/examples/avatarDeployment/tlsIssuer/kind'",
     "value must be one of 'Issuer', 'ClusterIssuer'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "where", "what"), BAD_VALUES, ids=[" ".join(a) for a, _, _ in BAD_VALUES])
def test_bad_values_are_refused_by_the_schema_naming_the_key(args, where, what):
    message = template_error(*args)
    assert "values don't meet the specifications of the schema" in message, message
    assert where in message and what in message, message


BAD_COMBINATIONS = [  # what the schema cannot express: the templates `fail` with the fix
    (["--set", "operator.replicas=2"], "operator.replicas=2 needs operator.peering.enabled=true"),
    (["--set", "operator.image.repository="], "operator.image.repository must not be empty"),
    (["--set", "serviceAccount.create=false"], "serviceAccount.name is required when serviceAccount.create is false"),
    (["--kube-version", "1.28.0"], "chart requires kubeVersion: >=1.29.0-0"),
    (["--api-versions", "gaussianavatar.io/v1alpha1", "--set", "examples.enabled=true",
      "--set", "examples.modelCache.enabled=false"], "examples.avatarDeployment.gpu > 0 needs examples.modelCache"),
    (["--api-versions", "gaussianavatar.io/v1alpha1", "--set", "examples.enabled=true",
      "--set", "examples.avatarDeployment.tlsIssuer.name=le"], "examples.avatarDeployment.tlsIssuer needs"),
    (["--api-versions", "gaussianavatar.io/v1alpha1", "--set", "examples.enabled=true",
      "--set", "operator.watchNamespaces={team-a}"], 'examples.namespace "avatar-system" is not watched'),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_COMBINATIONS, ids=[m[:40] for _, m in BAD_COMBINATIONS])
def test_inconsistent_values_fail_with_the_fix(args, message):
    assert message in template_error(*args)
