"""The serve port (free, or already served by a runtime) and what browsers demand of the page's origin."""

from __future__ import annotations

import errno
import socket

import httpx

from .result import Result
from .target import Target, is_loopback, is_wildcard

GROUP = "network"
PROBE_TIMEOUT_S = 1.0  # a local runtime answers /healthz in milliseconds
SECURE_CONTEXT_FIX = (
    "serve HTTPS: drop --no-tls / set tls.enabled: true (a self-signed certificate by default), or put an HTTPS "
    "reverse proxy or ingress in front and open its https:// URL"
)


def probe_host(bind_host: str) -> str:
    """Where to reach a server bound to `bind_host` from this machine."""
    if bind_host == "::":
        return "::1"
    return "127.0.0.1" if is_wildcard(bind_host) else bind_host


def probe_runtime(host: str, port: int, prefer_tls: bool) -> tuple[str, httpx.Response] | None:
    """(base URL, /readyz response) when an avatar runtime answers /healthz there; None otherwise."""
    shown = f"[{host}]" if ":" in host else host
    schemes = ("https", "http") if prefer_tls else ("http", "https")
    with httpx.Client(verify=False, timeout=PROBE_TIMEOUT_S) as client:  # the certificate is the TLS check's job
        for scheme in schemes:
            base = f"{scheme}://{shown}:{port}"
            try:
                health = client.get(f"{base}/healthz")
                if health.status_code != 200 or health.json() != {"status": "ok"}:
                    continue
                return base, client.get(f"{base}/readyz")
            except httpx.TimeoutException:
                return None  # something holds the port without answering: no runtime, and no point retrying
            except (httpx.HTTPError, ValueError):
                continue
    return None


def bind_error(host: str, port: int) -> OSError | None:
    """Bind (and release) the port as uvicorn does (SO_REUSEADDR): None when `serve` could listen there."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:  # socket.gaierror included
        return exc
    return None


def _free_port_near(host: str, port: int) -> int | None:
    return next((p for p in range(port + 1, min(port + 50, 65536)) if bind_error(host, p) is None), None)


def check_port(target: Target) -> list[Result]:
    host, port = target.bind_host, target.port
    where = f"{host or '0.0.0.0'}:{port}"
    running = probe_runtime(probe_host(host), port, target.tls_enabled)
    if running is not None:
        base, ready = running
        results = [Result(GROUP, "port", "info", f"a runtime already answers {base}/healthz: port check skipped")]
        if ready.status_code == 200:
            results.append(Result(GROUP, "running runtime", "ok", f"{base}/readyz: ready"))
        else:
            try:
                message = ready.json().get("message", ready.text)
            except ValueError:
                message = ready.text
            fix = "fix what the message names (often: `avatar-runtime models pull`), then restart serve"
            finding = f"{base}/readyz answers {ready.status_code}: not ready: {message}"
            results.append(Result(GROUP, "running runtime", "fail", finding, fix))
        return results
    error = bind_error(host, port)
    if error is None:
        return [Result(GROUP, "port", "ok", f"{where} is free for serve")]
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        other = _free_port_near(host, port)
        alternative = f" (e.g. --port {other}, free now)" if other else ""
        finding = f"{where} is in use by another program (not an avatar runtime: it does not answer /healthz)"
        fix = f"`ss -ltnp 'sport = :{port}'` names it: stop it, or serve with --port / server.port{alternative}"
        return [Result(GROUP, "port", "fail", finding, fix)]
    if code == errno.EACCES:
        finding = f"{where}: ports below 1024 need root (or CAP_NET_BIND_SERVICE)"
        fix = "serve on a port >= 1024 (default 8282) and put a proxy or a Service on 443"
        return [Result(GROUP, "port", "fail", finding, fix)]
    if code == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
        finding = f"cannot listen on {host!r}: it is not an address of this machine ({error})"
        fix = "--host / server.host: 0.0.0.0 (every interface), 127.0.0.1, or an address `ip addr` shows"
        return [Result(GROUP, "port", "fail", finding, fix)]
    return [Result(GROUP, "port", "fail", f"cannot listen on {where}: {error}", "--host / --port")]


def check_secure_context(target: Target) -> Result:
    """getUserMedia (the microphone) exists only in a secure context: https, or http on localhost / 127.0.0.1."""
    port = target.port
    if target.tls_enabled:
        shown = ", ".join(target.url(h) for h in target.public_hosts)
        return Result(GROUP, "microphone", "ok", f"HTTPS ({shown}): browsers allow the microphone")
    if target.public_hosts_guessed:
        finding = (
            f"plain HTTP on every interface: only a browser on this machine (http://localhost:{port}) may use the "
            f"microphone; on other devices http://<this host>:{port} is not a secure context and getUserMedia fails"
        )
        return Result(GROUP, "microphone", "warn", finding, SECURE_CONTEXT_FIX)
    remote = [h for h in target.public_hosts if not is_loopback(h)]
    if not remote:
        finding = f"plain HTTP on {', '.join(target.public_hosts)}: a secure context, but only for this machine"
        return Result(GROUP, "microphone", "ok", finding)
    urls = ", ".join(f"http://{h}:{port}" for h in remote)
    finding = f"browsers opening {urls} block the microphone: plain HTTP off localhost is not a secure context"
    return Result(GROUP, "microphone", "fail", finding, SECURE_CONTEXT_FIX)


def check(target: Target) -> list[Result]:
    return [*check_port(target), check_secure_context(target)]
