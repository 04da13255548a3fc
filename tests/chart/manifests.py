"""Offline validation of everything the chart renders, kind by kind, the way an API server would check it.

- Kubernetes kinds (CRDs included, as apiextensions.k8s.io/v1 objects): kubernetes-validate's strict schemas, for
  each supported Kubernetes version (`K8S_VERSIONS`).
- Our custom resources (the examples): their CRD schema and CEL rules (tests/operator/schemas.validate_cr).
- kopf's peering objects: the schema of the CRDs in the chart's crds/ directory.
- PodMonitor / ServiceMonitor (Prometheus Operator, monitoring.coreos.com/v1): the subsets below, written as data from
  the real CRDs' field names (prometheus-operator example/prometheus-operator-crd, v0.91): every field of the levels
  we write is listed, so a typo is an unknown field; the fields we set are typed with upstream's patterns; the rest
  exist but are loose. kubernetes-validate has no schema for any custom kind (its CLI passes them silently).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from tests.operator.schemas import (
    OBJECT_META,
    Invalid,
    Problem,
    definition_problems,
    dotted,
    jsonschema_validator,
    validate_builtin,
    validate_cr,
    vendored_schema,
)

from .helm import CHART

# The chart's kubeVersion is >=1.29 (CEL rules GA); the oldest, a middle and the newest minor Helm 4.1 targets.
K8S_VERSIONS = ("1.29.0", "1.32.0", "1.35.0")

_DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_ENDPOINT_COMMON = """
authorization: LOOSE
basicAuth: LOOSE
bearerTokenSecret: LOOSE
enableHttp2: {type: boolean}
filterRunning: {type: boolean}
followRedirects: {type: boolean}
honorLabels: {type: boolean}
honorTimestamps: {type: boolean}
interval: {type: string, pattern: 'DURATION'}
metricRelabelings: {type: array, items: LOOSE}
noProxy: {type: string}
oauth2: LOOSE
params: {type: object, additionalProperties: {type: array, items: {type: string}}}
path: {type: string}
port: {type: string}
proxyConnectHeader: LOOSE
proxyFromEnvironment: {type: boolean}
proxyUrl: {type: string, pattern: '^(http|https|socks5)://.+$'}
relabelings: {type: array, items: LOOSE}
scheme: {type: string, enum: [http, https]}
scrapeTimeout: {type: string, pattern: 'DURATION'}
targetPort: {x-kubernetes-int-or-string: true}
tlsConfig: LOOSE
trackTimestampsStaleness: {type: boolean}
"""
_MONITOR_COMMON = """
attachMetadata: {type: object, properties: {node: {type: boolean}}}
bodySizeLimit: {type: string}
convertClassicHistogramsToNHCB: {type: boolean}
fallbackScrapeProtocol: {type: string}
jobLabel: {type: string}
keepDroppedTargets: {type: integer, format: int64}
labelLimit: {type: integer, format: int64}
labelNameLengthLimit: {type: integer, format: int64}
labelValueLengthLimit: {type: integer, format: int64}
namespaceSelector:
  type: object
  properties:
    any: {type: boolean}
    matchNames: {type: array, items: {type: string}}
nativeHistogramBucketLimit: {type: integer, format: int64}
nativeHistogramMinBucketFactor: {x-kubernetes-int-or-string: true}
podTargetLabels: {type: array, items: {type: string}}
sampleLimit: {type: integer, format: int64}
scrapeClass: {type: string, minLength: 1}
scrapeClassicHistograms: {type: boolean}
scrapeNativeHistograms: {type: boolean}
scrapeProtocols: {type: array, items: {type: string}}
selector:
  type: object
  properties:
    matchExpressions: {type: array, items: LOOSE}
    matchLabels: {type: object, additionalProperties: {type: string}}
selectorMechanism: {type: string, enum: [RelabelConfig, RoleSelector]}
targetLimit: {type: integer, format: int64}
"""


def _monitor_schema(endpoints_key: str, endpoint_extra: str, spec_extra: str) -> dict[str, Any]:
    def load(text: str) -> dict[str, Any]:
        return yaml.safe_load(text.replace("DURATION", _DURATION)) or {}

    endpoint = {"type": "object", "properties": {**load(_ENDPOINT_COMMON), **load(endpoint_extra)}}
    spec = {
        "type": "object",
        "required": ["selector"],
        "properties": {
            **load(_MONITOR_COMMON), **load(spec_extra), endpoints_key: {"type": "array", "items": endpoint}
        },
    }  # fmt: skip
    return vendored_schema(spec)


# monitoring.coreos.com/v1 PodMonitor and ServiceMonitor (spec), in the CRD dialect.
PODMONITOR_SCHEMA = _monitor_schema(
    "podMetricsEndpoints", "portNumber: {type: integer, format: int32, minimum: 1, maximum: 65535}", ""
)
SERVICEMONITOR_SCHEMA = _monitor_schema(
    "endpoints",
    "bearerTokenFile: {type: string}",
    "serviceDiscoveryRole: {type: string, enum: [Endpoints, EndpointSlice]}\n"
    "targetLabels: {type: array, items: {type: string}}",
)


@cache
def _kopf_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → openAPIV3Schema of the CRDs in the chart's crds/ directory (kopf's peering)."""
    schemas = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


@cache
def _validator(api_version: str, kind: str) -> Any:
    custom = {
        ("monitoring.coreos.com/v1", "PodMonitor"): PODMONITOR_SCHEMA,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICEMONITOR_SCHEMA,
        **_kopf_crd_schemas(),
    }
    return jsonschema_validator(custom[api_version, kind])


def _custom_problems(obj: dict[str, Any], version: str) -> list[Problem]:
    errors = sorted(_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj), key=lambda e: list(e.absolute_path))
    problems = [Problem(dotted(e.absolute_path), e.message, "schema") for e in errors]
    return problems + definition_problems(OBJECT_META, obj.get("metadata"), ("metadata",), version)


def validate_rendered(obj: dict[str, Any], version: str) -> None:
    """`Invalid` unless the API server of Kubernetes `version` (with the CRDs installed) would accept `obj`."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    if api_version.startswith("gaussianavatar.io/"):
        validate_cr(obj)
        return
    if api_version.startswith(("monitoring.coreos.com/", "kopf.dev/")):
        problems = _custom_problems(obj, version)
        if problems:
            raise Invalid(f"{kind}/{obj['metadata'].get('name')}", problems)
        return
    validate_builtin(obj, version)
