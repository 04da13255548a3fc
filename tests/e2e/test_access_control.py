"""Access control over real HTTP and WebRTC: signed one-use session tokens, per-client rate limits (the client
named by X-Forwarded-For from a trusted proxy — loopback here), security headers, CORS, and the `token` CLI.

Addresses such as 198.51.100.7 only appear inside X-Forwarded-For headers: all traffic stays on loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from avatar_runtime.access import SessionTokens, mint_session_token

from tests.support.peer import AvatarPeer, SessionRefused

SECRET = "0123456789abcdef" * 4


async def _refused(peer: AvatarPeer, token: str | None = None) -> SessionRefused:
    with pytest.raises(SessionRefused) as refused:
        await peer.connect(token=token)
    await peer.pc.close()
    return refused.value


async def test_session_token_opens_one_session_and_is_refunded_when_the_server_is_full(serve):
    token_url = "https://app.example.com/avatar-token"  # only handed to the page, never fetched here
    server = serve(None, session_token_secret=SECRET, concurrent_limit=1, token_url=token_url)
    first_token = mint_session_token(SECRET, 60)
    first = AvatarPeer(server.url)
    await first.connect(token=first_token)

    replay = await _refused(AvatarPeer(server.url), first_token)
    assert (replay.status, replay.body["error"]) == (401, "token_used")
    missing = await _refused(AvatarPeer(server.url))
    assert (missing.status, missing.body["error"]) == (401, "unauthorized")
    expired = await _refused(AvatarPeer(server.url), mint_session_token(SECRET, -1))
    assert expired.body["error"] == "token_expired"

    second_token = mint_session_token(SECRET, 60)
    full = await _refused(AvatarPeer(server.url), second_token)
    assert full.status == 503 and full.body["error"] == "capacity"
    await first.close()
    retry = AvatarPeer(server.url)
    await retry.connect(token=second_token)  # the 503 gave the token back: the client's retry works
    await retry.close()

    async with httpx.AsyncClient() as client:
        config = (await client.get(server.url + "/api/config")).json()
        metrics = (await client.get(server.url + "/metrics")).text
    assert config["authRequired"] is True and config["tokenUrl"] == token_url and SECRET not in str(config)
    for reason in ("token_used", "unauthorized", "token_expired"):
        assert f'avatar_sessions_rejected_total{{reason="{reason}"}} 1.0' in metrics


async def test_rate_limit_per_client_address_from_a_trusted_proxy(serve):
    server = serve(None, sessions_per_minute=60, sessions_burst=2)
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def post(client_ip: str) -> httpx.Response:
            # An empty offer: admitted requests get 400, throttled ones 429 before the body is read.
            return await client.post("/api/sessions", json={}, headers={"X-Forwarded-For": client_ip})

        assert [(await post("198.51.100.7")).status_code for _ in range(2)] == [400, 400]
        limited = await post("198.51.100.7")
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert limited.headers["retry-after"] == "1" and "198.51.100.7" in limited.json()["message"]
        assert (await post("198.51.100.8")).status_code == 400  # another client is not affected
        # Without a forwarded address the loopback peer itself is the client: never throttled.
        statuses = [(await client.post("/api/sessions", json={})).status_code for _ in range(5)]
        assert statuses == [400] * 5
        metrics = (await client.get("/metrics")).text
    assert 'avatar_sessions_rejected_total{reason="rate_limited"} 1.0' in metrics


async def test_every_answer_carries_the_security_headers_and_no_cors_by_default(serve):
    server = serve(None)
    async with httpx.AsyncClient(base_url=server.url) as client:
        page, config, missing = await client.get("/"), await client.get("/api/config"), await client.get("/nope")
        preflight = await client.options(
            "/api/sessions",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    for response in (page, config, missing):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "microphone=(self)" in response.headers["permissions-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
    assert config.headers["cache-control"] == "no-store"  # API answers carry ICE credentials
    assert "no-store" not in page.headers.get("cache-control", "")
    assert "access-control-allow-origin" not in preflight.headers


async def test_metrics_are_not_served_under_the_public_name(serve):
    server = serve(None, public_hosts=["avatar.example.com"])
    async with httpx.AsyncClient(base_url=server.url) as client:
        direct = await client.get("/metrics")  # Prometheus or the operator: the pod's address as Host
        public = [
            await client.get("/metrics", headers={"Host": h}) for h in ("avatar.example.com", "AVATAR.example.com:443")
        ]
        page = await client.get("/api/config", headers={"Host": "avatar.example.com"})
    assert direct.status_code == 200 and "avatar_sessions_active" in direct.text
    assert [r.status_code for r in public] == [404, 404] and all("avatar_" not in r.text for r in public)
    assert page.status_code == 200  # everything else is served under the public name as before


async def test_cors_only_for_the_configured_origins(serve):
    server = serve(None, cors_origins=["https://app.example.com"])
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def preflight(origin: str) -> httpx.Response:
            headers = {
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            }
            return await client.options("/api/sessions", headers=headers)

        allowed, other = await preflight("https://app.example.com"), await preflight("https://evil.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "avatar_runtime.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_token_cli_mints_tokens_the_server_accepts_and_check_config_hides_the_secrets(tmp_path):
    env = {**os.environ, "AVATAR_SESSION_TOKEN_SECRET": SECRET}
    minted = _cli("token", "--ttl", "30", env=env)
    assert minted.returncode == 0, minted.stderr
    SessionTokens(SECRET, max_ttl_s=300).check(minted.stdout.strip())

    no_secret = {k: v for k, v in os.environ.items() if k != "AVATAR_SESSION_TOKEN_SECRET"}
    refused = _cli("token", env=no_secret)
    assert refused.returncode == 2 and "session_token_secret" in refused.stderr
    too_long = _cli("token", "--ttl", "100000", env=env)
    assert too_long.returncode == 2 and "--ttl" in too_long.stderr
    short = _cli("token", env={**env, "AVATAR_SESSION_TOKEN_SECRET": "short"})
    assert short.returncode == 2 and "at least 32" in short.stderr

    config = tmp_path / "c.yaml"
    config.write_text("server:\n  auth_token: bearer-secret-value\n")
    shown = _cli("check-config", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "bearer-secret-value" not in shown.stdout and SECRET not in shown.stdout
