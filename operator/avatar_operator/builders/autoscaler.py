"""The autoscaler of the runtime Deployment for `spec.autoscaling`: a KEDA ScaledObject or an autoscaling/v2 HPA.

Both scale on the runtime's `avatar_sessions_active` gauge (DESIGN §6), averaged over the pods, against
`targetActiveSessions` — never on CPU or GPU load: a GPU pod's load says little about how many more conversations it
can take, while its session count against `sessions.concurrentLimit` says exactly that.

- engine `keda` (the default): a ScaledObject `NAME-runtime` with a Prometheus trigger; KEDA creates and owns the
  HPA behind it. The Prometheus address is the operator's (AVATAR_PROMETHEUS_SERVER_ADDRESS, the chart's
  `autoscaling.prometheusServerAddress`), the query sums the gauge over this avatar's runtime pods.
- engine `hpa`: an autoscaling/v2 HorizontalPodAutoscaler `NAME-runtime` on the Pods metric
  `avatar_sessions_active`, which a custom-metrics adapter (prometheus-adapter; docs/operator.md has its rule)
  serves from the same Prometheus series.

Scaling behaviour (both engines): up fast — no stabilisation, +100 % or +2 pods every 15 s, whichever is more —
because a GPU pod takes minutes to start and a visitor refused meanwhile is lost; down slowly — 300 s stabilisation,
then one pod per 120 s — because each removed pod drains its conversations first (deployment.py) and a
conversation pattern that dips for a minute comes back. `minReplicas` is at least 1 (spec.py): scaled to zero,
every first visitor would wait minutes and be refused.

While an autoscaler exists the operator leaves the Deployment's `replicas` to it (deployment.py leaves the field
out, kube.py never sends it as null); switching the engine or turning autoscaling off deletes the old autoscaler
(the prune step lists both kinds).
"""

from __future__ import annotations

import copy
from typing import Any

from ..spec import AvatarDeploymentSpec
from .common import Owner, child
from .deployment import COMPONENT, deployment_name

SCALED_OBJECT_API_VERSION = "keda.sh/v1alpha1"
HPA_API_VERSION = "autoscaling/v2"
METRIC = "avatar_sessions_active"
# The Service of a kube-prometheus-stack Prometheus in namespace `monitoring` (the chart's default as well).
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"
POLLING_INTERVAL_S = 15  # KEDA queries Prometheus this often (Prometheus scrapes the pods every 15 s as well)
COOLDOWN_S = 300  # KEDA: only for scaling to zero, which minReplicas >= 1 rules out; stated for clarity
# autoscaling/v2 HorizontalPodAutoscalerBehavior, shared by both engines (KEDA passes it to the HPA it makes).
BEHAVIOR: dict[str, Any] = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}, {"type": "Pods", "value": 2,
                                                                              "periodSeconds": 15}],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
    },
}  # fmt: skip


def name(owner: Owner) -> str:
    """Both engines' object is `NAME-runtime`, like the Deployment it scales."""
    return deployment_name(owner)


def target_active_sessions(spec: AvatarDeploymentSpec) -> int:
    """Sessions per pod to aim for: the spec's, else concurrentLimit - 1 (at least 1).

    One seat below the limit: at the target the average pod still has room for a visitor who arrives while the
    next pod starts; a target equal to the limit would only scale up once every pod is full and refusing.
    """
    target = spec.autoscaling.target_active_sessions
    return target if target is not None else max(1, spec.sessions.concurrent_limit - 1)


def external_fields(spec: AvatarDeploymentSpec) -> tuple[tuple[str, ...], ...]:
    """The runtime Deployment's fields the autoscaler owns while autoscaling is on (kube.apply leaves them alone)."""
    return (("spec", "replicas"),) if spec.autoscaling.enabled else ()


def sessions_query(owner: Owner) -> str:
    """PromQL: the sessions of this avatar's runtime pods. Pods of the Deployment are NAME-runtime-<hash>-<id>;
    PromQL regexes are anchored, so `[a-z0-9]+` segments cannot match the pods of an avatar named NAME-runtime-x."""
    pods = f"{deployment_name(owner)}-[a-z0-9]+-[a-z0-9]+"
    return f'sum({METRIC}{{namespace="{owner.namespace}",pod=~"{pods}"}})'


def _target_ref(owner: Owner) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(owner)}


def build_scaled_object(owner: Owner, spec: AvatarDeploymentSpec, prometheus_address: str) -> dict[str, Any] | None:
    """The KEDA ScaledObject, or None when autoscaling is off or the engine is `hpa`."""
    scaling = spec.autoscaling
    if not scaling.enabled or scaling.engine != "keda":
        return None
    trigger = {
        "type": "prometheus",
        "name": "active-sessions",
        "metricType": "AverageValue",  # KEDA divides the summed query by the pod count: sessions per pod
        "metadata": {
            "serverAddress": prometheus_address,
            "query": sessions_query(owner),
            "threshold": str(target_active_sessions(spec)),  # trigger metadata values are strings
        },
    }
    body = {
        "scaleTargetRef": _target_ref(owner),
        "minReplicaCount": max(1, scaling.min_replicas),
        "maxReplicaCount": scaling.max_replicas,
        "pollingInterval": POLLING_INTERVAL_S,
        "cooldownPeriod": COOLDOWN_S,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": copy.deepcopy(BEHAVIOR)}},
        "triggers": [trigger],
    }
    return child(SCALED_OBJECT_API_VERSION, "ScaledObject", name(owner), owner, COMPONENT, {"spec": body})


def build_hpa(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, Any] | None:
    """The autoscaling/v2 HorizontalPodAutoscaler, or None when autoscaling is off or the engine is `keda`."""
    scaling = spec.autoscaling
    if not scaling.enabled or scaling.engine != "hpa":
        return None
    target = {"type": "AverageValue", "averageValue": str(target_active_sessions(spec))}  # a quantity
    body = {
        "scaleTargetRef": _target_ref(owner),
        "minReplicas": max(1, scaling.min_replicas),
        "maxReplicas": scaling.max_replicas,
        "metrics": [{"type": "Pods", "pods": {"metric": {"name": METRIC}, "target": target}}],
        "behavior": copy.deepcopy(BEHAVIOR),
    }
    return child(HPA_API_VERSION, "HorizontalPodAutoscaler", name(owner), owner, COMPONENT, {"spec": body})
