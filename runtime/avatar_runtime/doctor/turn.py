"""TURN: each configured relay reachable, and a real Allocate accepted with the credentials browsers will get.

The credentials are made by the runtime's own code (`ice.turn_rest_credentials` for coturn's use-auth-secret,
else the static username/credential), and the Allocate is aioice's TURN client, the one aiortc uses. Outcomes:
relayed (a relayed address came back: browsers behind NAT can connect), refused (401: wrong secret or
credentials), unreachable (no answer in time, or the connection was refused), tls (turns: certificate not
trusted) or another TURN error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs

from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from ..config import TurnConfig
from ..ice import turn_rest_credentials
from .result import Result
from .target import Target, is_loopback

GROUP = "turn"
DEFAULT_PORTS = {"turn": 3478, "turns": 5349}
CREDENTIAL_TTL_S = 600
COTURN_FIX = (
    "run a TURN server (docker-compose.yml ships coturn; on Kubernetes spec.turn.enabled) and set turn.urls and "
    "turn.static_auth_secret (env AVATAR_TURN_SECRET) to its use-auth-secret"
)


@dataclass(frozen=True)
class TurnURL:
    """An RFC 7065 TURN URI: turn[s]:host[:port][?transport=udp|tcp]."""

    url: str
    secure: bool
    host: str
    port: int
    transport: str  # udp | tcp (turns: always TLS over TCP)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


def parse_turn_url(url: str) -> TurnURL:
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in DEFAULT_PORTS:
        raise ValueError(f"{url!r} is not a turn: or turns: URL")
    rest, _, query = rest.partition("?")
    rest = rest.removeprefix("//")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = rest.partition(":")
    transport = parse_qs(query).get("transport", ["tcp" if scheme == "turns" else "udp"])[0].lower()
    if not host or transport not in ("udp", "tcp") or (scheme == "turns" and transport == "udp"):
        raise ValueError(f"{url!r}: expected turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]")
    try:
        port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError(f"{url!r}: port {port_text!r} is not a number") from None
    return TurnURL(url, scheme == "turns", host, port, transport)


def credentials(turn: TurnConfig) -> tuple[str | None, str | None, str]:
    """(username, password, where they come from): what /api/config hands to browsers."""
    if turn.static_auth_secret:
        username, password = turn_rest_credentials(turn.static_auth_secret, CREDENTIAL_TTL_S, user="doctor")
        return username, password, "ephemeral credentials from turn.static_auth_secret"
    if turn.username:
        return turn.username, turn.credential or "", "turn.username / turn.credential"
    return None, None, "no credentials (neither turn.static_auth_secret nor turn.username is set)"


class _UdpClient(TurnClientUdpProtocol):
    """aioice's UDP client, remembering an ICMP error (nothing listens) to name the cause of a timeout."""

    icmp_error: OSError | None = None

    def error_received(self, exc: OSError) -> None:
        self.icmp_error = exc


@dataclass(frozen=True)
class Outcome:
    kind: str  # relayed | refused | unreachable | tls | error
    detail: str


async def allocate(
    url: TurnURL, username: str | None, password: str | None, timeout_s: float, ssl_context: ssl.SSLContext | None
) -> Outcome:
    """One TURN Allocate (with the 401 → realm/nonce → authenticated retry), then the allocation is deleted."""
    loop = asyncio.get_running_loop()
    protocol_class = _UdpClient if url.transport == "udp" else TurnClientTcpProtocol

    def factory():
        return protocol_class(
            url.address, username=username, password=password, lifetime=CREDENTIAL_TTL_S, channel_refresh_time=300
        )

    transport = protocol = None
    try:
        async with asyncio.timeout(timeout_s):
            if url.transport == "udp":
                transport, protocol = await loop.create_datagram_endpoint(factory, remote_addr=url.address)
            else:
                server_hostname = url.host if url.secure else None
                context = (ssl_context or ssl.create_default_context()) if url.secure else None
                transport, protocol = await loop.create_connection(
                    factory, url.host, url.port, ssl=context, server_hostname=server_hostname
                )
            relayed = await protocol.connect()
    except TimeoutError:
        icmp = getattr(protocol, "icmp_error", None)
        cause = f" ({_reason(icmp)}: nothing listens on udp/{url.port})" if icmp else ""
        detail = f"no answer from {url.host}:{url.port} over {_via(url)} in {timeout_s:g} s{cause}"
        return Outcome("unreachable", detail)
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "no error code"))
        kind = "refused" if code == 401 else "error"
        return Outcome(kind, f"{url.host}:{url.port} answered {code} {reason}")
    except ssl.SSLError as exc:
        return Outcome("tls", f"TLS with {url.host}:{url.port} failed: {exc.reason or exc}")
    except OSError as exc:
        return Outcome("unreachable", f"{url.host}:{url.port} over {_via(url)}: {_reason(exc)}")
    finally:
        if transport is not None and not getattr(protocol, "relayed_address", None):
            transport.close()
    try:
        async with asyncio.timeout(timeout_s):
            await protocol.delete()  # frees the relay port at once (coturn would hold it for the lifetime)
    except (TimeoutError, stun.TransactionError, OSError):
        pass
    finally:
        transport.close()
    return Outcome("relayed", f"relayed address {relayed[0]}:{relayed[1]} via {url.host}:{url.port} ({_via(url)})")


