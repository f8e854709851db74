"""Request-level guards that depend on which listener and which client: the ops-port split and the
per-client cap for requests that arrive through a trusted proxy.

- OPS_PORT set: the ops listener serves only OPS_PATHS (anything else 404), and /metrics is 404 on
  the client port, so scrapes never go through the public entry and probes never queue behind
  clients. Which listener a request came in on is read from its socket's local port.
- Requests from a TRUSTED_PROXIES peer: the connection cap could not count them per client (the
  proxy's sockets carry everyone), so here each X-Forwarded-For client may have at most
  MAX_CONNECTIONS_PER_IP requests in flight; past that, `429 too_many_connections`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from aiproxy.errors import ProxyError
from aiproxy.server.clientaddr import Network, forwarded_client, is_trusted

OPS_PATHS = frozenset({"/health", "/health/ready", "/metrics"})


@dataclass
class ListenPorts:
    """Filled in by the server once its sockets are bound (port 0 means "any free port")."""

    ops_port: int | None = None



def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def _not_found() -> web.Response:
    return ProxyError(404, "Not found on this port.", code="not_found").response()


def ops_split_middleware(ports: ListenPorts) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if ports.ops_port is not None:
            on_ops = _local_port(request) == ports.ops_port
            if on_ops and request.path not in OPS_PATHS:
                return _not_found()
            if not on_ops and request.path == "/metrics":
                return _not_found()
        return await handler(request)

    return middleware


@dataclass
class ForwardedClients:
    """Requests in flight per X-Forwarded-For client, for peers that are trusted proxies."""

    cap: int
    trusted: tuple[Network, ...]
    in_flight: Counter[str] = field(default_factory=Counter)


def forwarded_client_middleware(clients: ForwardedClients) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.remote or ""
        if not clients.trusted or request.path in OPS_PATHS or not is_trusted(peer, clients.trusted):
            return await handler(request)
        client = forwarded_client(peer, request.headers.getall("X-Forwarded-For", ()), clients.trusted)
        if clients.in_flight[client] >= clients.cap:
            return ProxyError(429, "Too many open requests from your address; retry shortly.",
                              code="too_many_connections", headers={"Retry-After": "1"}).response()
        clients.in_flight[client] += 1
        try:
            return await handler(request)
        finally:
            clients.in_flight[client] -= 1
            if clients.in_flight[client] <= 0:
                del clients.in_flight[client]

    return middleware

