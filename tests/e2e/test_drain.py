"""Graceful drain of `avatar-runtime serve` (issue 6): a real server process, a real WebRTC peer, real signals.

After SIGTERM the server takes no new session (503 `draining`, /readyz 503) while the live one keeps its audio and
expression frames and can still talk; the process exits 0 when the session ends, or closes it with an `error`
`server_shutdown` event once `server.drain_timeout_s` has passed. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.peer import AvatarPeer, SessionRefused
from tests.support.serve_process import start_serve

RETRY_AFTER_S = 2


class ServeProcess:
    """`avatar-runtime serve` with its log collected by a thread (a full pipe would block the server)."""

    def __init__(self, tmp_path: Path, drain_timeout_s: float) -> None:
        config = tmp_path / "config.yaml"
        config.write_text(f"server:\n  drain_timeout_s: {drain_timeout_s}\n  retry_after_s: {RETRY_AFTER_S}\n")
        self.process, self.url = start_serve(config, tmp_path, tls=False)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, self.log
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"runtime did not become ready:\n{self.log}"
            time.sleep(0.1)

    def signal(self, sig: int) -> float:
        self.process.send_signal(sig)
        return time.monotonic()

    async def exit_code(self, timeout_s: float) -> int:
        try:
            return await asyncio.to_thread(self.process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit within {timeout_s} s:\n{self.log}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)


@pytest.fixture
def serve_process(tmp_path):
    started: list[ServeProcess] = []

    def start(drain_timeout_s: float) -> ServeProcess:
        server = ServeProcess(tmp_path, drain_timeout_s)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()


async def _until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.05)


async def _connected_peer(url: str) -> AvatarPeer:
    """A live session: connected, the avatar's (silent) audio track playing."""
    peer = AvatarPeer(url)
    await peer.connect()
    await _until(lambda: len(peer.received.audio) > 5, 10, "no audio")
    return peer


async def _hang_up(peer: AvatarPeer) -> None:
    try:
        await peer.close()
    except httpx.TransportError:  # the server has exited already: only our side is left to close
        peer.session_id = None
        await peer.close()


async def _wait_draining(url: str, timeout_s: float = 5.0) -> dict:
    """The /readyz body once the server says it drains (the signal is handled on the server's own time)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            ready = await client.get(url + "/readyz")
            if ready.status_code != 200 or time.monotonic() > deadline:
                assert ready.status_code == 503, ready.text
                return ready.json()
            await asyncio.sleep(0.05)


async def _assert_refuses_new_sessions(url: str) -> None:
    assert (await _wait_draining(url))["error"] == "draining"
    newcomer = AvatarPeer(url)
    with pytest.raises(SessionRefused) as refused:
        await newcomer.connect()
    await newcomer.pc.close()
    assert refused.value.status == 503 and refused.value.body["error"] == "draining", refused.value.body
    assert refused.value.headers["retry-after"] == str(RETRY_AFTER_S)
    async with httpx.AsyncClient() as client:
        config = (await client.get(url + "/api/config")).json()
        metrics = (await client.get(url + "/metrics")).text
        healthy = await client.get(url + "/healthz")
    assert config["sessions"] == {"active": 1, "limit": 4, "draining": True}
    assert "avatar_draining 1.0" in metrics
    assert 'avatar_sessions_rejected_total{reason="draining"} 1.0' in metrics
    assert healthy.status_code == 200  # alive: a liveness probe must not kill a draining pod


def _frames_since(peer: AvatarPeer, since: float) -> int:
    return sum(1 for t, _ in peer.received.frames if t > since)


async def _talks_after(peer: AvatarPeer, since: float) -> None:
    """A turn started after the signal is answered: its reply audio and expression frames arrive."""
    events_before = len(peer.received.events)
    peer.send({"type": "text", "text": "Are you still there?"})
    await peer.wait_event("reply", timeout=15, after=events_before)
    await _until(lambda: _frames_since(peer, since) > 15, 10, "under 15 expression frames after the signal")
    assert [t for t in peer.received.audio_times if t > since], "no audio after the signal"


async def test_sigterm_drains_and_exits_0_when_the_last_session_ends(serve_process):
    server = serve_process(drain_timeout_s=60)
    peer = await _connected_peer(server.url)
    try:
        signalled = server.signal(signal.SIGTERM)
        await _assert_refuses_new_sessions(server.url)
        await _talks_after(peer, signalled)
        peer.send({"type": "interrupt"})
        await peer.wait_event("turn_end", timeout=10, reason="interrupted")  # turns still work end to end
        assert server.process.poll() is None, "exited while a session was live"
    finally:
        await _hang_up(peer)  # DELETE: the session ends on its own, well before the 60 s limit
    ended = time.monotonic()
    assert await server.exit_code(timeout_s=10) == 0, server.log
    assert time.monotonic() - ended < 5
    assert "SIGTERM: draining 1 sessions, up to 60 s" in server.log
    assert "drain: every session has ended" in server.log
    assert not peer.received.of_type("error")


async def test_drain_limit_closes_the_live_session_with_server_shutdown_and_exits_0(serve_process):
    server = serve_process(drain_timeout_s=3)
    peer = await _connected_peer(server.url)
    try:
        signalled = server.signal(signal.SIGTERM)
        await _assert_refuses_new_sessions(server.url)
        await _talks_after(peer, signalled)
        error = await peer.wait_event("error", timeout=10, code="server_shutdown")
        told_after = peer.event_time("error", code="server_shutdown") - signalled
        assert 2.9 <= told_after < 5, told_after
        assert "shutting down" in error["message"]
        # Media flowed right up to the limit: audio (silence between turns is sent too) in its last half second.
        assert [t for t in peer.received.audio_times if told_after - 0.5 < t - signalled < told_after]
        assert await server.exit_code(timeout_s=5) == 0, server.log
    finally:
        await _hang_up(peer)
    assert "drain: 3 s limit reached" in server.log and "closing 1 sessions" in server.log


async def test_a_second_signal_stops_at_once_and_still_tells_the_session(serve_process):
    server = serve_process(drain_timeout_s=300)
    peer = await _connected_peer(server.url)
    try:
        server.signal(signal.SIGINT)  # Ctrl-C drains too
        await _wait_draining(server.url)
        again = server.signal(signal.SIGTERM)
        await peer.wait_event("error", timeout=5, code="server_shutdown")
        assert await server.exit_code(timeout_s=5) == 0, server.log
        assert time.monotonic() - again < 4
    finally:
        await _hang_up(peer)
    assert "SIGINT: draining 1 sessions, up to 300 s; Ctrl-C again to stop now" in server.log
    assert "SIGTERM again: closing the remaining sessions now" in server.log


async def test_drain_timeout_0_closes_sessions_at_once(serve_process):
    server = serve_process(drain_timeout_s=0)
    peer = await _connected_peer(server.url)
    try:
        signalled = server.signal(signal.SIGTERM)
        await peer.wait_event("error", timeout=5, code="server_shutdown")
        assert await server.exit_code(timeout_s=5) == 0, server.log
        assert time.monotonic() - signalled < 4
    finally:
        await _hang_up(peer)
