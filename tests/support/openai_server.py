"""A real OpenAI-compatible HTTP server for tests: chat completions (streaming and not) and the model list.

Tests talk to it over loopback with the real `openai` client, so the code under test sees the same wire
protocol (SSE framing, error bodies, connection teardown) it sees against OpenAI, Ollama or LM Studio.
It runs uvicorn on its own thread and event loop, so it serves sync and async tests alike, and it records
every request and whether the client hung up mid-stream (what barge-in relies on).

    with OpenAIStubServer(replies=["Hi there!"], token_delay_s=0.01) as srv:
        llm = OpenAILLM(base_url=srv.base_url, api_key=None, model="stub-model")
        ...
        assert srv.last_request.body["stream"] is True
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.threaded_server import ThreadedUvicorn


@dataclass(frozen=True)
class StubError:
    """A scripted failure: the server answers with `status` and an OpenAI-style error body."""

    status: int
    message: str = "Scripted failure"
    code: str | None = None
    type: str = "invalid_request_error"


@dataclass
class RecordedRequest:
    """One request as the server saw it; stream fields are updated while the response is being sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON (None when the body is empty or not JSON)
    status: int = 0
    reply: str | None = None
    stream: bool = False
    tokens_sent: int = 0
    completed: bool = False  # the whole reply and `[DONE]` went out
    client_disconnected: bool = False  # the client closed the connection before `completed`
    disconnected_at: float | None = None  # time.monotonic() when the disconnect was seen
    finished: threading.Event = field(default_factory=threading.Event)  # the handler has returned

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages", [])) if isinstance(self.body, dict) else []


@dataclass(frozen=True)
class StubToolCall:
    """A scripted tool call; `arguments` is sent as JSON text (a str is sent as it is, valid or not)."""

    name: str
    arguments: dict | str = field(default_factory=dict)

    @property
    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class StubReply:
    """A scripted reply with tool calls, streamed as OpenAI does: each call's name first, then its arguments in
    pieces, the calls before the text (or after it), finish_reason "tool_calls"."""

    text: str = ""
    tool_calls: tuple[StubToolCall, ...] = ()
    calls_after_text: bool = False


Reply = str | StubError | StubReply
ReplyFn = Callable[[RecordedRequest], Reply]


def echo_reply(request: RecordedRequest) -> str:
    """The default reply: deterministic and derived from the last user message, so tests can predict it."""
    user = [m.get("content", "") for m in request.messages if m.get("role") == "user"]
    last = str(user[-1]).strip() if user else ""
    return f"You said: {last}" if last else "Hello from the stub server."


def split_tokens(text: str) -> list[str]:
    """Split like a real tokenizer roughly does: words with their leading whitespace (' world')."""
    return re.findall(r"\s*\S+", text) or [text]


