"""cert-manager Certificate `NAME-tls` for the public host (`spec.tls.issuerRef`).

Only built for `spec.tls.issuerRef`: with `spec.tls.secretName` the user brings the Secret (and renews it), so we
create nothing. We create the Certificate ourselves instead of relying on cert-manager's ingress-shim annotation
because the Secret is also needed without an Ingress (a Gateway listener can reference it) and by coturn, which
mounts it to serve TURNS on 5349.
"""

from __future__ import annotations

from typing import Any

from ..spec import AvatarDeploymentSpec
from .common import Owner, child, labels
from .ingress import managed_tls_secret, public_host

CERTIFICATE_API_VERSION = "cert-manager.io/v1"
COMPONENT = "tls"


def build(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, Any] | None:
    """The Certificate, or None when TLS is off, the user brings the Secret, or there is no host to certify."""
    host = public_host(spec)
    if spec.tls is None or spec.tls.issuer_ref is None or host is None:
        return None
    issuer = spec.tls.issuer_ref
    name = managed_tls_secret(owner)
    body = {
        "spec": {
            "secretName": name,
            # coturn serves TURNS with this certificate too, under its own name when spec.turn.host differs.
            "dnsNames": [host] + ([spec.turn.host] if spec.turn.host and spec.turn.host != host else []),
            "issuerRef": {"group": "cert-manager.io", "kind": issuer.kind, "name": issuer.name},
            # Our labels on the issued Secret too, so `kubectl get secret -l app.kubernetes.io/instance=NAME` lists it.
            "secretTemplate": {"labels": labels(owner, COMPONENT)},
        }
    }
    return child(CERTIFICATE_API_VERSION, "Certificate", name, owner, COMPONENT, body)
