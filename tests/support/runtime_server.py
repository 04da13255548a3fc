"""The real runtime app on 127.0.0.1:<ephemeral>, in its own thread and event loop, as a browser would see it."""

from __future__ import annotations

import time

import httpx
from avatar_runtime.app import create_app
from avatar_runtime.config import RuntimeConfig
from avatar_runtime.pipeline.reply import Engines

from tests.support.threaded_server import ThreadedUvicorn


class RuntimeServer:
    def __init__(self, config: RuntimeConfig, engines: Engines | None = None) -> None:
        self.config = config
        self.app = create_app(config, engines)
        self._http = ThreadedUvicorn(self.app, "runtime", timeout_graceful_shutdown=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}"

    @property
    def runtime(self):
        return self.app.state.runtime

    def start(self) -> RuntimeServer:
        self._http.start()
        deadline = time.monotonic() + 60  # the lifespan loads the models (when not passed in) before ready
        while httpx.get(f"{self.url}/readyz", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("runtime server did not become ready")
            time.sleep(0.05)
        return self

    def call(self, fn, timeout_s: float = 10.0):
        """Run `fn()` on the server's event loop (to inspect its tasks or sessions) and return its result."""

        async def run():
            return fn()

        return self._http.submit(run(), timeout_s)

    def submit(self, coro, timeout_s: float = 10.0):
        """Await `coro` on the server's event loop and return its result."""
        return self._http.submit(coro, timeout_s)

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> RuntimeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
