"""The HTTP API of DESIGN §3 (FastAPI): web client, config, sessions, avatars, health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path

from aiortc import RTCSessionDescription
from aiortc.sdp import SessionDescription
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from .access import AccessDenied, Admission
from .config import RuntimeConfig
from .engines.loader import OFFLINE_LLM_NOTICE, build_engines
from .ice import ice_servers
from .languages import languages_of
from .metrics import RuntimeMetrics
from .pipeline.reply import Engines
from .protocol import ARKIT_BLENDSHAPES, EXPRESSION_FPS
from .scheduling import prioritise_loop
from .security_headers import SecurityHeaders
from .sessions import ServerDraining, SessionLimitReached, SessionManager
from .transport.tuning import apply_tuning
from .web_assets import AvatarCatalog, resolve_web_dir

log = logging.getLogger(__name__)
_AVATAR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class Runtime:
    """What the routes share: config, metrics, engines (loaded at start-up) and the sessions."""

    def __init__(self, config: RuntimeConfig, engines: Engines | None = None) -> None:
        self.config = config
        self.metrics = RuntimeMetrics()
        self.engines = engines
        self.sessions: SessionManager | None = None
        self.load_error: str | None = None
        self.draining = False
        self._owns_engines = engines is None  # engines handed in (tests share them) are closed by their owner

    async def start(self) -> None:
        apply_tuning(self.config.server.opus_bitrate, self.config.server.mic_jitter_packets)
        # Before the models load: their native thread pools inherit the lower priority of the executor thread.
        prioritise_loop(asyncio.get_running_loop(), self.config.server.inference_nice)
        if self.engines is None:
            try:
                self.engines = await asyncio.to_thread(build_engines, self.config)
            except Exception as exc:  # surfaced on /readyz and in the log, the server stays up to say so
                self.load_error = f"{type(exc).__name__}: {exc}"
                log.error("models failed to load: %s", self.load_error)
                return
        self.sessions = SessionManager(self.engines, self.config, self.metrics)
        if self.draining:  # the signal came while the models were loading
            self.sessions.drain()

    def begin_drain(self) -> None:
        """Stop taking sessions (503 draining, /readyz 503); the live ones go on. See lifecycle.py."""
        self.draining = True
        self.metrics.draining.set(1)
        if self.sessions is not None:
            self.sessions.drain()

    @property
    def active_sessions(self) -> int:
        return self.sessions.active if self.sessions is not None else 0

    async def stop(self) -> None:
        if self.sessions is not None:
            await self.sessions.close_all()
        if self._owns_engines and self.engines is not None:
            for engine in (self.engines.asr, self.engines.tts, self.engines.a2e):
                close = getattr(engine, "close", None)  # batching workers, network clients
                if close is not None:
                    result = close()
                    if asyncio.iscoroutine(result):
                        await result


async def _read_offer(request: Request, limit: int) -> RTCSessionDescription:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"request body larger than {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"request body larger than {limit} bytes")
    return offer_from_body(bytes(body))


# The body of POST /api/sessions, for the OpenAPI document (the route reads the raw body itself: offer_from_body).
_OFFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["sdp", "type"],
                    "properties": {
                        "sdp": {"type": "string", "description": "the browser's SDP offer (non-trickle ICE)"},
                        "type": {"type": "string", "enum": ["offer"]},
                    },
                }
            }
        },
    }
}
MAX_SDP_LINES = 400  # a browser's offer has ~60-120 lines; aiortc's parser is not written for hostile input


def offer_from_body(body: bytes) -> RTCSessionDescription:
    """The `POST /api/sessions` body → the browser's SDP offer; anything else is an ApiError(400) saying what."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "bad_json", "request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", 'body must be a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = payload.get("sdp"), payload.get("type")
    if kind != "offer":
        raise ApiError(400, "bad_request", 'field "type" must be "offer"')
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ApiError(400, "bad_sdp", 'field "sdp" must be an SDP offer (text starting with "v=0")')
    if sdp.count("\n") > MAX_SDP_LINES:
        raise ApiError(400, "bad_sdp", f"the SDP offer has more than {MAX_SDP_LINES} lines")
    if "m=audio" not in sdp:
        raise ApiError(400, "bad_sdp", "the offer has no audio section: send the microphone as an audio track")
    if "m=application" not in sdp:
        raise ApiError(400, "bad_sdp", 'the offer has no data channel: create the "avatar" channel before the offer')
    try:
        SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted types (ValueError, AssertionError, IndexError…)
        raise ApiError(400, "bad_sdp", f"the SDP offer could not be parsed: {type(exc).__name__} {exc}") from None
    return RTCSessionDescription(sdp=sdp, type="offer")


def create_app(config: RuntimeConfig, engines: Engines | None = None) -> FastAPI:
    """The ASGI app; `engines` may be passed in (tests share loaded models), else they load at start-up."""
    runtime = Runtime(config, engines)
    web_dir = resolve_web_dir(config.server.web_dir)
    avatars = AvatarCatalog(config.avatar.dir)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        selected = avatars.describe(config.avatar.name)["avatar"]
        if not selected["ok"]:
            log.error("avatar: %s", selected["error"])
        await runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(title="Gaussian Avatar runtime", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.add_middleware(SecurityHeaders)
    if config.server.cors_origins:  # a page on another origin embeds the avatar; none by default (same origin)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.server.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal", "the server failed to handle this request; see its log")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "bad_request", str(exc.errors()[0].get("msg", "invalid request")))

    @app.get("/api/config")
    async def api_config() -> dict:
        llm = runtime.engines.llm if runtime.engines else None
        return {
            "iceServers": ice_servers(config.turn),
            "blendshapes": list(ARKIT_BLENDSHAPES),
            "fps": EXPRESSION_FPS,
            **avatars.describe(config.avatar.name),
            "sessions": {
                "active": runtime.active_sessions,
                "limit": config.server.concurrent_limit,
                "draining": runtime.draining,
            },
            "llm": {
                "engine": llm.name if llm else None,
                "embedded": bool(llm and llm.embedded),
                "notice": OFFLINE_LLM_NOTICE if llm and llm.embedded else None,
            },
            "authRequired": bool(config.server.auth_token or config.server.session_token_secret),
            "tokenUrl": config.server.token_url,
            "languages": languages_of(config).as_dict(),
        }

    admission = Admission(config.server)

    @app.post("/api/sessions", status_code=201, openapi_extra=_OFFER_BODY)
    async def open_session(request: Request) -> JSONResponse:
        try:
            ticket = admission.check(
                request.client.host if request.client else None,
                request.headers.get("x-forwarded-for"),
                request.headers.get("authorization", ""),
            )
        except AccessDenied as denied:
            runtime.metrics.sessions_rejected.labels(reason=denied.code).inc()
            retry = {"Retry-After": str(denied.retry_after_s)} if denied.retry_after_s else None
            raise ApiError(denied.status, denied.code, str(denied), retry) from None
        try:
            session, answer = await _open(request)
        except BaseException:
            admission.refund(ticket)  # full, draining, bad offer: the client's retry may use the same token
            raise
        return JSONResponse({"session_id": session.id, "sdp": answer.sdp, "type": answer.type}, status_code=201)

    async def _open(request: Request):
        if runtime.sessions is None:
            reason = runtime.load_error or "models are still loading"
            raise ApiError(503, "not_ready", f"the runtime is not ready: {reason}", {"Retry-After": "5"})
        offer = await _read_offer(request, config.server.max_body_bytes)
        try:
            return await runtime.sessions.open(offer)
        except ServerDraining:
            retry = str(config.server.retry_after_s)
            message = f"this server is shutting down and takes no new conversations; try again in {retry} s"
            raise ApiError(503, "draining", message, {"Retry-After": retry}) from None
        except SessionLimitReached:
            retry = str(config.server.retry_after_s)
            message = f"all {runtime.sessions.limit} conversation slots are busy; try again in {retry} s"
            raise ApiError(503, "capacity", message, {"Retry-After": retry}) from None
        except ValueError as exc:
            raise ApiError(400, "bad_sdp", f"the SDP offer could not be used: {exc}") from None

    @app.delete("/api/sessions/{session_id}", status_code=204)
    async def close_session(session_id: str) -> Response:
        if runtime.sessions is None or not await runtime.sessions.close(session_id, "closed"):
            raise ApiError(404, "unknown_session", f"no session {session_id[:64]!r}")
        return Response(status_code=204)

    @app.get("/avatars/{name}.zip")
    async def avatar(name: str) -> FileResponse:
        path = Path(config.avatar.dir) / f"{name}.zip"
        if not _AVATAR_NAME.match(name) or not path.is_file():
            raise ApiError(404, "unknown_avatar", f"no avatar named {name[:64]!r} in {config.avatar.dir}")
        return FileResponse(path, media_type="application/zip")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if runtime.sessions is None:
            return _error(503, "not_ready", runtime.load_error or "models are still loading")
        if runtime.draining:  # off the Service's endpoints, so no new conversation is routed here
            return _error(503, "draining", f"shutting down; {runtime.active_sessions} live sessions finishing")
        return JSONResponse({"status": "ready"})

    public_hosts = {host.lower() for host in config.server.public_hosts}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        # Under the public name (through the ingress) the internet would read our load; Prometheus and the
        # operator reach pods by address, so they still get it.
        host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
        if host in public_hosts:
            raise ApiError(404, "not_found", "Not Found")
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Last, so the API routes above win: the browser client and its assets.
    app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app
