"""Gateway API HTTPRoute `NAME` for `spec.gateway`: attaches the runtime Service to an existing Gateway.

The Gateway (listeners, TLS termination) belongs to the cluster admin; we only attach a route to it. When
`spec.tls` is set, our Certificate fills the Secret `NAME-tls` in this namespace; a Gateway in another namespace
needs a ReferenceGrant to use it (its admin's choice, so not created here). No session persistence: see the note
on cookie affinity in ingress.py.
"""

from __future__ import annotations

from typing import Any

from ..spec import AvatarDeploymentSpec
from .common import Owner, child
from .service import SERVICE_PORT

HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
COMPONENT = "runtime"


def build(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, Any] | None:
    """The HTTPRoute for `spec.gateway`, or None (no gateway, or an Ingress instead)."""
    if spec.gateway is None:
        return None
    ref = spec.gateway.parent_ref
    parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": ref.name}
    if ref.namespace is not None:
        parent["namespace"] = ref.namespace
    if ref.section_name is not None:
        parent["sectionName"] = ref.section_name
    route: dict[str, Any] = {"parentRefs": [parent]}
    if spec.gateway.hostname is not None:
        route["hostnames"] = [spec.gateway.hostname]  # else the listener's hostname(s) apply
    route["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": owner.name, "port": SERVICE_PORT}],
        }
    ]
    return child(HTTPROUTE_API_VERSION, "HTTPRoute", owner.name, owner, COMPONENT, {"spec": route})
