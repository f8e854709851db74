"""The listening sockets: the client port behind the connection caps, and the optional ops port.

Not `web.TCPSite`: a site hands aiohttp's protocol factory straight to the loop, leaving no place
to refuse a connection by peer address (connlimit.py) or to answer parser errors as JSON
(parse_errors.py). `ServingRunner` is an AppRunner (public API: `runner.server` is the app's
protocol manager) whose listeners are plain `loop.create_server` sockets, closed first in
`cleanup()` exactly where aiohttp would stop its sites, so the graceful drain is unchanged.

The ops listener (OPS_PORT) serves the same app in the same process, with no connection cap: a
flood on the client port cannot starve /health, /health/ready or /metrics. With WORKERS>1 every
worker binds OPS_PORT with SO_REUSEPORT like PORT; a probe reaches one worker, and /metrics there
merges every worker's files (PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from aiproxy.server.connlimit import ConnectionGate, gated_factory
from aiproxy.server.parse_errors import JsonErrorRequestHandler


class ServingRunner(web.AppRunner):
    """AppRunner whose listeners this class opens itself (see module doc)."""

    def __init__(self, app: web.Application, *, handler_args: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(app, **handler_args, **kwargs)
        self._handler_args = handler_args
        self.listeners: list[asyncio.Server] = []
        self.port = 0  # the client port once bound

    def _protocol(self) -> asyncio.Protocol:
        server = self.server
        assert server is not None, "setup() first"
        return JsonErrorRequestHandler(server, loop=asyncio.get_running_loop(), **self._handler_args)

    async def listen(self, host: str, port: int, *, gate: ConnectionGate | None, reuse_port: bool = False,
                     backlog: int = 1024) -> int:
        """Bind and serve; returns the bound port. OSError (address in use, not ours) propagates."""
        factory = self._protocol if gate is None else gated_factory(gate, self._protocol)
        listener = await asyncio.get_running_loop().create_server(
            factory, host, port, backlog=backlog, reuse_port=reuse_port or None)
        self.listeners.append(listener)
        return int(listener.sockets[0].getsockname()[1])

    async def cleanup(self) -> None:
        for listener in self.listeners:  # stop accepting, as aiohttp's site.stop() would
            listener.close()
        self.listeners.clear()
        await super().cleanup()
