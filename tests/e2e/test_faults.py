"""Faults of the LLM and of the client, each with a real local server or peer standing in for the failing side:
the turn (or the session) ends cleanly with an `error` event and a metric, other sessions are not held up, and
nothing is left running.

The fault server speaks just enough HTTP to be an OpenAI-compatible endpoint and misbehaves on request: a user
message containing "hang" gets no answer at all, "garbage" gets a 200 event stream of nonsense, anything else a
proper one-chunk streamed answer (only the newest user message counts, not the history)."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from avatar_runtime.config import load_config

from tests.support.openai_server import OpenAIStubServer
from tests.support.peer import AvatarPeer

GOOD_REPLY = "All good here."


class FaultServer:
    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.hanging: list[asyncio.StreamWriter] = []

    async def start(self) -> FaultServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def close(self) -> None:
        for writer in self.hanging:
            writer.close()
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        body = json.loads(await reader.readexactly(length)) if length else {}
        users = [str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"]
        said = users[-1] if users else ""  # the new message only: the history repeats the earlier ones
        if "hang" in said:
            self.hanging.append(writer)  # accepted, never answered
            return
        if "garbage" in said:
            events = b"data: {this is not json\n\ndata: \x00\xff\n\nevent: ???\n\n"
        else:
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": GOOD_REPLY},
                                  "finish_reason": None}]}  # fmt: skip
            events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
            + f"content-length: {len(events)}\r\n\r\n".encode()
            + events
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def faults():
    server = await FaultServer().start()
    yield server
    await server.close()


def _serve(serve, llm, timeout_s: float = 3.0):
    config = load_config(env={})
    config.llm.timeout_s = timeout_s
    return serve(llm, config)


async def _metric(server, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(server.url + "/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def _ask(peer: AvatarPeer, text: str, timeout: float = 30.0) -> tuple[dict, list[dict]]:  # noqa: ASYNC109
    before = len(peer.received.events)
    peer.send({"type": "text", "text": text})
    end = await peer.wait_event("turn_end", timeout=timeout, after=before)
    return end, [e for _, e in peer.received.events[before:] if e.get("type") == "error"]


async def test_a_hanging_llm_times_out_one_turn_and_holds_up_nobody_else(serve, faults):
    server = _serve(serve, faults, timeout_s=3.0)
    stuck, other = AvatarPeer(server.url), AvatarPeer(server.url)
    await stuck.connect()
    await other.connect()
    stuck_turn = asyncio.create_task(_ask(stuck, "please hang"))
    await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    end, errors = await _ask(other, "hello there", timeout=10)
    assert end["reason"] == "done" and not errors
    assert loop.time() - started < 2.5  # answered while the other turn still waits for its LLM
    assert not stuck_turn.done()
    end, errors = await stuck_turn
    assert end["reason"] == "error" and [e["code"] for e in errors] == ["llm_unavailable"]
    assert "3" in errors[0]["message"]  # "did not respond within 3 s"
    assert await _metric(server, 'avatar_turns_total{reason="error"}') == 1
    end, errors = await _ask(stuck, "and now?")  # the session itself goes on
    assert end["reason"] == "done"
    for peer in (stuck, other):
        await peer.close()


async def test_garbage_from_the_llm_is_an_error_event_not_a_crash(serve, faults):
    server = _serve(serve, faults)
    peer = AvatarPeer(server.url)
    await peer.connect()
    end, errors = await _ask(peer, "garbage please")
    assert end["reason"] == "error" and [e["code"] for e in errors] == ["llm_unavailable"]
    end, _ = await _ask(peer, "hello again")
    assert end["reason"] == "done"
    await peer.close()


async def test_an_llm_that_is_down_is_an_error_event(serve):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]

    class Down:
        base_url = f"http://127.0.0.1:{closed}/v1"

    server = _serve(serve, Down())
    peer = AvatarPeer(server.url)
    await peer.connect()
    end, errors = await _ask(peer, "anyone there?", timeout=20)
    assert end["reason"] == "error" and errors and errors[0]["code"] == "llm_unavailable"
    assert "127.0.0.1" in errors[0]["message"] and "test-key" not in errors[0]["message"]
    await peer.close()


async def test_a_client_that_vanishes_mid_reply_leaves_nothing_running(serve):
    with OpenAIStubServer(replies=["One. Two. Three. Four. Five. Six. Seven. Eight."], token_delay_s=0.3) as llm:
        server = _serve(serve, llm)
        baseline = server.call(lambda: len(asyncio.all_tasks()))
        peer = AvatarPeer(server.url)
        await peer.connect()
        peer.send({"type": "text", "text": "count slowly"})
        await peer.wait_event("reply", timeout=20)
        await peer.pc.close()  # the tab is gone: no DELETE, no bye, the transport just dies
        for _ in range(200):
            if server.runtime.sessions.active == 0 and llm.requests and llm.last_request.finished.is_set():
                break
            await asyncio.sleep(0.1)
        assert server.runtime.sessions.active == 0
        assert llm.last_request.client_disconnected  # the LLM stream was closed, not left to run to its end
        for _ in range(50):
            if server.call(lambda: len(asyncio.all_tasks())) <= baseline:
                break
            await asyncio.sleep(0.1)
        assert server.call(lambda: len(asyncio.all_tasks())) <= baseline


async def test_secrets_never_reach_logs_events_or_the_config(serve, caplog):
    llm_key, turn_secret = "sk-live-DO-NOT-LEAK-4242", "turn-secret-DO-NOT-LEAK-9999"
    with OpenAIStubServer(api_key="the-right-key") as llm:  # our key is refused: 401, a logged error
        config = load_config(env={})
        config.llm.api_key = llm_key
        config.turn.urls = ["turn:turn.example.com:3478"]
        config.turn.static_auth_secret = turn_secret
        server = serve(llm, config)
        caplog.set_level("DEBUG")
        peer = AvatarPeer(server.url)
        await peer.connect()
        end, errors = await _ask(peer, "hello")
        assert end["reason"] == "error" and errors[0]["code"] == "llm_unavailable"
        async with httpx.AsyncClient() as client:
            public = (await client.get(server.url + "/api/config")).text + (
                await client.get(server.url + "/metrics")
            ).text
        await peer.close()
        assert llm.last_request.headers.get("authorization") == f"Bearer {llm_key}"  # it was really used
    seen = caplog.text + public + json.dumps([event for _, event in peer.received.events])
    assert "401" in caplog.text or "401" in json.dumps(errors)  # the failure itself is reported ...
    assert llm_key not in seen and turn_secret not in seen  # ... the secrets are not
