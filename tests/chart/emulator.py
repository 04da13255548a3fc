"""The API emulator (tests/operator/conftest.py) set up the way the chart installs the operator, and its request log
read as RBAC: which (apiGroup, resource, verb) the operator used, and whether the chart's roles allow each request.

Additions over the operator tests' emulator, each for something the chart does that they do not:
- namespace mode: kopf lists and watches /api/v1/namespaces, which kmock 0.8 answers with 500 because its URL
  parser expects a namespace name after `namespaces`; `parse_namespaces_as_a_resource` fixes that parse (within a
  test), so namespace mode runs here as kopf runs it in a cluster;
- kopf's peering CRDs (from the chart's crds/) and the peering objects the chart renders;
- `ChartOperator`: the operator started with the scope and peering the chart's Deployment passes on its command line.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any, NamedTuple

import kmock
import kopf
import pytest
import yaml
from avatar_operator.cli import build_parser
from kmock._internal import parsing

from tests.operator.conftest import TEST_CONFIG, VERBS, ApiServerEmulator, RunningOperator

from .helm import CHART


class Triple(NamedTuple):
    """One RBAC permission: (apiGroup, resource[/subresource], verb)."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.group or 'core'} {self.resource} {self.verb}"


class Call(NamedTuple):
    """One request of the operator as the API server's authorizer sees it."""

    triple: Triple
    namespace: str | None  # None: cluster-scoped, or across all namespaces
    name: str | None


# -- the emulator, as the chart sets up the cluster ---------------------------------------------------------------
def parse_namespaces_as_a_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make kmock route /api/v1/namespaces[/NAME] to the cluster-scoped `namespaces` resource."""
    original = parsing.parse_path

    def parse_path(path: str) -> parsing.ParsedPath:
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
            return parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None)
        return original(path)

    monkeypatch.setattr(parsing, "parse_path", parse_path)


def add_namespaces(api: ApiServerEmulator, names: Iterable[str]) -> None:
    for name in names:
        api.objects["v1/namespaces", None, name] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def add_chart_crds(api: ApiServerEmulator) -> None:
    """The CRDs of the chart's crds/ directory (kopf's peering) as served resources, subresources as declared."""
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            api.resources[f"{spec['group']}/{version['name']}/{spec['names']['plural']}"] = kmock.ResourceInfo(
                kind=spec["names"]["kind"], namespaced=spec["scope"] == "Namespaced", verbs=VERBS,
                subresources=set(version.get("subresources") or {}),
            )  # fmt: skip


def add_objects(api: ApiServerEmulator, docs: Iterable[dict[str, Any]]) -> None:
    """Rendered objects of kinds the emulator serves from the chart (the peering objects), as `helm install` would."""
    for doc in docs:
        group_version, plural = doc["apiVersion"], doc["kind"].lower() + "s"
        api.objects[f"{group_version}/{plural}", doc["metadata"].get("namespace"), doc["metadata"]["name"]] = doc


class ChartOperator(RunningOperator):
    """The real operator, scoped (all namespaces, or a list) and peered as the chart's container args say."""

    def __init__(self, api: ApiServerEmulator, args: list[str], *, liveness: str | None = None) -> None:
        parsed = build_parser().parse_args(args)
        super().__init__(api, dataclasses.replace(TEST_CONFIG, peering=parsed.peering))
        self.namespaces: list[str] = parsed.namespace
        self.liveness = liveness  # the chart's listens on 0.0.0.0 in the pod; the tests serve it on loopback

    def _run(self, registry: kopf.OperatorRegistry) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    clusterwide=not self.namespaces,
                    namespaces=self.namespaces,
                    liveness_endpoint=self.liveness,
                    stop_flag=self.stop_flag,
                    memo=kopf.Memo(),
                )
            )
        except BaseException as exc:  # reported by stop()
            self.error = exc


# -- requests → RBAC ----------------------------------------------------------------------------------------------
def _verb(request: kmock.Request) -> str:
    method = request.method.value
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    if method == "DELETE":
        return "delete" if request.name else "deletecollection"
    return {"POST": "create", "PATCH": "patch", "PUT": "update"}[method]


def operator_calls(api: ApiServerEmulator, token: str | None = None) -> list[Call]:
    """Every resource request the operator made (it authenticates; the test, playing the user, does not), or only
    those made with bearer `token`.

    Discovery (/api, /apis, /apis/GROUP/VERSION) is left out: those are non-resource URLs that every authenticated
    user may read (the built-in system:discovery role), not something the chart grants."""
    calls = []
    for request in iter(api):
        authorization = request.headers.get("Authorization")
        if authorization is None or (token is not None and authorization != f"Bearer {token}"):
            continue
        if request.resource is None or not request.resource.plural:
            continue
        resource = request.resource.plural
        if request.subresource:
            resource += "/" + request.subresource.split("/")[0]  # pods/NAME:PORT/proxy/metrics → pods/proxy
        name = request.name.split(":")[0] if request.name else None
        triple = Triple(request.resource.group, resource, _verb(request))
        calls.append(Call(triple, request.namespace, name))
    return calls


class Rule(NamedTuple):
    triples: frozenset[Triple]
    names: frozenset[str]  # resourceNames; empty = any
    namespace: str | None  # a Role's namespace; None = a ClusterRole (bound cluster-wide)


def chart_rules(docs: list[dict[str, Any]]) -> list[Rule]:
    """The rules the chart binds to the operator's ServiceAccount (ClusterRoles via ClusterRoleBindings, Roles via
    RoleBindings), checking that every binding names that account and a role the chart renders."""
    account = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("ClusterRole", "Role")}  # fmt: skip
    rules = []
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", account)], binding
        namespace = binding["metadata"].get("namespace")
        role = roles[binding["roleRef"]["kind"], namespace if binding["roleRef"]["kind"] == "Role" else None,
                     binding["roleRef"]["name"]]  # fmt: skip
        for rule in role["rules"]:
            triples = frozenset(
                Triple(group, resource, verb)
                for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
            )  # fmt: skip
            rules.append(Rule(triples, frozenset(rule.get("resourceNames") or ()), namespace))
    return rules


def allowed(rules: list[Rule], call: Call) -> bool:
    """Whether the API server's RBAC authorizer would allow `call` under `rules`."""
    return any(
        call.triple in rule.triples
        and (rule.namespace is None or rule.namespace == call.namespace)
        and (not rule.names or call.name in rule.names)
        for rule in rules
    )


def granted(rules: list[Rule]) -> set[Triple]:
    return {triple for rule in rules for triple in rule.triples}
