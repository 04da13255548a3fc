"""Shutdown of `avatar-runtime serve`: a signal drains the server instead of cutting live conversations.

uvicorn's own handling of SIGTERM/SIGINT stops accepting connections at once and then the app's lifespan closes
every session, i.e. a scale-down or a rolling update would cut each conversation in the middle of a sentence.
`DrainingServer` replaces uvicorn's signal handler (`Server.handle_exit`, installed by `Server.capture_signals`):

1. the first SIGTERM or SIGINT starts a drain: the runtime refuses new sessions (503 `draining`, /readyz 503,
   `avatar_draining` 1) while HTTP keeps being served, so the live sessions' media, DELETE and the probes work;
2. when the last session has ended, or `server.drain_timeout_s` has passed, the sessions left get an `error`
   event (`server_shutdown`) and are closed, and uvicorn's normal shutdown runs; the process exits 0 (a drain is
   the planned way to stop, not a failure);
3. a second signal ends the drain at once (the sessions are still told and closed); a third one stops without
   waiting for anything.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType

import uvicorn

from .app import Runtime

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
_POLL_S = 0.1  # how often the drain looks at the session count (uvicorn's own main loop ticks at this rate)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose SIGTERM/SIGINT drains the runtime's sessions before it shuts down."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_timeout_s = drain_timeout_s
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_now: asyncio.Event | None = None
        self._drain_task: asyncio.Task | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_now = asyncio.Event()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler, between two bytecodes of whatever the loop was doing: only hand work over.
        # Unlike uvicorn's, it records no signal to re-raise after shutdown, so a completed drain exits with 0.
        self._signals += 1
        if self._loop is None:  # not serving yet: nothing to drain
            self.should_exit = True
        elif self._signals == 1:
            self._loop.call_soon_threadsafe(self._start_drain, signal.Signals(sig).name)
        elif self._signals == 2:
            log.warning("%s again: closing the remaining sessions now", signal.Signals(sig).name)
            self._loop.call_soon_threadsafe(self._stop_now.set)
        else:  # the sessions did not close in time (a stuck peer): stop without waiting for anything
            self.should_exit = self.force_exit = True

    def _start_drain(self, signal_name: str) -> None:
        self._drain_task = asyncio.create_task(self._drain(signal_name), name="drain")

    async def _drain(self, signal_name: str) -> None:
        runtime = self.runtime
        runtime.begin_drain()
        again = "Ctrl-C again" if signal_name == "SIGINT" else "a second SIGTERM or Ctrl-C"
        log.warning(
            "%s: draining %d sessions, up to %g s; %s to stop now",
            signal_name, runtime.active_sessions, self.drain_timeout_s, again,
        )  # fmt: skip
        try:
            await self._wait_for_sessions()
            left = runtime.active_sessions
            if left:
                log.warning("drain: closing %d sessions that are still live", left)
                await runtime.sessions.close_all()
            else:
                log.info("drain: every session has ended")
        finally:
            self.should_exit = True  # uvicorn's main loop sees it within 0.1 s and runs its shutdown

    async def _wait_for_sessions(self) -> None:
        """Return when no session is left, the drain limit has passed, or a second signal came."""
        start = time.monotonic()
        deadline = start + self.drain_timeout_s
        next_report = start + PROGRESS_EVERY_S
        while self.runtime.active_sessions > 0 and not self._stop_now.is_set():
            now = time.monotonic()
            if now >= deadline:
                log.warning("drain: %g s limit reached", self.drain_timeout_s)
                return
            if now >= next_report:
                log.info("drain: %d sessions left, %.0f s left", self.runtime.active_sessions, deadline - now)
                next_report += PROGRESS_EVERY_S
            try:
                await asyncio.wait_for(self._stop_now.wait(), min(_POLL_S, deadline - now))
            except TimeoutError:
                pass
