"""Offline validation for the operator tests: our CRDs (schema + CEL), built-in kinds, and third-party kinds.

No API server can run here, so this module does what one would do to an object on create
(../shared/notes/operator-testing.md has the measured facts):

- `validate_cr(obj)`: custom resources, ours (crds/*.yaml) and the vendored third-party subsets below. Like the
  API server it prunes nulls of non-nullable fields, applies the schema's defaults, checks the structural schema
  (translated to Draft-7 jsonschema with strict field validation: unknown fields are errors, as with `kubectl
  apply`'s default --validate=strict) and list-map key uniqueness, then evaluates every `x-kubernetes-validations`
  CEL rule with cel-python against `self` = the object at the rule's level. Returns the defaulted object.
- `validate_builtin(obj)`: Kubernetes kinds, with kubernetes-validate's strict schemas for `K8S_VERSION`
  (validators cached; kubernetes-validate itself re-reads the files on every call). A kind without a schema is
  an error here: kubernetes-validate's CLI passes such objects silently.
- `validate_manifest(obj)`: routes to one of the two.
- `CERTIFICATE_SCHEMA`, `HTTPROUTE_SCHEMA`, `SCALEDOBJECT_SCHEMA`: subsets of cert-manager's Certificate, Gateway
  API's HTTPRoute and KEDA's ScaledObject, written as data from the real CRDs' field names (the fields a builder
  may set are typed with the upstream bounds; the rest exist but are loose), in the CRD dialect so that they go
  through the same pipeline. Every field the real CRDs have at the typed levels is listed, so a typo is caught.

Each check returns `Problem`s naming the dotted field (spec.gpu.count), the way `avatar_operator.spec.SpecError`
names it, so tests can compare the two.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from packaging.version import Version
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
EXAMPLES_DIR = REPO / "operator" / "examples"
K8S_VERSION = "1.30.0"  # what manifests are checked against (the CRDs need >= 1.28: CEL rules' fieldPath/reason)

# Formats the API server knows (apiextensions JSONSchemaProps.format); anything else is silently ignored there.
K8S_FORMATS = frozenset(
    "bsonobjectid uri email hostname ipv4 ipv6 cidr mac uuid uuid3 uuid4 uuid5 isbn isbn10 isbn13 creditcard ssn "
    "hexcolor rgbcolor byte password date duration datetime date-time int32 int64 float double".split()
)
_PASSTHROUGH = (
    "description", "enum", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties",
)  # fmt: skip
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@dataclass(frozen=True)
class Problem:
    field: str  # dotted path from the object's root: spec.models.0.url
    message: str
    by: str  # "schema" | "cel" | "kubernetes"

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.by}]"


class Invalid(AssertionError):
    """An object the API server would reject; `problems` says where and why."""

    def __init__(self, what: str, problems: list[Problem]) -> None:
        super().__init__(f"{what} is invalid:\n  " + "\n  ".join(map(str, problems)))
        self.problems = problems


def dotted(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


# -- our CRDs and the vendored schemas ---------------------------------------------------------------------------
@cache
def crd_documents() -> dict[str, dict[str, Any]]:
    """crds/*.yaml by kind (AvatarDeployment, AvatarModelCache)."""
    docs = [yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))]
    return {doc["spec"]["names"]["kind"]: doc for doc in docs}


@cache
def _custom_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → openAPIV3Schema, for every served version of our CRDs plus the vendored subsets."""
    schemas = {
        ("cert-manager.io/v1", "Certificate"): CERTIFICATE_SCHEMA,
        ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTPROUTE_SCHEMA,
        ("keda.sh/v1alpha1", "ScaledObject"): SCALEDOBJECT_SCHEMA,
    }
    for kind, doc in crd_documents().items():
        for version in doc["spec"]["versions"]:
            schemas[f"{doc['spec']['group']}/{version['name']}", kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    try:
        return _custom_schemas()[api_version, kind]
    except KeyError:
        raise KeyError(f"no CRD schema for {kind} {api_version} (ours: crds/; vendored: schemas.py)") from None


# -- structural schema → Draft-7 jsonschema ----------------------------------------------------------------------
def to_jsonschema(node: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """Translate one structural-schema node (and its children) to Draft-7 (notes: "CRD schema translation")."""
    out = {key: node[key] for key in _PASSTHROUGH if key in node}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
    if "properties" in node:
        out["properties"] = {name: to_jsonschema(sub, root=False) for name, sub in node["properties"].items()}
        if root and "metadata" in out["properties"]:
            # The API server validates ObjectMeta itself (checked against the Kubernetes schema in `_problems`).
            out["properties"]["metadata"] = {"type": "object"}
    if "required" in node:
        out["required"] = list(node["required"])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = to_jsonschema(extra, root=False)
    elif node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
        out["additionalProperties"] = False  # unknown fields: an error under strict field validation
    if "items" in node:
        out["items"] = to_jsonschema(node["items"], root=False)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if node.get("x-kubernetes-list-type") == "map":
        out["x-kubernetes-list-map-keys"] = list(node["x-kubernetes-list-map-keys"])
    for junctor in ("allOf", "anyOf", "oneOf"):
        if junctor in node:
            out.setdefault("allOf", []).append({junctor: [to_jsonschema(s, root=False) for s in node[junctor]]})
    if "not" in node:
        out["not"] = to_jsonschema(node["not"], root=False)
    return out


def _unique_map_keys(validator: Any, keys: list[str], instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """x-kubernetes-list-type: map — the API server rejects two items with the same key."""
    if not validator.is_type(instance, "array"):
        return
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(instance):
        if isinstance(item, dict):
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(
                    f"duplicate entry with {dict(zip(keys, key, strict=True))}", path=[index]
                )
            seen.setdefault(key, index)


_FORMATS = jsonschema.FormatChecker(())
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@_FORMATS.checks("date-time")
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return bool(_RFC3339.match(value)) and datetime.fromisoformat(value.replace("z", "Z")) is not None


@_FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


_Draft7 = jsonschema.validators.extend(jsonschema.Draft7Validator, {"x-kubernetes-list-map-keys": _unique_map_keys})


def jsonschema_validator(node: dict[str, Any], *, root: bool = True) -> Any:
    """A Draft-7 validator for one structural-schema node (formats and list-map keys checked as the server does)."""
    return _Draft7(to_jsonschema(node, root=root), format_checker=_FORMATS)


@cache
def _draft7(api_version: str, kind: str) -> Any:
    return jsonschema_validator(crd_schema(api_version, kind))


# -- what the API server does before validating --------------------------------------------------------------------
def _child(schema: dict[str, Any], key: str | int) -> dict[str, Any] | None:
    if isinstance(key, int):
        return schema.get("items")
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of `value` with nulls of non-nullable fields dropped and the schema's defaults filled in, recursively
    (defaults inside a defaulted `{}` apply too), as the API server does on decode."""
    if isinstance(value, list):
        sub = schema.get("items") or {}
        return [apply_defaults(sub, item) for item in value]
    if not isinstance(value, dict):
        return copy.deepcopy(value)
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = _child(schema, key)
        if item is None and sub is not None and not sub.get("nullable"):
            continue
        out[key] = apply_defaults(sub or {}, item)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = apply_defaults(sub, copy.deepcopy(sub["default"]))
    return out


# -- CEL ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleSite:
    path: tuple[str, ...]  # schema location: property names, "[]" for list items, "{}" for map values
    rule: str
    message: str
    field_path: str | None
    reason: str | None
    node: dict[str, Any]  # the schema node the rule sits on (`self`)


def rule_sites(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[RuleSite]:
    """Every `x-kubernetes-validations` rule in a schema, with where it sits."""
    sites = [
        RuleSite(path, r["rule"], r.get("message", f"failed rule: {r['rule']}"), r.get("fieldPath"), r.get("reason"),
                 schema)
        for r in schema.get("x-kubernetes-validations", [])
    ]  # fmt: skip
    for name, sub in schema.get("properties", {}).items():
        sites += rule_sites(sub, (*path, name))
    if isinstance(schema.get("items"), dict):
        sites += rule_sites(schema["items"], (*path, "[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        sites += rule_sites(schema["additionalProperties"], (*path, "{}"))
    return sites


_CEL = celpy.Environment()


@cache
def cel_program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def evaluate_rule(rule: str, value: Any) -> bool | str:
    """True, False, or the evaluation error (which the API server reports as a rejection too)."""
    try:
        result = cel_program(rule).evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError as exc:
        return f"evaluation error: {exc.args[0] if exc.args else exc}"
    if isinstance(result, celpy.CELEvalError):
        return f"evaluation error: {result.args[0] if result.args else result}"
    if not isinstance(result, celtypes.BoolType):
        return f"rule returned {type(result).__name__}, not a bool"
    return bool(result)


Seen = set[tuple[tuple[str, ...], str]]


def cel_problems(
    schema: dict[str, Any], value: Any, path: tuple[Any, ...] = (), *, seen: Seen | None = None,
    _schema_path: tuple[str, ...] = (),
) -> list[Problem]:  # fmt: skip
    """Evaluate every rule wherever its schema node has a value; `seen` collects (schema path, rule) evaluated."""
    if value is None:
        return []
    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        if seen is not None:
            seen.add((_schema_path, rule["rule"]))
        verdict = evaluate_rule(rule["rule"], value)
        if verdict is not True:
            where = (*path, *filter(None, (rule.get("fieldPath") or "").split(".")))
            message = rule.get("message", f"failed rule: {rule['rule']}")
            problems.append(Problem(dotted(where), message if verdict is False else f"{message} ({verdict})", "cel"))
    if isinstance(value, dict):
        for key, item in value.items():
            sub = _child(schema, key)
            step = key if key in schema.get("properties", {}) else "{}"
            if sub is not None:
                problems += cel_problems(sub, item, (*path, key), seen=seen, _schema_path=(*_schema_path, step))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += cel_problems(
                schema["items"], item, (*path, index), seen=seen, _schema_path=(*_schema_path, "[]")
            )
    return problems


# -- custom resources --------------------------------------------------------------------------------------------
def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    """Name the field the way pydantic does: a missing or unknown field is named itself, not its parent object."""
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        parts += [k for k in error.validator_value if k not in error.instance][:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        parts += sorted(k for k in error.instance if k not in known)[:1]
    return Problem(dotted(parts), error.message, "schema")


def schema_problems(obj: dict[str, Any]) -> list[Problem]:
    """Structural-schema problems of an already defaulted custom resource (no CEL)."""
    validator = _draft7(obj.get("apiVersion", ""), obj.get("kind", ""))
    problems = [_schema_problem(e) for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))]
    if isinstance(obj.get("metadata"), dict):
        problems += definition_problems(OBJECT_META, obj["metadata"], ("metadata",))
    return problems


def cr_problems(obj: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """(the defaulted object, every schema and CEL problem) — what `kubectl apply` of `obj` would hit."""
    schema = crd_schema(obj.get("apiVersion", ""), obj.get("kind", ""))
    defaulted = apply_defaults(schema, obj)
    return defaulted, schema_problems(defaulted) + cel_problems(schema, defaulted)


def validate_cr(obj: dict[str, Any]) -> dict[str, Any]:
    """The defaulted object if the API server would accept it, else `Invalid`."""
    defaulted, problems = cr_problems(obj)
    if problems:
        raise Invalid(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}", problems)
    return defaulted


# -- built-in kinds (kubernetes-validate) ------------------------------------------------------------------------
def _is_builtin_group(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return group in ("", "apps", "batch", "autoscaling", "policy") or group.endswith(".k8s.io")


@cache
def _schema_dir(version: str) -> Any:
    """kubernetes-validate's strict schemas for the newest Kubernetes minor not newer than `version`."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    wanted = Version(version)
    suffix = "-local-strict"
    known = sorted((Version(p.name[1:].removesuffix(suffix)), p) for p in root.iterdir() if p.name.endswith(suffix))
    candidates = [p for v, p in known if (v.major, v.minor) <= (wanted.major, wanted.minor)]
    if not candidates:
        raise KeyError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    return candidates[-1]


@cache
def _registry(version: str) -> Registry:
    definitions = json.loads((_schema_dir(version) / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@cache
def _builtin_validator(version: str, api_version: str, kind: str) -> Any:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # apps/v1 → apps-v1, core v1 stays v1
    path = _schema_dir(version) / f"{kind.lower()}-{group_version}.json"
    if not _is_builtin_group(api_version) or not path.is_file():
        raise KeyError(f"no Kubernetes {version} schema for {kind} {api_version}")
    schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(schema) @ _registry(version))


@cache
def _definition_validator(version: str, name: str) -> Any:
    schema = {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=_registry(version))


def definition_problems(
    name: str, value: Any, path: tuple[Any, ...] = (), version: str = K8S_VERSION
) -> list[Problem]:  # fmt: skip
    """Check one value against a Kubernetes type, e.g. io.k8s.api.core.v1.Toleration (strict)."""
    errors = _definition_validator(version, name).iter_errors(value)
    return [Problem(dotted((*path, *e.absolute_path)), e.message, "kubernetes") for e in errors]


def builtin_problems(obj: dict[str, Any], version: str = K8S_VERSION) -> list[Problem]:
    validator = _builtin_validator(version, obj.get("apiVersion", ""), obj.get("kind", ""))
    return [Problem(dotted(e.absolute_path), e.message, "kubernetes") for e in validator.iter_errors(obj)]


def validate_builtin(obj: dict[str, Any], version: str = K8S_VERSION) -> None:
    """`Invalid` unless `obj` passes the strict schema of its built-in kind; `KeyError` for a kind without one."""
    problems = builtin_problems(obj, version)
    if problems:
        raise Invalid(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}", problems)


def validate_manifest(obj: dict[str, Any]) -> dict[str, Any]:
    """Any manifest the operator produces or reads: custom kinds via their CRD schema, the rest via Kubernetes'."""
    if (obj.get("apiVersion"), obj.get("kind")) in _custom_schemas():
        return validate_cr(obj)
    validate_builtin(obj)
    return obj


# -- vendored third-party schemas (subsets, CRD dialect) ---------------------------------------------------------
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_ROOT = """
type: object
required: [spec]
properties:
  apiVersion: {type: string}
  kind: {type: string}
  metadata: {type: object}
  status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


_LOOSE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def vendored_schema(spec: str | dict[str, Any]) -> dict[str, Any]:
    """The root of a CRD schema around `spec`, YAML text or already parsed (the chart tests assemble theirs from
    parts): the value LOOSE marks a field we do not type, DNS_SUBDOMAIN (in text) the name pattern."""
    if isinstance(spec, str):
        spec = yaml.safe_load(spec.replace("DNS_SUBDOMAIN", _DNS_SUBDOMAIN))
    schema = yaml.safe_load(_ROOT)
    schema["properties"]["spec"] = _untyped_where_loose(spec)
    return schema


def _untyped_where_loose(node: Any) -> Any:
    if node == "LOOSE":
        return dict(_LOOSE)
    if isinstance(node, dict):
        return {key: _untyped_where_loose(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_untyped_where_loose(value) for value in node]
    return node


# cert-manager.io/v1 Certificate (cert-manager v1.15 deploy/crds/crd-certificates.yaml, spec).
CERTIFICATE_SCHEMA = vendored_schema("""
type: object
required: [issuerRef, secretName]
properties:
  secretName: {type: string, minLength: 1}
  dnsNames: {type: array, items: {type: string}}
  commonName: {type: string}
  duration: {type: string, pattern: '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'}
  renewBefore: {type: string, pattern: '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'}
  renewBeforePercentage: {type: integer, format: int32}
  issuerRef:
    type: object
    required: [name]
    properties:
      name: {type: string}
      kind: {type: string}
      group: {type: string}
  privateKey:
    type: object
    properties:
      algorithm: {type: string, enum: [RSA, ECDSA, Ed25519]}
      encoding: {type: string, enum: [PKCS1, PKCS8]}
      rotationPolicy: {type: string, enum: [Never, Always]}
      size: {type: integer}
  secretTemplate:
    type: object
    properties:
      annotations: {type: object, additionalProperties: {type: string}}
      labels: {type: object, additionalProperties: {type: string}}
  usages:
    type: array
    items:
      type: string
      enum: [signing, digital signature, content commitment, key encipherment, key agreement, data encipherment,
             cert sign, crl sign, encipher only, decipher only, any, server auth, client auth, code signing,
             email protection, s/mime, ipsec end system, ipsec tunnel, ipsec user, timestamping, ocsp signing,
             microsoft sgc, netscape sgc]
  ipAddresses: {type: array, items: {type: string}}
  uris: {type: array, items: {type: string}}
  emailAddresses: {type: array, items: {type: string}}
  isCA: {type: boolean}
  encodeUsagesInRequest: {type: boolean}
  revisionHistoryLimit: {type: integer, format: int32, minimum: 1}
  literalSubject: {type: string}
  subject: LOOSE
  keystores: LOOSE
  additionalOutputFormats: {type: array, items: LOOSE}
  nameConstraints: LOOSE
  otherNames: {type: array, items: LOOSE}
""")

# gateway.networking.k8s.io/v1 HTTPRoute (Gateway API v1.1 standard channel, spec), defaults and bounds upstream's.
HTTPROUTE_SCHEMA = vendored_schema("""
type: object
properties:
  parentRefs:
    type: array
    maxItems: 32
    items:
      type: object
      required: [name]
      properties:
        group: {type: string, maxLength: 253, pattern: '^$|DNS_SUBDOMAIN', default: gateway.networking.k8s.io}
        kind: {type: string, minLength: 1, maxLength: 63, pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$',
               default: Gateway}
        namespace: {type: string, minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'}
        name: {type: string, minLength: 1, maxLength: 253}
        sectionName: {type: string, minLength: 1, maxLength: 253, pattern: 'DNS_SUBDOMAIN'}
        port: {type: integer, format: int32, minimum: 1, maximum: 65535}
  hostnames:
    type: array
    maxItems: 16
    items: {type: string, minLength: 1, maxLength: 253,
            pattern: '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'}
  rules:
    type: array
    maxItems: 16
    default: [{matches: [{path: {type: PathPrefix, value: /}}]}]
    items:
      type: object
      properties:
        matches:
          type: array
          maxItems: 8
          default: [{path: {type: PathPrefix, value: /}}]
          items:
            type: object
            properties:
              path:
                type: object
                default: {type: PathPrefix, value: /}
                properties:
                  type: {type: string, enum: [Exact, PathPrefix, RegularExpression], default: PathPrefix}
                  value: {type: string, maxLength: 1024, default: /}
              headers: {type: array, maxItems: 16, items: LOOSE}
              queryParams: {type: array, maxItems: 16, items: LOOSE}
              method: {type: string, enum: [GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH]}
        filters:
          type: array
          maxItems: 16
          items:
            type: object
            required: [type]
            x-kubernetes-preserve-unknown-fields: true
            properties:
              type: {type: string, enum: [RequestHeaderModifier, ResponseHeaderModifier, RequestMirror,
                                          RequestRedirect, URLRewrite, ExtensionRef]}
        backendRefs:
          type: array
          maxItems: 16
          items:
            type: object
            required: [name]
            x-kubernetes-validations:
              - rule: "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true"
                message: Must have port for Service reference
            properties:
              group: {type: string, maxLength: 253, pattern: '^$|DNS_SUBDOMAIN', default: ""}
              kind: {type: string, minLength: 1, maxLength: 63, pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$',
                     default: Service}
              name: {type: string, minLength: 1, maxLength: 253}
              namespace: {type: string, minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'}
              port: {type: integer, format: int32, minimum: 1, maximum: 65535}
              weight: {type: integer, format: int32, minimum: 0, maximum: 1000000, default: 1}
              filters: {type: array, maxItems: 16, items: LOOSE}
        timeouts:
          type: object
          properties:
            request: {type: string, pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$'}
            backendRequest: {type: string, pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$'}
        sessionPersistence: LOOSE
        retry: LOOSE
        name: {type: string, minLength: 1, maxLength: 253, pattern: 'DNS_SUBDOMAIN'}
""")

# autoscaling/v2 HPAScalingRules as KEDA's CRD embeds it (advanced.horizontalPodAutoscalerConfig.behavior): the
# three policy fields required and int32; the bounds (value > 0, periodSeconds 1..1800, window 0..3600) are the
# Kubernetes API's, which the HPA KEDA creates is validated against, so they are stated here too.
_SCALING_RULES = """
type: object
properties:
  stabilizationWindowSeconds: {type: integer, format: int32, minimum: 0, maximum: 3600}
  selectPolicy: {type: string, enum: [Max, Min, Disabled]}
  tolerance: {x-kubernetes-int-or-string: true}
  policies:
    type: array
    items:
      type: object
      required: [type, value, periodSeconds]
      properties:
        type: {type: string, enum: [Pods, Percent]}
        value: {type: integer, format: int32, minimum: 1}
        periodSeconds: {type: integer, format: int32, minimum: 1, maximum: 1800}
"""

# keda.sh/v1alpha1 ScaledObject (KEDA 2.14 config/crd/bases/keda.sh_scaledobjects.yaml, spec).
SCALEDOBJECT_SCHEMA = vendored_schema("""
type: object
required: [scaleTargetRef, triggers]
properties:
  scaleTargetRef:
    type: object
    required: [name]
    properties:
      apiVersion: {type: string}
      kind: {type: string}
      name: {type: string}
      envSourceContainerName: {type: string}
  minReplicaCount: {type: integer, format: int32}
  maxReplicaCount: {type: integer, format: int32}
  idleReplicaCount: {type: integer, format: int32}
  pollingInterval: {type: integer, format: int32}
  cooldownPeriod: {type: integer, format: int32}
  initialCooldownPeriod: {type: integer, format: int32}
  advanced:
    type: object
    properties:
      horizontalPodAutoscalerConfig:
        type: object
        properties:
          name: {type: string}
          behavior:
            type: object
            properties:
              scaleUp: {type: object}  # _SCALING_RULES, below
              scaleDown: {type: object}
      restoreToOriginalReplicaCount: {type: boolean}
      scalingModifiers: LOOSE
  fallback: LOOSE
  triggers:
    type: array
    items:
      type: object
      required: [type, metadata]
      properties:
        type: {type: string}
        name: {type: string}
        metadata: {type: object, additionalProperties: {type: string}}
        metricType: {type: string, enum: [AverageValue, Value, Utilization]}
        useCachedMetrics: {type: boolean}
        authenticationRef:
          type: object
          required: [name]
          properties:
            name: {type: string}
            kind: {type: string}
""")
_BEHAVIOR = SCALEDOBJECT_SCHEMA["properties"]["spec"]["properties"]["advanced"]["properties"]
_BEHAVIOR = _BEHAVIOR["horizontalPodAutoscalerConfig"]["properties"]["behavior"]["properties"]
_BEHAVIOR["scaleUp"] = yaml.safe_load(_SCALING_RULES)
_BEHAVIOR["scaleDown"] = yaml.safe_load(_SCALING_RULES)
