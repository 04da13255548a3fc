"""Stand-ins for CosyVoice on 127.0.0.1, for testing `CosyVoiceTTS`: DashScope's WebSocket API and the
self-hosted FastAPI server (CosyVoice's runtime/python/fastapi/server.py).

`DashScopeStandIn` checks what the real service checks: the `Authorization: Bearer <key>` header (else
HTTP 401 on the upgrade), a well-formed `run-task` (task_group audio, task tts, function
SpeechSynthesizer, model, voice, format, sample rate, text_type PlainText, duplex streaming) and the
task id on later commands. It answers `task-started`, then for the `continue-task` text a
`sentence-begin` event, the PCM in several binary messages (each after a `sentence-synthesis` event,
with `message_delay_s` pauses), `sentence-end`, and after `finish-task`, `task-finished`. Invalid requests
get `task-failed` with the error fields the service uses (`error_code`, `error_message`).

`CosyVoiceServerStandIn` serves `/inference_sft` (form: tts_text, spk_id) and `/inference_zero_shot`
(form: tts_text, prompt_text, file prompt_wav) and streams raw int16 PCM in pieces of an odd byte count
(so a sample is split across two reads), with pauses. Missing fields get 422, as FastAPI answers.

`behaviour` scripts failures: "fail" (task-failed at once / HTTP 500), "fail_mid" (task-failed after
`cut_after` audio messages), "stall" (never any audio), "stall_mid", "close_mid" (drop the connection
after `cut_after` messages).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.ws_standin import WebSocketStandIn

API_PATH = "/api-ws/v1/inference"
# The stand-in logs what it receives, API key included: tests that look for a leaked key skip this logger.
_LOG = logging.getLogger("tests.support.cosyvoice_server")


@dataclass
class TaskRecord:
    """One DashScope connection: its handshake headers, commands received and audio messages sent."""

    headers: dict[str, str]
    run_task: dict = field(default_factory=dict)
    commands: list[dict] = field(default_factory=list)
    audio_messages_sent: int = 0
    last_audio_sent_at: float | None = None
    finished: bool = False
    client_left_early: bool = False  # the client closed the connection before task-finished


def _event(task_id: str, event: str, payload: dict | None = None, **header: str) -> str:
    return json.dumps({"header": {"task_id": task_id, "event": event, "attributes": {}, **header},
                       "payload": payload or {}})  # fmt: skip


def _sentence(kind: str, text: str | None = None) -> dict:
    output: dict = {"sentence": {"index": 0, "words": []}, "type": kind}
    if text is not None:
        output["original_text"] = text
    return {"output": output}


def _run_task_problem(message: dict, model: str | None) -> str | None:
    """Why a run-task would be refused (None when it is well formed)."""
    header, payload = message.get("header", {}), message.get("payload", {})
    params = payload.get("parameters", {})
    checks = {
        "header.action": header.get("action") == "run-task",
        "header.task_id": bool(header.get("task_id")),
        "header.streaming": header.get("streaming") == "duplex",
        "payload.task_group": payload.get("task_group") == "audio",
        "payload.task": payload.get("task") == "tts",
        "payload.function": payload.get("function") == "SpeechSynthesizer",
        "payload.model": bool(payload.get("model")) and (model is None or payload.get("model") == model),
        "parameters.text_type": params.get("text_type") == "PlainText",
        "parameters.voice": bool(params.get("voice")),
        "parameters.format": params.get("format") in ("pcm", "wav", "mp3"),
        "parameters.sample_rate": params.get("sample_rate") in (8000, 16000, 22050, 24000, 44100, 48000),
        "payload.input": payload.get("input") == {},
    }
    bad = [name for name, ok in checks.items() if not ok]
    return f"invalid {', '.join(bad)}" if bad else None


class DashScopeStandIn(WebSocketStandIn):
    """DashScope's CosyVoice WebSocket API in the running event loop (async context manager)."""

    _log = _LOG

    def __init__(
        self,
        pcm: bytes,
        *,
        api_key: str,
        model: str | None = None,
        message_bytes: int = 4800,
        message_delay_s: float = 0.0,
        behaviour: str = "ok",
        cut_after: int = 2,
    ) -> None:
        self.pcm, self.api_key, self.model = pcm, api_key, model
        self.message_bytes, self.message_delay_s = message_bytes, message_delay_s
        self.behaviour, self.cut_after = behaviour, cut_after
        self.tasks: list[TaskRecord] = []
        self.rejected_handshakes = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{API_PATH}"

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != API_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.rejected_handshakes += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, '{"code":"InvalidApiKey"}\n')
        self.tasks.append(TaskRecord(headers=dict(request.headers.raw_items())))
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        record = self.tasks[-1]
        try:
            await self._answer(ws, record)
        except ConnectionClosed:
            record.client_left_early = not record.finished

    async def _answer(self, ws: ServerConnection, record: TaskRecord) -> None:
        record.run_task = json.loads(await ws.recv())
        task_id = record.run_task.get("header", {}).get("task_id", "")
        problem = _run_task_problem(record.run_task, self.model)
        if problem or self.behaviour == "fail":
            message = problem or "Model not found (stand-in scripted failure)"
            await ws.send(_event(task_id, "task-failed", error_code="InvalidParameter", error_message=message))
            await ws.close()
            return
        await ws.send(_event(task_id, "task-started"))
        command = json.loads(await ws.recv())
        record.commands.append(command)
        header = command.get("header", {})
        text = command.get("payload", {}).get("input", {}).get("text")
        if header.get("action") != "continue-task" or header.get("task_id") != task_id or not text:
            await ws.send(_event(task_id, "task-failed", error_code="InvalidParameter",
                                 error_message=f"unexpected command {command}"))  # fmt: skip
            await ws.close()
            return
        if self.behaviour == "stall":
            await ws.wait_closed()
            return
        await ws.send(_event(task_id, "result-generated", _sentence("sentence-begin", text)))
        for start in range(0, len(self.pcm), self.message_bytes):
            if record.audio_messages_sent == self.cut_after and await self._cut(ws, task_id):
                return
            if start and self.message_delay_s:
                await asyncio.sleep(self.message_delay_s)
            await ws.send(_event(task_id, "result-generated", _sentence("sentence-synthesis")))
            await ws.send(self.pcm[start : start + self.message_bytes])
            record.audio_messages_sent += 1
            record.last_audio_sent_at = time.perf_counter()
        await ws.send(_event(task_id, "result-generated", _sentence("sentence-end", text)))
        finish = json.loads(await ws.recv())
        record.commands.append(finish)
        if finish.get("header", {}).get("action") != "finish-task" or finish["header"].get("task_id") != task_id:
            await ws.send(_event(task_id, "task-failed", error_code="InvalidParameter", error_message="no finish-task"))
        else:
            await ws.send(_event(task_id, "task-finished", {"usage": {"characters": len(text)}}))
            record.finished = True
        await ws.wait_closed()

    async def _cut(self, ws: ServerConnection, task_id: str) -> bool:
        """Apply a mid-stream failure behaviour; True when the task ends here."""
        if self.behaviour == "fail_mid":
            await ws.send(_event(task_id, "task-failed", error_code="InternalError", error_message="engine crashed"))
            await ws.close()
        elif self.behaviour == "close_mid":
            ws.transport.abort()  # the connection drops, no close frame
        elif self.behaviour == "stall_mid":
            await ws.wait_closed()
        else:
            return False
        return True


