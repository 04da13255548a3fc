"""Response headers every route gets: what a browser may do with our pages and answers (an ASGI middleware).

The page needs the microphone (`Permissions-Policy: microphone=(self)`) and nothing else of the device; it must not
be framed by another site (clickjacking a microphone prompt); API answers are never cached (they carry SDP with
ICE credentials). HSTS is left to whatever terminates TLS for the public name (ingress, load balancer): sent from a
self-signed localhost server it would pin browsers to HTTPS on localhost for every other local app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    # Only directives that cannot break the client's own scripts, workers or WebGL: no framing, no plugins,
    # no <base> hijacking, forms post only here.
    ("content-security-policy", "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'"),
    ("permissions-policy", "microphone=(self), camera=(), geolocation=(), payment=(), usb=()"),
    ("cross-origin-opener-policy", "same-origin"),
)
_NO_STORE = ("cache-control", "no-store")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [*SECURITY_HEADERS, _NO_STORE] if api else SECURITY_HEADERS
                for name, value in extra:
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
