"""The registry of live sessions and the concurrent-session limit."""

from __future__ import annotations

import asyncio
import uuid

from aiortc import RTCSessionDescription

from .config import RuntimeConfig
from .metrics import RuntimeMetrics
from .pipeline.reply import Engines
from .session import Session


class SessionLimitReached(Exception):
    pass


class ServerDraining(Exception):
    """The server is shutting down (SIGTERM): it takes no new session; another replica may."""


SHUTDOWN_MESSAGE = "the server is shutting down; reconnect to continue the conversation on another one"


class SessionManager:
    def __init__(self, engines: Engines, config: RuntimeConfig, metrics: RuntimeMetrics) -> None:
        self._engines = engines
        self._config = config
        self._metrics = metrics
        self._sessions: dict[str, Session] = {}
        self._reserved = 0  # slots taken by offers still being negotiated
        self.limit = config.server.concurrent_limit
        self.draining = False  # set once by `drain()`; a draining server never takes sessions again
        metrics.sessions_limit.set(self.limit)

    @property
    def active(self) -> int:
        return len(self._sessions) + self._reserved

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def open(self, offer: RTCSessionDescription) -> tuple[Session, RTCSessionDescription]:
        """Negotiate a new session; the slot is held from the first await so racing offers cannot overbook."""
        if self.draining:
            self._metrics.sessions_rejected.labels(reason="draining").inc()
            raise ServerDraining
        if self.active >= self.limit:
            self._metrics.sessions_rejected.labels(reason="capacity").inc()
            raise SessionLimitReached
        self._reserved += 1
        session = Session(uuid.uuid4().hex, self._engines, self._config, self._metrics, self._forget)
        try:
            answer = await session.accept(offer)
        except BaseException:
            self._reserved -= 1
            await session.pc.close()
            raise
        self._reserved -= 1
        self._sessions[session.id] = session
        self._metrics.sessions_active.set(self.active)
        return session, answer

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        self._metrics.sessions_active.set(self.active)

    async def close(self, session_id: str, outcome: str = "closed") -> bool:
        session = self._sessions.get(session_id)
        if session is None:
            return False
        await session.close(outcome)
        return True

    def drain(self) -> None:
        """Refuse new sessions from now on; the live ones go on until they end or `close_all()`."""
        self.draining = True

    async def close_all(self) -> None:
        """End every session, telling each client why first (`error` event, code `server_shutdown`)."""
        sessions = list(self._sessions.values())
        await asyncio.gather(*(s.end_with_error("server_shutdown", SHUTDOWN_MESSAGE) for s in sessions),
                             return_exceptions=True)  # fmt: skip