@dataclass
class InferenceRequest:
    path: str
    form: dict[str, str]
    prompt_wav: bytes | None = None
    bytes_sent: int = 0
    last_audio_sent_at: float | None = None
    client_left_early: bool = False  # the client hung up before the whole body was sent


class CosyVoiceServerStandIn:
    """CosyVoice's FastAPI server (the non-streaming-JSON endpoints that return raw int16 PCM)."""

    def __init__(
        self,
        pcm: bytes,
        *,
        piece_bytes: int = 4801,
        piece_delay_s: float = 0.0,
        behaviour: str = "ok",
        cut_after: int = 2,
    ) -> None:
        self.pcm, self.piece_bytes, self.piece_delay_s = pcm, piece_bytes, piece_delay_s
        self.behaviour, self.cut_after = behaviour, cut_after
        self.requests: list[InferenceRequest] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> CosyVoiceServerStandIn:
        app = web.Application()
        app.router.add_post("/inference_sft", self._inference)
        app.router.add_post("/inference_zero_shot", self._inference)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # aiohttp has no public accessor for port 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _inference(self, request: web.Request) -> web.StreamResponse:
        post = await request.post()
        form = {k: v for k, v in post.items() if isinstance(v, str)}
        upload = post.get("prompt_wav")
        record = InferenceRequest(request.path, form, upload.file.read() if isinstance(upload, web.FileField) else None)
        self.requests.append(record)
        required = ["tts_text", "spk_id"] if request.path == "/inference_sft" else ["tts_text", "prompt_text"]
        missing = [name for name in required if not form.get(name)]
        if request.path == "/inference_zero_shot" and record.prompt_wav is None:
            missing.append("prompt_wav")
        if missing:
            return web.json_response({"detail": [{"loc": ["body", m], "msg": "Field required"} for m in missing]},
                                     status=422)  # fmt: skip
        if self.behaviour == "fail":
            return web.Response(status=500, text="Internal Server Error")
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        try:
            await self._stream(request, response, record)
        except ConnectionResetError:
            record.client_left_early = True
        return response

    async def _stream(self, request: web.Request, response: web.StreamResponse, record: InferenceRequest) -> None:
        for n, start in enumerate(range(0, len(self.pcm), self.piece_bytes)):
            if n == self.cut_after and self.behaviour in ("stall_mid", "close_mid"):
                if self.behaviour == "close_mid":
                    request.transport.abort()
                else:
                    await asyncio.sleep(3600)
                return
            if self.behaviour == "stall":
                await asyncio.sleep(3600)
            if start and self.piece_delay_s:
                await asyncio.sleep(self.piece_delay_s)
            await response.write(self.pcm[start : start + self.piece_bytes])
            record.bytes_sent += len(self.pcm[start : start + self.piece_bytes])
            record.last_audio_sent_at = time.perf_counter()
        await response.write_eof()
