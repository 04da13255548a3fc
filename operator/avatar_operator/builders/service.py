"""ClusterIP Service `NAME` in front of the runtime pods: port 80 (`http`) → the runtime's 8282.

Only the HTTP API goes through it (web client, /api/config, signalling, /metrics); WebRTC media never does — it
flows over ICE between the browser and the pod, relayed by TURN. Ingress and HTTPRoute point here.
"""

from __future__ import annotations

from typing import Any

from ..spec import AvatarDeploymentSpec
from .common import Owner, child, selector

COMPONENT = "runtime"
SERVICE_PORT = 80
PORT_NAME = "http"  # also the container port's name, so targetPort follows it


def build(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, Any]:
    """The runtime Service (always built)."""
    del spec  # same Service for every spec; the parameter keeps the builders' common signature
    body = {
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner, COMPONENT),
            "ports": [
                {"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP",
                 "appProtocol": "http"},
            ],
        }
    }  # fmt: skip
    return child("v1", "Service", owner.name, owner, COMPONENT, body)
