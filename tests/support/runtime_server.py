"""The real runtime app served by uvicorn on 127.0.0.1:<ephemeral> in its own thread and event loop.

Tests then talk to it exactly as a browser would (HTTP + WebRTC over loopback) from their own loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import uvicorn
from avatar_runtime.app import create_app
from avatar_runtime.config import RuntimeConfig
from avatar_runtime.pipeline.reply import Engines


class RuntimeServer:
    def __init__(self, config: RuntimeConfig, engines: Engines | None = None) -> None:
        self.config = config
        self.app = create_app(config, engines)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime(self):
        return self.app.state.runtime

    def start(self) -> RuntimeServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, loop="asyncio", http="h11", log_level="warning", access_log=False,
                           timeout_graceful_shutdown=5)
        )  # fmt: skip
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="runtime", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while True:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("runtime server failed to start")
            if self._server.started:
                status = httpx.get(f"{self.url}/readyz", timeout=5).status_code
                if status == 200:
                    return self
            time.sleep(0.02)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    def call(self, fn, timeout: float = 10.0):
        """Run `fn()` on the server's event loop (to inspect its tasks or sessions) and return its result."""

        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def submit(self, coro, timeout: float = 10.0):
        """Await `coro` on the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> RuntimeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
