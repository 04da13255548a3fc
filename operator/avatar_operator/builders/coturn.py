"""coturn for one AvatarDeployment: Secret `NAME-turn`, StatefulSet `NAME-turn`, Service `NAME-turn` (component turn).

Authentication is coturn's `use-auth-secret` (the TURN REST scheme): the runtime and coturn share
`static-auth-secret`, and the runtime hands each browser a short-lived username/password derived from it
(`avatar_runtime.ice.turn_rest_credentials`), so no long-lived credential ever reaches a browser. The secret is
random, so creating it is a side effect: the handler generates it once (`secrets.token_urlsafe(32)`), keeps it (reads
the existing Secret on every later reconcile) and passes the value in; everything here is pure.

How browsers reach it. A browser talks only to the TURN listener (3478 UDP/TCP, 5349 TLS); the relay ports
(`spec.turn.minPort..maxPort`) are where the *peer* sends to, and the only peers are our runtime pods, inside the
cluster. So:
- default: a LoadBalancer Service exposes 3478/udp, 3478/tcp (and 5349/tcp with TLS); coturn relays from its pod IP,
  which the runtime pods reach directly; the relay range needs no exposure. The cloud must support mixed UDP+TCP
  LoadBalancers (GA since Kubernetes 1.26; not every provider does).
- `spec.turn.hostNetwork: true` (the usual production choice): coturn binds the node's own interfaces, so browsers
  reach `NODE_IP:3478` with no UDP load balancer in the way (many cannot do UDP at all, or rewrite source ports and
  break long-lived allocations) and coturn sees the real client address. The node's firewall / security group must
  let browsers in on 3478 (and 5349), and let pods reach the relay range on the node; expose the relay range to the
  internet only if peers outside the cluster should use this TURN. The Service is then a ClusterIP, for discovery.

Peer filtering (the "open relay" SSRF hole of TURN servers): every private and special-purpose range is denied as a
peer, except `allowed_peer_cidrs` (the runtime pods' network, which the relay must reach). coturn only understands
`FIRST-LAST` address ranges: a CIDR given to `denied-peer-ip` is silently ignored by coturn 4.6 (coturn PR #1872),
which would leave the range open, so every range is written out as `FIRST-LAST` here.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import Any

from .. import GROUP
from ..spec import AvatarDeploymentSpec
from .common import Owner, child, labels, selector
from .ingress import public_host, tls_secret_name

COTURN_IMAGE = "coturn/coturn:4.6"  # the official image (Debian based, runs as nobody); override per operator build
COMPONENT = "turn"
SECRET_KEY = "static-auth-secret"
SECRET_ANNOTATION = f"{GROUP}/turn-secret-hash"  # on the pod template: a new secret restarts coturn
TURN_PORT = 3478
TURNS_PORT = 5349
NOBODY = 65534  # the image's user (USER nobody:nogroup)
STATE_DIR = "/var/lib/coturn"  # the image's VOLUME: coturn's SQLite user DB (unused with a static secret) and pidfile
TLS_DIR = "/etc/coturn/tls"
RESOURCES: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}

# Peers a relay must never reach: RFC 6890 special-purpose ranges (private, CGNAT, loopback, link-local, docs,
# benchmarking, multicast/reserved) and their IPv6 counterparts (ULA, link-local, IPv4-mapped, NAT64, docs, 6to4).
# Never the unspecified address `::`: coturn 4.6.1 then denies every peer, IPv4 included (measured).
DENIED_PEER_NETWORKS: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/3",
    "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/23", "2001:db8::/32",
    "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip

# The secret is passed on coturn's command line through Kubernetes' $(VAR) expansion: keep it to characters that no
# shell or option parser treats specially (secrets.token_urlsafe output always matches).
_SECRET = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")


def turn_host(spec: AvatarDeploymentSpec) -> str | None:
    """The public name browsers reach coturn at: `spec.turn.host`, else the ingress/gateway host."""
    return spec.turn.host or public_host(spec)


def enabled(spec: AvatarDeploymentSpec) -> bool:
    """Whether the operator runs its own coturn: TURN on, no external TURN, and a public host to announce it under.

    Browsers learn the TURN URL from the runtime (`runtime_config.turn_urls`), which names the public host; without
    one no browser would ever be told about this coturn, so none is built (and TurnReady has nothing to wait for).
    """
    return spec.turn.enabled and spec.turn.external is None and turn_host(spec) is not None


def name(owner: Owner) -> str:
    return f"{owner.name}-turn"


def valid_secret(value: str) -> bool:
    """Whether `value` can serve as coturn's static-auth-secret (the handler regenerates one that cannot)."""
    return bool(_SECRET.match(value))


