"""ICE servers offered to browsers, with coturn REST-API ephemeral TURN credentials (no long-lived secret leaves)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from .config import TurnConfig


def turn_rest_credentials(secret: str, ttl_s: int, user: str = "avatar", now: float | None = None) -> tuple[str, str]:
    """coturn `use-auth-secret`: username = "<expiry>:<user>", credential = base64(HMAC-SHA1(secret, username))."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(turn: TurnConfig) -> list[dict]:
    servers: list[dict] = [{"urls": url} for url in turn.stun_urls]
    if turn.urls:
        entry: dict = {"urls": list(turn.urls)}
        if turn.static_auth_secret:
            entry["username"], entry["credential"] = turn_rest_credentials(turn.static_auth_secret, turn.ttl_s)
        elif turn.username:
            entry["username"], entry["credential"] = turn.username, turn.credential or ""
        servers.append(entry)
    return servers
