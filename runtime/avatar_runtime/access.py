"""Who may open a conversation, and how often: session tokens, per-client rate limits, the client's address.

All pure (a clock is passed in), so the rules are tested without a server; app.py hands `Admission.check` the
request's peer address and headers for every `POST /api/sessions`.

Session tokens let the deployer's own backend decide who talks to the avatar without sharing a long-lived
secret with browsers: the backend mints a token per page view with the shared `server.session_token_secret`, the
page sends it as `Authorization: Bearer <token>`, the runtime checks it. Format (ASCII, URL-safe):

    v1.<expires: unix seconds>.<nonce: 16–64 chars [A-Za-z0-9_-]>.<signature: hex HMAC-SHA256 of "v1.<expires>.<nonce>">

A token is valid until `expires` (at most `session_token_max_ttl_s` ahead: a token minted for a day is refused)
and opens ONE session: its nonce is remembered until it expires, so a token copied from a page cannot be replayed.
A request that is refused for another reason (server full, bad offer) gives the token back, so the client's retry
after a 503 works with the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ServerConfig

Clock = Callable[[], float]
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_MAX_TOKEN_CHARS = 256


class AccessDenied(Exception):
    """A request is refused; `status` and `code` go into the error body, `retry_after_s` into Retry-After."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after_s = status, code, retry_after_s


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def mint_session_token(secret: str, ttl_s: float, now: float | None = None) -> str:
    """A token for one session, valid `ttl_s` seconds (what the deployer's backend does; see docs/security.md)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    payload = f"v1.{expires}.{secrets.token_urlsafe(18)}"
    return f"{payload}.{_signature(secret, payload)}"


class SessionTokens:
    """Checks signed session tokens and remembers the used ones until they expire (single use)."""

    def __init__(self, secret: str, max_ttl_s: float, clock: Clock = time.time, max_remembered: int = 100_000) -> None:
        self._secret = secret
        self._max_ttl_s = max_ttl_s
        self._clock = clock
        self._used: OrderedDict[str, int] = OrderedDict()  # nonce -> expiry, in insertion (≈ expiry) order
        self._max_remembered = max_remembered

    def check(self, token: str) -> str:
        """Accept the token and reserve it (returns its nonce, for `refund`), or raise AccessDenied saying why."""
        now = self._clock()
        parts = token.split(".") if len(token) <= _MAX_TOKEN_CHARS else []
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit() or not _NONCE.match(parts[2]):
            raise AccessDenied(401, "unauthorized", "the session token is malformed")
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], _signature(self._secret, payload)):
            raise AccessDenied(401, "unauthorized", "the session token's signature is not valid")
        expires, nonce = int(parts[1]), parts[2]
        if expires <= now:
            raise AccessDenied(401, "token_expired", "the session token has expired: get a new one from the page")
        if expires > now + self._max_ttl_s + 5:  # 5 s of clock skew between the minting backend and us
            raise AccessDenied(401, "unauthorized", f"the session token lives longer than {self._max_ttl_s:g} s")
        self._forget_expired(now)
        if nonce in self._used:
            raise AccessDenied(401, "token_used", "the session token was already used: each opens one session")
        if len(self._used) >= self._max_remembered:
            # A flood of valid tokens (the minting backend is compromised or leaks): refuse rather than forget.
            raise AccessDenied(503, "busy", "too many sessions opened recently; try again shortly", 5)
        self._used[nonce] = expires
        return nonce

    def refund(self, nonce: str) -> None:
        """The request the token was spent on failed for another reason: the token may be used again."""
        self._used.pop(nonce, None)

    def _forget_expired(self, now: float) -> None:
        while self._used:
            nonce, expires = next(iter(self._used.items()))
            if expires > now - 5:
                break
            del self._used[nonce]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per key: `per_minute` sustained, `burst` at once. Idle keys are forgotten."""

    def __init__(self, per_minute: float, burst: int, clock: Clock = time.monotonic, max_keys: int = 50_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_keys = max_keys

    def take(self, key: str) -> float:
        """Spend one request for `key`: returns 0 if allowed, else the seconds until one is allowed again."""
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self._max_keys:  # a spoofed-address flood must not grow memory without end
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate


def parse_networks(cidrs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDR strings → networks (ValueError names the bad one); used by the config validator."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP network: {cidr!r} ({exc})") from None
    return networks


def client_address(peer: str | None, forwarded_for: str | None, trusted: list) -> str:
    """The client's address: the TCP peer, or — only when the peer is a trusted proxy — the right-most address
    in X-Forwarded-For that is not itself a trusted proxy (the left part of that header is the client's to forge)."""
    address = peer or "unknown"
    if not forwarded_for or not _in(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _is_ip(hop):
            return address  # garbage in the header: fall back to what we know for sure
        if not _in(hop, trusted):
            return hop
        address = hop
    return address


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class Admission:
    """Who may open a session: the per-client rate limit first (so a flood of bad tokens is throttled too), then
    the shared bearer token (`server.auth_token`) or a signed one-use session token, whichever is configured."""

    def __init__(self, server: ServerConfig, clock: Clock = time.time, monotonic: Clock = time.monotonic) -> None:
        self._bearer = server.auth_token
        secret = server.session_token_secret
        self._tokens = SessionTokens(secret, server.session_token_max_ttl_s, clock) if secret else None
        per_minute = server.sessions_per_minute
        self._limiter = RateLimiter(per_minute, server.sessions_burst, monotonic) if per_minute else None
        self._trusted = parse_networks(server.trusted_proxies)

    def check(self, peer: str | None, forwarded_for: str | None, authorization: str) -> str | None:
        """Raise AccessDenied (429 rate_limited, 401 unauthorized|token_expired|token_used) or admit the request;
        returns the nonce of the session token it reserved (None without one): `refund` it if the request fails."""
        client = client_address(peer, forwarded_for, self._trusted)
        # Loopback is the machine's own user (tests, health checks, a local page): never throttled per address.
        if self._limiter is not None and not _is_loopback(client):
            wait = self._limiter.take(client)
            if wait:
                retry = max(1, math.ceil(wait))
                message = f"too many new sessions from {client}; try again in {retry} s"
                raise AccessDenied(429, "rate_limited", message, retry)
        if self._bearer is None and self._tokens is None:
            return None
        presented = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""
        if self._bearer is not None and presented and hmac.compare_digest(presented.encode(), self._bearer.encode()):
            return None
        if self._tokens is not None and presented.startswith("v1."):
            return self._tokens.check(presented)
        raise AccessDenied(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required")

    def refund(self, nonce: str | None) -> None:
        if nonce is not None and self._tokens is not None:
            self._tokens.refund(nonce)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
