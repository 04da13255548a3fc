"""Base of the WebSocket stand-ins for online services (Edge TTS, DashScope) on 127.0.0.1, random port."""

from __future__ import annotations

import logging

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class WebSocketStandIn:
    """`async with` serves `_handle` on 127.0.0.1; `_check_request` may refuse the upgrade (HTTP answer)."""

    _log = logging.getLogger("tests.support.ws_standin")

    port = 0
    _server: Server | None = None

    async def __aenter__(self):
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_request, logger=self._log)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError
