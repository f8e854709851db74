"""Closed-loop HTTP/1.1 load generator, run as its own process: `python -m bench.loadgen SPEC`.

Why not aiohttp's client: it costs ~150 µs of CPU per request, which on a 2-core machine would
steal a large share of the core the proxy needs. This client sends one pre-encoded request per
keep-alive connection over a bare asyncio.Protocol (uvloop when installed) and parses only what
it must (status, Content-Length or chunked framing), so its own cost per request is a few tens
of µs; `python -m bench` measures that ceiling against a static endpoint and reports it.

Each of `concurrency` connections sends its next request as soon as the last one ended. Only
requests that finish inside the measuring window (after `warmup`) count. At the window's edges
the generator itself reads the CPU time of the watched PIDs, so the CPU figures cover exactly
the counted requests. Output: one JSON object on stdout.

`hold` mode opens N streams, waits until each has delivered its first body byte, prints
`ready N`, and keeps them open until stdin closes: the RSS-with-open-streams measurement.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from typing import Any

from bench.procinfo import cpu_seconds
from bench.serving import use_uvloop
from bench.stats import summarize

HEAD_END = b"\r\n\r\n"


class _Conn(asyncio.Protocol):
    """One keep-alive connection driving requests back to back."""

    def __init__(self, gen: LoadGen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.reset_response()
        self.sent_at = 0.0
        self.busy = False  # a request is out and its response not complete
        self.closed = asyncio.get_running_loop().create_future()

    def reset_response(self) -> None:
        self.in_head = True
        self.status = 0
        self.chunked = False
        self.remaining = 0  # Content-Length bytes still due, or bytes of the current chunk
        self.chunk_state = 0  # 0: want size line, 1: in chunk data (+CRLF), 2: want trailer end
        self.first_body_at = 0.0
        self.body = bytearray() if self.gen.keep_body else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP client's transport is a Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send()

    def send(self) -> None:
        self.reset_response()
        self.busy = True
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.gen.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.busy and not self.gen.stopping:
            self.gen.errors += 1

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.in_head:
            self.buf += data
            end = self.buf.find(HEAD_END)
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            body = self.buf[end + 4 :]
            self.buf = bytearray()
            self.in_head = False
            self.status = int(head[9:12])
            if b"transfer-encoding: chunked" in head:
                self.chunked = True
            else:
                pos = head.find(b"content-length:")
                if pos >= 0:
                    end = head.find(b"\r\n", pos)
                    self.remaining = int(head[pos + 15 : end if end > 0 else len(head)])
            if not body and (self.chunked or self.remaining):
                return
            data = bytes(body)
        if data and not self.first_body_at:
            self.first_body_at = now
        if self.body is not None:
            self.body += data
        if self.chunked:
            done = self._feed_chunked(data)
        else:
            self.remaining -= len(data)
            done = self.remaining <= 0
        if done:
            self.gen.completed(self, now)

    def _feed_chunked(self, data: bytes) -> bool:
        buf = self.buf
        buf += data
        pos = 0
        n = len(buf)
        while pos < n:
            if self.chunk_state == 1:
                take = min(self.remaining, n - pos)
                pos += take
                self.remaining -= take
                if self.remaining:
                    break
                self.chunk_state = 0
                continue
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            if self.chunk_state == 2:
                if line_end == pos:  # the empty line after (no) trailers
                    self.buf = bytearray()
                    return True
                pos = line_end + 2
                continue
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
            pos = line_end + 2
            if size == 0:
                self.chunk_state = 2
            else:
                self.chunk_state = 1
                self.remaining = size + 2  # the data and its CRLF
        del buf[:pos]
        return False


class LoadGen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host: str = spec["host"]
        self.port: int = spec["port"]
        self.request: bytes = build_request(spec)
        self.concurrency: int = spec["concurrency"]
        self.warmup: float = spec.get("warmup", 0.5)
        self.duration: float = spec.get("duration", 3.0)
        self.watch: dict[str, list[int]] = spec.get("watch", {})
        self.keep_body = True  # only until the first response is captured
        self.first_body: bytes | None = None
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.window_start = 0.0
        self.window_end = float("inf")
        self.stopping = False

    def completed(self, conn: _Conn, now: float) -> None:
        conn.busy = False
        if self.first_body is None and conn.body is not None:
            self.first_body = bytes(conn.body)
            self.keep_body = False
        if self.window_start <= conn.sent_at and now < self.window_end:
            self.latencies.append(now - conn.sent_at)
            self.ttfbs.append((conn.first_body_at or now) - conn.sent_at)
            self.statuses[conn.status] = self.statuses.get(conn.status, 0) + 1
        if self.stopping:
            assert conn.transport is not None
            conn.transport.close()
        else:
            conn.send()

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        conns: list[_Conn] = []
        for _ in range(self.concurrency):
            _, proto = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
            conns.append(proto)
        start = time.perf_counter()
        self.window_start = start + self.warmup
        await asyncio.sleep(self.warmup)
        cpu_before = {name: cpu_seconds(pids) for name, pids in self.watch.items()}
        own_before = os.times()
        t0 = time.perf_counter()
        self.window_start = t0
        await asyncio.sleep(self.duration)
        t1 = time.perf_counter()
        self.window_end = t1
        cpu_after = {name: cpu_seconds(pids) for name, pids in self.watch.items()}
        own_after = os.times()
        self.stopping = True
        await asyncio.wait([c.closed for c in conns], timeout=5.0)
        for c in conns:
            if c.transport is not None and not c.transport.is_closing():
                c.transport.abort()
        wall = t1 - t0
        own_cpu = (own_after.user - own_before.user) + (own_after.system - own_before.system)
        return {
            "requests": len(self.latencies),
            "seconds": wall,
            "rps": len(self.latencies) / wall if wall > 0 else 0.0,
            "latency": summarize(self.latencies),
            "ttfb": summarize(self.ttfbs),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "errors": self.errors,
            "cpu_seconds": {name: cpu_after[name] - cpu_before[name] for name in self.watch},
            "loadgen_cpu_seconds": own_cpu,
            "first_body": (self.first_body or b"")[:65536].decode("utf-8", "replace"),
        }


async def hold_streams(spec: dict[str, Any]) -> None:
    """Open `count` streams, wait for each one's first body byte, report, hold until stdin EOF."""
    loop = asyncio.get_running_loop()
    gen = LoadGen({**spec, "concurrency": 0})
    gen.keep_body = False
    gen.stopping = True  # never send a second request on a connection
    count = int(spec["count"])
    conns: list[_Conn] = []
    batch = 100  # stay under the listen backlog
    for i in range(0, count, batch):
        results = await asyncio.gather(*(loop.create_connection(lambda: _Conn(gen), gen.host, gen.port)
                                         for _ in range(min(batch, count - i))))
        conns.extend(proto for _, proto in results)
    deadline = time.perf_counter() + float(spec.get("timeout", 60))
    while time.perf_counter() < deadline:
        started = sum(1 for c in conns if c.first_body_at)
        if started == count:
            break
        await asyncio.sleep(0.05)
    started = sum(1 for c in conns if c.first_body_at)
    sys.stdout.write(f"ready {started}\n")
    sys.stdout.flush()
    await loop.run_in_executor(None, sys.stdin.read)
    for c in conns:
        if c.transport is not None:
            c.transport.abort()


def build_request(spec: dict[str, Any]) -> bytes:
    """The pre-encoded HTTP/1.1 POST sent on every turn."""
    body: bytes = spec["body"].encode() if isinstance(spec["body"], str) else spec["body"]
    lines = [f"POST {spec['path']} HTTP/1.1", f"Host: {spec['host']}:{spec['port']}",
             "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in spec.get("headers", {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def main() -> None:
    spec = json.loads(sys.argv[1])
    use_uvloop()
    if spec.get("mode") == "hold":
        asyncio.run(hold_streams(spec))
        return
    result = asyncio.run(LoadGen(spec).run())
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
