"""A cap on open client connections, which aiohttp itself does not have.

Past the cap a new connection gets an immediate OpenAI-style 503 and is closed, instead of
holding a socket, a protocol object and buffers: a flood of idle connections cannot exhaust
file descriptors or memory, and well-behaved clients (Lotti retries 503) simply come back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from aiproxy import jsonutil

_BODY = jsonutil.dumps({"error": {"message": "The server has too many open connections; retry shortly.",
                                  "type": "server_error", "param": None, "code": "too_many_connections"}})
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
           b"Retry-After: 1\r\nServer: aiproxy\r\nContent-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(REFUSAL)  # type: ignore[attr-defined]
        transport.close()


class CappedFactory:
    """Wraps aiohttp's protocol factory; counts live connections through `web.Server`."""

    def __init__(self, server: web.Server, cap: int) -> None:
        self._server = server
        self._cap = cap

    def __call__(self) -> asyncio.Protocol:
        if len(self._server.connections) >= self._cap:
            return _Refuse()
        return self._server()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class CappedTCPSite(web.TCPSite):
    """TCPSite whose listener refuses connections beyond `max_connections`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int, **kw: Any) -> None:
        super().__init__(runner, host, port, **kw)
        self._max_connections = max_connections

    async def start(self) -> None:
        real = self._runner.server
        assert real is not None
        self._runner._server = CappedFactory(real, self._max_connections)  # type: ignore[assignment]
        try:
            await super().start()
        finally:
            self._runner._server = real
