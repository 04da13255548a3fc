"""concurrent_limit: one session too many gets 503 + Retry-After; closing frees the slot; nothing leaks."""

from __future__ import annotations

import asyncio
import gc
import resource

import httpx
import pytest
from avatar_runtime.session import Session

from tests.support.peer import AvatarPeer, SessionRefused


def _server_tasks(server) -> int:
    return server.call(lambda: len(asyncio.all_tasks()))


def _live_sessions() -> int:
    gc.collect()
    return sum(type(obj) is Session for obj in gc.get_objects())  # (isinstance trips lazy-module proxies)


async def test_limit_plus_one_is_refused_and_a_closed_session_frees_its_slot(serve):
    server = serve(None, concurrent_limit=2, retry_after_s=7)
    peers = [AvatarPeer(server.url) for _ in range(2)]
    for peer in peers:
        await peer.connect()
    extra = AvatarPeer(server.url)
    with pytest.raises(SessionRefused) as refused:
        await extra.connect()
    assert refused.value.status == 503
    assert refused.value.headers["retry-after"] == "7"
    assert refused.value.body["error"] == "capacity" and "2" in refused.value.body["message"]
    await extra.pc.close()

    async with httpx.AsyncClient() as client:
        config = (await client.get(server.url + "/api/config")).json()
        assert config["sessions"] == {"active": 2, "limit": 2, "draining": False}
        metrics = (await client.get(server.url + "/metrics")).text
    assert 'avatar_sessions_rejected_total{reason="capacity"} 1.0' in metrics
    assert "avatar_sessions_active 2.0" in metrics and "avatar_sessions_limit 2.0" in metrics

    await peers[0].close()
    replacement = AvatarPeer(server.url)
    await replacement.connect()  # the freed slot is usable at once
    for peer in (peers[1], replacement):
        await peer.close()


async def test_twenty_open_close_cycles_leave_nothing_behind(serve):
    server = serve(None, concurrent_limit=1)
    baseline_tasks = None
    rss_after_warmup = 0
    for cycle in range(20):
        peer = AvatarPeer(server.url)
        await peer.connect()
        peer.send({"type": "text", "text": "Hello!"})
        await peer.wait_event("turn_end", timeout=20)
        await peer.close()
        await asyncio.sleep(0.05)
        if cycle == 2:
            baseline_tasks = _server_tasks(server)
            rss_after_warmup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await asyncio.sleep(0.5)
    assert _server_tasks(server) <= baseline_tasks
    assert _live_sessions() == 0
    assert server.runtime.sessions.active == 0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_after_warmup) / 1024
    print(f"peak RSS growth over 17 cycles: {grown_mb:.1f} MB")
    assert grown_mb < 60
