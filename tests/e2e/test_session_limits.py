"""Per-session limits over a real WebRTC session: the longest a conversation may last (with a warning first) and
how many data-channel messages a browser may send per second."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer


async def test_a_session_is_warned_then_ended_at_its_time_limit(serve):
    server = serve(None, max_session_s=2.5, session_warning_s=1.0)
    peer = AvatarPeer(server.url)
    await peer.connect()
    opened = time.monotonic()
    ending = await peer.wait_event("session_ending", timeout=10)
    warned_after = time.monotonic() - opened
    assert ending["seconds_left"] == 1
    expired = await peer.wait_event("error", timeout=10)
    ended_after = time.monotonic() - opened
    assert expired["code"] == "session_expired" and "2.5 s" in expired["message"]
    assert 1.0 <= warned_after <= 2.5 and 2.0 <= ended_after <= 4.0  # 1.5 s and 2.5 s after the session opened
    for _ in range(50):  # the slot is free again
        if server.runtime.sessions.active == 0:
            break
        await asyncio.sleep(0.05)
    assert server.runtime.sessions.active == 0
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(server.url + "/metrics")).text
    assert 'avatar_sessions_total{outcome="expired"} 1.0' in metrics
    await peer.close()


async def test_no_limit_means_no_timer(serve):
    server = serve(None, max_session_s=0)
    peer = AvatarPeer(server.url)
    await peer.connect()
    names = server.call(lambda: sorted(t.get_name() for t in asyncio.all_tasks()))
    assert not [name for name in names if name.endswith("-lifetime")]
    await peer.close()


async def test_a_message_flood_is_dropped_with_one_error_and_the_session_goes_on(serve):
    server = serve(None, client_messages_per_s=5, client_messages_burst=10)
    flooder, neighbour = AvatarPeer(server.url), AvatarPeer(server.url)
    await flooder.connect()
    await neighbour.connect()
    for _ in range(40):
        flooder.send({"type": "interrupt"})  # harmless on its own: nothing is playing
    error = await flooder.wait_event("error", timeout=10)
    assert error["code"] == "rate_limited" and "5" in error["message"]
    await asyncio.sleep(0.5)
    errors = [e for _, e in flooder.received.events if e.get("type") == "error"]
    assert len(errors) == 1  # one error a second, not one per dropped message
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(server.url + "/metrics")).text
    dropped = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('avatar_client_messages_rejected_total{reason="rate_limited"}')
    )
    assert 25 <= dropped <= 30  # 40 sent, the burst of 10 (plus what refilled meanwhile) let through

    await asyncio.sleep(1.0)  # the bucket refills: the flooder may talk again, and so may everyone else
    for peer in (flooder, neighbour):
        before = len(peer.received.events)
        peer.send({"type": "text", "text": "Hello there"})
        done = await peer.wait_event("turn_end", timeout=20, after=before)
        assert done["reason"] == "done"
    await flooder.close()
    await neighbour.close()


async def test_a_browser_that_stops_reading_loses_frames_then_its_session_and_nobody_else_waits(serve):
    long_reply = "Here is the weather for today, in some detail. " * 6  # ~15 s of speech: frames keep coming
    with OpenAIStubServer(replies=lambda request: long_reply if "weather" in str(request.body) else "Hi!") as llm:
        await _stop_reading_and_watch(serve(llm, max_channel_backlog_bytes=4096, slow_client_timeout_s=2.0))


async def _stop_reading_and_watch(server) -> None:
    stalled, neighbour = AvatarPeer(server.url), AvatarPeer(server.url)
    await stalled.connect()
    await neighbour.connect()

    async def swallow(_chunk) -> None:  # its SCTP stops taking data: nothing is acknowledged, the server's queue grows
        return None

    stalled.pc.sctp._receive_data_chunk = swallow
    stalled.send({"type": "text", "text": "Hello there, please tell me about the weather today"})
    before = len(neighbour.received.events)
    neighbour.send({"type": "text", "text": "Hello there"})
    done = await neighbour.wait_event("turn_end", timeout=20, after=before)
    assert done["reason"] == "done"  # served as usual meanwhile

    for _ in range(200):
        if server.runtime.sessions.active == 1:
            break
        await asyncio.sleep(0.1)
    assert server.runtime.sessions.active == 1  # the stalled one was dropped, the neighbour stays
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(server.url + "/metrics")).text
    assert 'avatar_sessions_total{outcome="slow_client"} 1.0' in metrics
    dropped = next(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("avatar_expression_frames_dropped_total "))  # fmt: skip
    assert dropped > 0
    await neighbour.close()
    await stalled.pc.close()
