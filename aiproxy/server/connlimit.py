"""Caps on open client connections, in total and per client address, which aiohttp does not have.

Past a cap a new connection gets an immediate OpenAI-style error and is closed, instead of holding
a socket, a protocol object and buffers: a flood of idle connections cannot exhaust file
descriptors or memory, and well-behaved clients (Lotti retries 503/429) simply come back.

- MAX_CONNECTIONS caps all client connections of this process: past it, `503 too_many_connections`.
- MAX_CONNECTIONS_PER_IP caps one socket peer address: past it, `429 too_many_connections`, so one
  client's flood is refused while every other address is still served. A peer listed in
  TRUSTED_PROXIES is exempt here (it carries many clients); requests through it are counted per
  X-Forwarded-For client instead, by `client_guard_middleware` (the cap cannot read headers: it
  runs when the socket is accepted, before any byte of the request).

The cap decides in `connection_made`, where the peer is known, and then hands every transport
callback to the aiohttp protocol it created through `web.Server` (public: a protocol factory).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import cast

from aiproxy import jsonutil
from aiproxy.server.clientaddr import Network, is_trusted


def _refusal(status: bytes, kind: str, message: str) -> bytes:
    body = jsonutil.dumps({"error": {"message": message, "type": kind, "param": None, "code": "too_many_connections"}})
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Retry-After: 1\r\nServer: aiproxy\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


REFUSAL = _refusal(b"503 Service Unavailable", "server_error",
                   "The server has too many open connections; retry shortly.")
PER_IP_REFUSAL = _refusal(b"429 Too Many Requests", "rate_limit_error",
                          "Too many open connections from your address; close idle ones and retry.")


class ConnectionGate:
    """Counts live client connections, in total and per peer address."""

    def __init__(self, total_cap: int, per_ip_cap: int, trusted: tuple[Network, ...] = ()) -> None:
        self.total_cap = total_cap
        self.per_ip_cap = per_ip_cap
        self.trusted = trusted
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def admit(self, peer: str) -> bytes | None:
        """None when admitted (and counted); otherwise the refusal to send."""
        if self.total >= self.total_cap:
            return REFUSAL
        counted = not is_trusted(peer, self.trusted)
        if counted and self.per_ip[peer] >= self.per_ip_cap:
            return PER_IP_REFUSAL
        self.total += 1
        if counted:
            self.per_ip[peer] += 1
        return None

    def release(self, peer: str) -> None:
        self.total -= 1
        if peer in self.per_ip:
            self.per_ip[peer] -= 1
            if self.per_ip[peer] <= 0:
                del self.per_ip[peer]


class GatedProtocol(asyncio.Protocol):
    """Admits or refuses one connection, then forwards every callback to the real protocol."""

    __slots__ = ("_gate", "_make", "_inner", "_peer")

    def __init__(self, gate: ConnectionGate, make: Callable[[], asyncio.Protocol]) -> None:
        self._gate = gate
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else ""
        refusal = self._gate.admit(peer)
        if refusal is not None:
            cast(asyncio.Transport, transport).write(refusal)  # a stream server's transport (asyncio's or uvloop's)
            transport.close()
            return
        self._peer = peer
        self._inner = self._make()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._gate.release(self._peer)
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def gated_factory(gate: ConnectionGate, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
    """Protocol factory for `loop.create_server`: every connection passes the gate first."""
    return lambda: GatedProtocol(gate, make)