def peer_ranges(cidrs: list[str] | tuple[str, ...]) -> list[str]:
    """CIDRs as coturn's `FIRST-LAST` ranges (a single address stays one address). ValueError on a bad CIDR."""
    ranges = []
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
        first, last = network[0], network[-1]
        ranges.append(str(first) if first == last else f"{first}-{last}")
    return ranges


def turnserver_args(owner: Owner, spec: AvatarDeploymentSpec, allowed_peer_cidrs: list[str]) -> list[str]:
    """turnserver's command line; `$(TURN_SECRET)` is expanded by the kubelet from the container's env."""
    turn, tls = spec.turn, tls_secret_name(owner, spec) is not None
    args = [
        "-n",  # no config file: everything is on this command line, nothing hidden in the image
        "--log-file=stdout",
        f"--pidfile={STATE_DIR}/turnserver.pid",
        f"--userdb={STATE_DIR}/turndb",
        f"--realm={turn_host(spec)}",  # clients learn it from coturn's 401 reply: any stable name works
        f"--listening-port={TURN_PORT}",
        f"--min-port={turn.min_port}",
        f"--max-port={turn.max_port}",
        "--use-auth-secret",
        "--static-auth-secret=$(TURN_SECRET)",
        "--no-tcp-relay",  # WebRTC media is UDP; TCP relaying would only widen what the relay can reach
        "--fingerprint",
        "--no-cli",
        "--no-multicast-peers",
        "--no-software-attribute",
        # STUN answers only as WebRTC needs them: no RFC 5780 NAT probing, no pre-RFC 5389 messages (both only
        # make the open UDP port a better reflection/amplification tool).
        "--no-rfc5780",
        "--no-stun-backward-compatibility",
        "--no-dtls",  # browsers speak TURN over UDP, TCP or TLS, never DTLS
    ]
    if tls:
        args += [f"--tls-listening-port={TURNS_PORT}", f"--cert={TLS_DIR}/tls.crt", f"--pkey={TLS_DIR}/tls.key"]
    else:
        args.append("--no-tls")
    args += [f"--denied-peer-ip={r}" for r in peer_ranges(DENIED_PEER_NETWORKS)]
    # An address both denied and allowed is allowed (coturn's rule): this re-opens exactly the pod network.
    args += [f"--allowed-peer-ip={r}" for r in peer_ranges(allowed_peer_cidrs)]
    return args


def build_secret(owner: Owner, secret: str) -> dict[str, Any]:
    """Secret `NAME-turn` holding the shared secret (as `data`, the form the API server stores and returns)."""
    if not valid_secret(secret):
        raise ValueError("the TURN secret must be 16-256 URL-safe characters (use secrets.token_urlsafe(32))")
    body = {"type": "Opaque", "data": {SECRET_KEY: base64.b64encode(secret.encode()).decode()}}
    return child("v1", "Secret", name(owner), owner, COMPONENT, body)


def _ports(spec: AvatarDeploymentSpec, tls: bool) -> list[dict[str, Any]]:
    ports = [
        {"name": "turn-udp", "containerPort": TURN_PORT, "protocol": "UDP"},
        {"name": "turn-tcp", "containerPort": TURN_PORT, "protocol": "TCP"},
    ]
    if tls:
        ports.append({"name": "turns", "containerPort": TURNS_PORT, "protocol": "TCP"})
    if spec.turn.host_network:
        # What the API server would default for a host-network pod; explicit, so the scheduler's port check is visible.
        ports = [{**port, "hostPort": port["containerPort"]} for port in ports]
    return ports


