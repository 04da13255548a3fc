"""An ASGI app served by uvicorn on 127.0.0.1:<ephemeral> in its own thread and event loop.

Tests then talk to it over real loopback sockets from their own loop, as any client would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import uvicorn


class ThreadedUvicorn:
    def __init__(self, app, name: str, **config) -> None:
        self._app = app
        self._name = name
        self._config = {"http": "h11", "loop": "asyncio", "log_level": "warning", "access_log": False, **config}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    def start(self, on_loop: Callable[[], None] | None = None, timeout_s: float = 30.0) -> None:
        """Start serving; `on_loop` runs first inside the server's loop (to create loop-bound objects)."""
        # Bind here so the port is known (and reserved) before the thread even starts.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self._app, **self._config))

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            if on_loop is not None:
                on_loop()
            await self._server.serve(sockets=[self._sock])

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._name} server failed to start")
            time.sleep(0.005)

    def submit(self, coro, timeout_s: float = 10.0):
        """Await `coro` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self, join_s: float = 15.0) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=join_s)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None