def _reason(exc: OSError) -> str:
    """The plain reason (Connection refused) rather than asyncio's "[Errno 111] Connect call failed (...)"."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    return os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc) or type(exc).__name__


def _via(url: TurnURL) -> str:
    return "TLS" if url.secure else url.transport.upper()


def outcome_result(url: str, outcome: Outcome, source: str) -> Result:
    name = url
    if outcome.kind == "relayed":
        return Result(GROUP, name, "ok", f"{outcome.detail}; {source} accepted")
    if outcome.kind == "refused":
        finding = f"credentials refused: {outcome.detail} with {source}"
        fix = (
            "turn.static_auth_secret (env AVATAR_TURN_SECRET) must equal coturn's static-auth-secret "
            "(use-auth-secret), or turn.username / turn.credential a user coturn knows"
        )
        return Result(GROUP, name, "fail", finding, fix)
    if outcome.kind == "unreachable":
        fix = (
            "check that coturn runs and that the firewall / cloud security group opens its port (UDP and TCP 3478, "
            "TLS 5349, and the relay range, e.g. UDP 49152-65535), and that turn.urls names its public address"
        )
        return Result(GROUP, name, "fail", f"unreachable: {outcome.detail}", fix)
    if outcome.kind == "tls":
        fix = (
            "browsers accept turns: only with a certificate they trust for that host (they do not ask): give coturn "
            "a CA-issued one (--cert/--pkey; cert-manager or certbot), or offer turn: over UDP/TCP 3478 as well"
        )
        return Result(GROUP, name, "fail", outcome.detail, fix)
    return Result(GROUP, name, "fail", f"TURN error: {outcome.detail}", "see coturn's log for why it refused")


async def _check_all(target: Target, ssl_context: ssl.SSLContext | None) -> list[Result]:
    turn = target.config.turn
    username, password, source = credentials(turn)
    results, parsed = [], []
    for url in turn.urls:
        try:
            parsed.append(parse_turn_url(url))
        except ValueError as exc:
            results.append(Result(GROUP, url, "fail", str(exc), "fix turn.urls, e.g. turn:turn.example.com:3478"))
    outcomes = await asyncio.gather(
        *(allocate(u, username, password, target.network_timeout_s, ssl_context) for u in parsed)
    )
    remote_users = target.public_hosts_guessed or any(not is_loopback(h) for h in target.public_hosts)
    for url, outcome in zip(parsed, outcomes, strict=True):
        result = outcome_result(url.url, outcome, source)
        if result.status == "ok" and remote_users and is_loopback(url.host):
            finding = f"{result.finding}, but browsers on other machines cannot reach {url.host}"
            fix = "name coturn's public address or DNS name in turn.urls"
            result = Result(GROUP, url.url, "warn", finding, fix)
        results.append(result)
    return results


def check(target: Target, ssl_context: ssl.SSLContext | None = None) -> list[Result]:
    turn = target.config.turn
    if not turn.urls:
        exposed = [h for h in target.public_hosts if not is_loopback(h)]
        if exposed or target.public_hosts_guessed:
            finding = (
                "no TURN relay (turn.urls is empty): browsers behind NAT, symmetric firewalls or mobile networks "
                "cannot reach the runtime's media (the call connects, then no audio)"
            )
            return [Result(GROUP, "relay", "warn", finding, COTURN_FIX)]
        return [Result(GROUP, "relay", "ok", "no TURN relay configured; not needed on loopback")]
    if target.skip_network:
        return [Result(GROUP, url, "skip", "not checked (--skip-network)") for url in turn.urls]
    return asyncio.run(_check_all(target, ssl_context))