class OpenAIStubServer:
    """Thread-hosted uvicorn server speaking the OpenAI chat completions protocol on 127.0.0.1:<ephemeral>.

    `replies` is a list (popped in order; when it runs out the echo reply is used) or a function of the
    request; an item may be a `StubError` to fail that request. `api_key`, when set, is required as a
    bearer token (else 401). `models`, when set, lists the only models served (others get 404
    model_not_found). All of these are plain attributes and may be changed while the server runs.
    """

    def __init__(
        self,
        replies: Sequence[Reply] | ReplyFn | None = None,
        *,
        token_delay_s: float = 0.0,
        first_token_delay_s: float = 0.0,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
    ):
        self.replies: list[Reply] | ReplyFn | None = list(replies) if isinstance(replies, (list, tuple)) else replies
        self.token_delay_s = token_delay_s
        self.first_token_delay_s = first_token_delay_s
        self.api_key = api_key
        self.models = list(models) if models is not None else None
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping: asyncio.Event | None = None
        self._http = ThreadedUvicorn(
            self._app, "openai-stub", interface="asgi3", lifespan="off", timeout_graceful_shutdown=2
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def port(self) -> int:
        return self._http.port

    def start(self) -> OpenAIStubServer:
        self._http.start(on_loop=self._make_stopping)
        return self

    def _make_stopping(self) -> None:
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        # Wake streaming handlers that are sleeping between tokens so shutdown does not wait for them.
        if self._http.loop is not None and self._stopping is not None:
            self._http.loop.call_soon_threadsafe(self._stopping.set)
        self._http.stop(join_s=10)

    __enter__ = start

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise AssertionError("the stub server has not received any request")
        return self.requests[-1]

    def wait_for_disconnect(self, within_s: float = 1.0, request: RecordedRequest | None = None) -> bool:
        """Wait up to `within_s` for the (last) request's handler to end; True if the client hung up early."""
        rec = request or self.last_request
        rec.finished.wait(within_s)
        return rec.client_disconnected

    async def await_disconnect(self, within_s: float = 1.0, request: RecordedRequest | None = None) -> bool:
        """`wait_for_disconnect` for async tests (does not block the test's event loop)."""
        return await asyncio.to_thread(self.wait_for_disconnect, within_s, request)

    async def _app(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rec = RecordedRequest(scope["method"], scope["path"], headers, body)
        with self._lock:
            self.requests.append(rec)
        try:
            await self._route(rec, receive, send)
        finally:
            rec.finished.set()

    async def _route(self, rec: RecordedRequest, receive: Callable, send: Callable) -> None:
        path = rec.path.rstrip("/")
        if rec.method == "GET" and path == "/v1/models":
            names = self.models or ["stub-model"]
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "stub"} for n in names]
            return await self._json(rec, send, 200, {"object": "list", "data": data})
        if rec.method != "POST" or path != "/v1/chat/completions":
            return await self._error(rec, send, StubError(404, f"No route for {rec.method} {rec.path}"))
        if self.api_key is not None and rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._error(rec, send, StubError(401, "Incorrect API key provided.", "invalid_api_key"))
        if not isinstance(rec.body, dict) or not isinstance(rec.body.get("messages"), list):
            return await self._error(rec, send, StubError(400, "'messages' is required"))
        model = str(rec.body.get("model", ""))
        if self.models is not None and model not in self.models:
            missing = StubError(404, f"The model '{model}' does not exist", "model_not_found")
            return await self._error(rec, send, missing)
        reply = self._next_reply(rec)
        if isinstance(reply, StubError):
            return await self._error(rec, send, reply)
        calls: tuple[StubToolCall, ...] = ()
        calls_after = False
        if isinstance(reply, StubReply):
            reply, calls, calls_after = reply.text, reply.tool_calls, reply.calls_after_text
        rec.reply = reply
        if rec.body.get("stream"):
            return await self._stream(rec, receive, send, model, reply, calls, calls_after)
        completion = {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(split_tokens(reply)), "total_tokens": 0},
        }
        rec.completed = True
        await self._json(rec, send, 200, completion)

    def _next_reply(self, rec: RecordedRequest) -> Reply:
        if callable(self.replies):
            return self.replies(rec)
        with self._lock:
            if self.replies:
                return self.replies.pop(0)  # consumed in order, so a test can script one reply per turn
        return echo_reply(rec)

    async def _stream(
        self,
        rec: RecordedRequest,
        receive: Callable,
        send: Callable,
        model: str,
        text: str,
        calls: tuple[StubToolCall, ...] = (),
        calls_after_text: bool = False,
    ) -> None:
        rec.stream, rec.status = True, 200
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        hung_up = asyncio.Event()

        async def watch() -> None:
            # After the request body, the next ASGI message is http.disconnect when the client goes away.
            while (await receive())["type"] != "http.disconnect":
                pass
            hung_up.set()

        watcher = asyncio.create_task(watch())

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        tokens = split_tokens(text) if text else []
        call_events = []
        for index, call in enumerate(calls):
            head = {"index": index, "id": f"call_{index}", "type": "function",
                    "function": {"name": call.name, "arguments": ""}}  # fmt: skip
            call_events.append(chunk({"tool_calls": [head]}))
            args = call.arguments_text
            pieces = [args[i : i + 7] for i in range(0, len(args), 7)]  # arguments arrive in fragments
            call_events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces]
        text_events = [chunk({"content": t}) for t in tokens]
        body = text_events + call_events if calls_after_text else call_events + text_events
        finish = "tool_calls" if calls else "stop"
        events = [chunk({"role": "assistant", "content": None if calls and not text else ""})]
        events += body + [chunk({}, finish), b"data: [DONE]\n\n"]
        tokens = body  # pacing and counting below treat every content/tool piece as a token
        try:
            for i, event in enumerate(events):
                delay = self.first_token_delay_s if i == 0 else self.token_delay_s if 1 < i <= len(tokens) else 0
                if delay > 0:
                    await self._wait_any(hung_up, delay)
                if hung_up.is_set() or (self._stopping is not None and self._stopping.is_set()):
                    break
                await send({"type": "http.response.body", "body": event, "more_body": True})
                rec.tokens_sent += 1 if 1 <= i <= len(tokens) else 0
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                rec.completed = True
            if not rec.completed:  # give a client that is in the middle of closing a moment to be noticed
                await self._wait_any(hung_up, 0.05)
                if not hung_up.is_set():  # server stopping: end the body cleanly (the reply stays incomplete)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if hung_up.is_set() and not rec.completed:
                rec.client_disconnected, rec.disconnected_at = True, time.monotonic()
            watcher.cancel()

    async def _wait_any(self, hung_up: asyncio.Event, delay: float) -> None:
        """Sleep `delay` but wake at once on a client disconnect or server stop (disconnects are timely)."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (hung_up, self._stopping) if e is not None]
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()

    async def _json(self, rec: RecordedRequest, send: Callable, status: int, payload: Any) -> None:
        rec.status = status
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _error(self, rec: RecordedRequest, send: Callable, err: StubError) -> None:
        body = {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code}}
        await self._json(rec, send, err.status, body)


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStubServer]:
    """A running stub server with the echo reply; tests reconfigure it through its attributes."""
    with OpenAIStubServer() as srv:
        yield srv


def closed_port_url() -> str:
    """A base URL on a loopback port nobody listens on (bound then released), for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
