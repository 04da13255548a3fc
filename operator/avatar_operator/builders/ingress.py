"""networking.k8s.io/v1 Ingress `NAME` for `spec.ingress`, and the public host / TLS Secret the other children share.

Browsers reach the runtime's HTTP API (DESIGN §3) through it: the web client, `GET /api/config`, and the WebRTC
signalling `POST /api/sessions` (a plain HTTPS request; the media then flows over ICE, relayed by TURN). TLS ends
here; the runtime serves plain HTTP (`--no-tls`) inside the cluster. The annotations are ingress-nginx's (the most
common controller); other controllers ignore them.
"""

from __future__ import annotations

from typing import Any

from ..spec import AvatarDeploymentSpec
from .common import Owner, child
from .service import PORT_NAME

INGRESS_API_VERSION = "networking.k8s.io/v1"
COMPONENT = "runtime"

# Why each annotation:
# - timeouts: ingress-nginx drops a proxied request when the runtime sends nothing for 60 s. The signalling POST
#   answers once ICE gathering is done (seconds), but a long-lived connection (a WebSocket upgrade is proxied
#   automatically) must survive a conversation's silences: an hour, like the runtime's TURN credential TTL.
# - body size: an SDP offer is 3-6 KB; 1m is ample and still bounds what reaches the runtime (which enforces its
#   own `server.max_body_bytes`).
# - no cookie affinity on purpose: a session ends over its own data channel (`bye`) or when its WebRTC connection
#   closes, so `DELETE /api/sessions/{id}` reaching another replica (404) loses nothing, while a sticky cookie would
#   keep sending a returning browser to a full pod (503) when another has room.
# - next upstream: a runtime pod answers `POST /api/sessions` with 503 (`capacity` when full, `draining` when it is
#   shutting down) without creating a session, so the offer can safely go to another pod: ingress-nginx retries it
#   on the next endpoint (round-robin, so a different pod each try) up to 3 tries in all, also for this POST
#   (non_idempotent). Pods stay Ready while full on purpose (readiness-as-capacity would make the ReplicaSet
#   remove the busiest pods first on a scale-down); this retry is what keeps a new session off a full pod.
NGINX_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
    "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_503 non_idempotent",
    "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "3",
}


def public_host(spec: AvatarDeploymentSpec) -> str | None:
    """The host name browsers use: the Ingress host or the Gateway route's hostname; None when not exposed."""
    if spec.ingress is not None:
        return spec.ingress.host
    if spec.gateway is not None:
        return spec.gateway.hostname
    return None


def managed_tls_secret(owner: Owner) -> str:
    """The Secret our cert-manager Certificate fills (`NAME-tls`)."""
    return f"{owner.name}-tls"


def tls_secret_name(owner: Owner, spec: AvatarDeploymentSpec) -> str | None:
    """The kubernetes.io/tls Secret for the public host: the user's `secretName`, ours, or None without TLS."""
    if spec.tls is None:
        return None
    return spec.tls.secret_name or managed_tls_secret(owner)


def build(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, Any] | None:
    """The Ingress for `spec.ingress`, or None (no ingress, or a Gateway route instead)."""
    if spec.ingress is None:
        return None
    host = spec.ingress.host
    backend = {"service": {"name": owner.name, "port": {"name": PORT_NAME}}}
    ingress_spec: dict[str, Any] = {
        "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
    }
    if spec.ingress.class_name is not None:
        ingress_spec["ingressClassName"] = spec.ingress.class_name  # else the cluster's default IngressClass
    secret = tls_secret_name(owner, spec)
    if secret is not None:
        ingress_spec["tls"] = [{"hosts": [host], "secretName": secret}]
    return child(
        INGRESS_API_VERSION, "Ingress", owner.name, owner, COMPONENT, {"spec": ingress_spec}, NGINX_ANNOTATIONS
    )
