"""Bad input gets a clear JSON error, and the server keeps serving the sessions that behave."""

from __future__ import annotations

import httpx
import pytest

from tests.support.peer import AvatarPeer


@pytest.fixture
def server(serve):
    return serve(None, concurrent_limit=3)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "bad_json"),
        (b'["offer"]', {}, 400, "bad_request"),
        (b'{"sdp": "hello", "type": "offer"}', {}, 400, "bad_sdp"),
        (b'{"sdp": "v=0\\r\\n", "type": "answer"}', {}, 400, "bad_request"),
        (b'{"sdp": "v=0\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n", "type": "offer"}', {}, 400, "bad_sdp"),
        (b'{"sdp": "v=0\\r\\nm=audio 9 x\\r\\nm=application 9 x\\r\\n", "type": "offer"}', {}, 400, "bad_sdp"),
        (b"x" * 200_000, {}, 413, "body_too_large"),
    ],
)
async def test_bad_offers_are_clear_errors(server, body, headers, status, code):
    async with httpx.AsyncClient() as client:
        response = await client.post(server.url + "/api/sessions", content=body, headers=headers)
    assert response.status_code == status
    payload = response.json()
    assert payload["error"] == code and len(payload["message"]) > 10
    assert server.runtime.sessions.active == 0


async def test_unknown_sessions_and_paths(server):
    async with httpx.AsyncClient() as client:
        deleted = await client.delete(server.url + "/api/sessions/does-not-exist")
        assert deleted.status_code == 404 and deleted.json()["error"] == "unknown_session"
        missing = await client.get(server.url + "/nope")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        avatar = await client.get(server.url + "/avatars/..%2Fetc%2Fpasswd.zip")
        assert avatar.status_code == 404 and avatar.json()["error"] in ("unknown_avatar", "not_found")
        wrong_method = await client.put(server.url + "/api/sessions")
        assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"


async def test_garbage_on_the_data_channel_is_answered_and_the_server_keeps_serving(server):
    rude, polite = AvatarPeer(server.url), AvatarPeer(server.url)
    await rude.connect()
    await polite.connect()
    for garbage in ["not json", b"\x00\xff binary", '{"type": "dance"}', '{"type": "text"}', "[]", "{" * 9000]:
        rude.send(garbage)
    errors = []
    for _ in range(6):
        errors.append(await rude.wait_event("error", after=len(errors) and _index_after(rude, errors[-1])))
    assert {e["code"] for e in errors} == {"bad_message"}
    # Both sessions still work.
    for peer in (rude, polite):
        peer.send({"type": "text", "text": "Hello there"})
        done = await peer.wait_event("turn_end", timeout=20)
        assert done["reason"] == "done"
    await rude.close()
    await polite.close()


def _index_after(peer: AvatarPeer, event: dict) -> int:
    return next(i for i, (_, e) in enumerate(peer.received.events) if e is event) + 1
