"""Soak on loopback: 200 session open/close cycles, then 50 turns in flight at once with barge-in over 10 sessions.
Zero errors; the server's task count and this process's RSS come back to where they were (both printed: run with
`-s` to see them). The runtime runs in this process (tests/support/runtime_server.py), so RSS covers the peers too."""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path

from avatar_runtime.session import Session

from tests.support.peer import AvatarPeer

CYCLES = 200
SESSIONS, TURNS_EACH = 10, 5


def _rss_mb() -> float:
    fields = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) / 1024  # current, not peak: it must come back down


def _tasks(server) -> int:
    return server.call(lambda: len(asyncio.all_tasks()))


def _errors(peer: AvatarPeer) -> list[dict]:
    return [event for _, event in peer.received.events if event.get("type") == "error"]


async def _settle(server, baseline: int) -> int:
    for _ in range(100):
        if _tasks(server) <= baseline and server.runtime.sessions.active == 0:
            break
        await asyncio.sleep(0.1)
    return _tasks(server)


async def test_200_open_close_cycles(serve):
    server = serve(None, concurrent_limit=2, sessions_per_minute=0)
    for _ in range(3):  # warm-up: lazily created objects, caches, the first DTLS contexts
        peer = AvatarPeer(server.url)
        await peer.connect()
        await peer.close()
    await asyncio.sleep(0.3)
    gc.collect()
    tasks_before, rss_before, threads_before = _tasks(server), _rss_mb(), threading.active_count()
    errors = 0
    for _ in range(CYCLES):
        peer = AvatarPeer(server.url)
        await peer.connect()
        errors += len(_errors(peer))
        await peer.close()
    tasks_after = await _settle(server, tasks_before)
    gc.collect()
    rss_after = _rss_mb()
    threads_after = threading.active_count()
    print(f"\nsoak: {CYCLES} open/close cycles: {errors} errors; server tasks {tasks_before} -> {tasks_after}; "
          f"threads {threads_before} -> {threads_after}; "
          f"RSS {rss_before:.0f} -> {rss_after:.0f} MB ({rss_after - rss_before:+.1f})")  # fmt: skip
    assert errors == 0
    assert tasks_after <= tasks_before
    assert threads_after <= threads_before + 2  # executor threads may have grown to their cap, nothing per session
    assert sum(type(obj) is Session for obj in gc.get_objects()) == 0
    assert rss_after - rss_before < 40  # ~0.2 MB a session would be a leak: 200 cycles make it 40 MB


async def _burst(server) -> tuple[dict[str, int], list[dict]]:
    """10 sessions, 5 turns each sent 150 ms apart (each barges in on the last), every other one also
    interrupted explicitly; returns how the turns ended and the error events seen."""
    peers = [AvatarPeer(server.url) for _ in range(SESSIONS)]
    await asyncio.gather(*(peer.connect() for peer in peers))

    async def talk(peer: AvatarPeer, index: int) -> None:
        for turn in range(TURNS_EACH):
            peer.send({"type": "text", "text": f"Hello there, this is message {index}.{turn}"})
            await asyncio.sleep(0.15)
            if turn % 2:
                peer.send({"type": "interrupt"})
        await peer.wait_event("turn_end", timeout=90, reason="done")

    await asyncio.gather(*(talk(peer, i) for i, peer in enumerate(peers)))
    ended = [event for peer in peers for _, event in peer.received.events if event.get("type") == "turn_end"]
    errors = [error for peer in peers for error in _errors(peer)]
    for peer in peers:
        await peer.close()
    reasons = {reason: sum(e["reason"] == reason for e in ended) for reason in ("done", "interrupted", "error")}
    return reasons, errors


async def test_50_turns_in_flight_with_barge_in(serve):
    server = serve(None, concurrent_limit=SESSIONS, sessions_per_minute=0, client_messages_burst=60)
    idle_tasks = _tasks(server)
    results, rss = [], [_rss_mb()]
    for _ in range(2):  # the second burst must not grow memory again: what the first one allocated is reused
        results.append(await _burst(server))
        tasks_after = await _settle(server, idle_tasks)
        gc.collect()
        rss.append(_rss_mb())
        assert tasks_after <= idle_tasks and server.runtime.sessions.active == 0
    for reasons, errors in results:
        print(f"\nsoak: {SESSIONS * TURNS_EACH} turns on {SESSIONS} sessions: {reasons}, {len(errors)} errors")
        assert errors == [] and reasons["error"] == 0
        assert reasons["interrupted"] >= SESSIONS  # barge-in really happened
        assert reasons["done"] >= SESSIONS  # and each session's last reply played to its end
    print(f"soak: server tasks idle {idle_tasks}, after each burst {_tasks(server)}; "
          f"RSS {rss[0]:.0f} -> {rss[1]:.0f} -> {rss[2]:.0f} MB")  # fmt: skip
    assert rss[2] - rss[1] < 15