def build_statefulset(
    owner: Owner, spec: AvatarDeploymentSpec, *, secret: str, allowed_peer_cidrs: list[str]
) -> dict[str, Any]:
    """StatefulSet `NAME-turn`: one coturn (allocations live in one process; a second replica would not share them)."""
    tls_secret = tls_secret_name(owner, spec)  # the public host's certificate serves TURNS too
    mounts = [{"name": "state", "mountPath": STATE_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "state", "emptyDir": {}}]
    if tls_secret is not None:
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": 0o440}})
    container = {
        "name": "coturn",
        "image": COTURN_IMAGE,
        # Not the image's entrypoint: it re-evaluates its arguments with a shell (`exec $(eval "echo $@")`).
        "command": ["turnserver"],
        "args": turnserver_args(owner, spec, allowed_peer_cidrs),
        "env": [{"name": "TURN_SECRET", "valueFrom": {"secretKeyRef": {"name": name(owner), "key": SECRET_KEY}}}],
        "ports": _ports(spec, tls_secret is not None),
        "readinessProbe": {"tcpSocket": {"port": TURN_PORT}, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {
            "tcpSocket": {"port": TURN_PORT},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "resources": RESOURCES,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            # The image gives turnserver the file capability NET_BIND_SERVICE; exec fails with EPERM unless that
            # capability stays in the bounding set. With no-new-privileges it is never actually granted (and not
            # needed: 3478 and 5349 are unprivileged ports).
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,  # coturn never talks to the API server
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NOBODY,
            "runAsGroup": NOBODY,
            "fsGroup": NOBODY,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if spec.turn.host_network:
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"  # keep cluster DNS on the node's network namespace
    # The secret reaches coturn through env, read once at start: a changed secret must restart the pod.
    secret_hash = hashlib.sha256(secret.encode()).hexdigest()[:16]
    body = {
        "spec": {
            "serviceName": name(owner),
            "replicas": 1,
            "selector": {"matchLabels": selector(owner, COMPONENT)},
            "template": {
                "metadata": {"labels": labels(owner, COMPONENT), "annotations": {SECRET_ANNOTATION: secret_hash}},
                "spec": pod,
            },
        }
    }
    return child("apps/v1", "StatefulSet", name(owner), owner, COMPONENT, body)


def build_service(owner: Owner, spec: AvatarDeploymentSpec) -> dict[str, Any]:
    """Service `NAME-turn`: LoadBalancer for browsers, or ClusterIP when coturn is on the node network."""
    ports = [
        {"name": "turn-udp", "port": TURN_PORT, "targetPort": TURN_PORT, "protocol": "UDP"},
        {"name": "turn-tcp", "port": TURN_PORT, "targetPort": TURN_PORT, "protocol": "TCP"},
    ]
    if tls_secret_name(owner, spec) is not None:
        ports.append({"name": "turns", "port": TURNS_PORT, "targetPort": TURNS_PORT, "protocol": "TCP"})
    service: dict[str, Any] = {"selector": selector(owner, COMPONENT), "ports": ports}
    if spec.turn.host_network:
        service["type"] = "ClusterIP"
    else:
        service["type"] = "LoadBalancer"
        # Local: the client's own address reaches coturn (logs, quotas) and no second hop rewrites UDP source ports.
        service["externalTrafficPolicy"] = "Local"
    return child("v1", "Service", name(owner), owner, COMPONENT, {"spec": service})


def build(
    owner: Owner, spec: AvatarDeploymentSpec, *, secret: str | None, allowed_peer_cidrs: list[str]
) -> list[dict[str, Any]]:
    """Secret, StatefulSet and Service; [] when the operator runs no coturn (TURN off, or an external TURN)."""
    if not enabled(spec):
        return []
    if secret is None:
        raise ValueError("coturn needs its static-auth-secret: the handler generates it once and passes it in")
    return [
        build_secret(owner, secret),
        build_statefulset(owner, spec, secret=secret, allowed_peer_cidrs=allowed_peer_cidrs),
        build_service(owner, spec),
    ]
