"""Signals, draining, readiness and the systemd notify protocol, on a real `python -m aiproxy`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LIFECYCLE_KEY, READY_CHECKS_KEY
from aiproxy.server.serve import free_port
from tests.conftest import emulator_url
from tests.integration.opshelp import chat_body, wait_streams_closed
from tests.integration.procs import ProxyProcess, spawn, wait_healthy


class NotifySocket:
    """A fake systemd: the unix datagram socket NOTIFY_SOCKET points at."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.path = str(path)
        self.messages: list[str] = []

    async def expect(self, text: str, within: float = 30) -> str:
        """Receive datagrams until one contains `text`; all are kept in `messages`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for seen in self.messages:
            if text in seen:
                return seen
        while loop.time() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), deadline - loop.time())
            except TimeoutError:
                break
            self.messages.append(data.decode())
            if text in self.messages[-1]:
                return self.messages[-1]
        raise AssertionError(f"no {text!r} from the service; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def procs() -> AsyncIterator[list[ProxyProcess]]:
    started: list[ProxyProcess] = []
    yield started
    for p in started:
        p.kill()


@pytest.fixture
def notify(tmp_path: Path) -> Any:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


async def test_sigterm_drains_streams_then_exits_0_with_notify(
        tmp_path: Path, emulator: TestServer, procs: list[ProxyProcess], notify: NotifySocket) -> None:
    p = spawn(tmp_path, emulator_url(emulator), NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000",
              DRAIN_TIMEOUT="20")
    procs.append(p)
    ready = await notify.expect("READY=1")
    assert f"MAINPID={p.proc.pid}" in ready and "STATUS=serving on" in ready
    await notify.expect("WATCHDOG=1")
    async with aiohttp.ClientSession() as http:
        body = chat_body(words=30, chunks=15, chunk_delay_ms=60)
        async with http.post(f"{p.url}/v1/chat/completions", json=body) as resp:
            first = await resp.content.readuntil(b"\n\n")
            assert first.startswith(b"data: {")
            p.signal(signal.SIGTERM)
            await notify.expect("STOPPING=1")
            rest = await resp.read()  # the in-flight stream runs to its end
        assert rest.endswith(b"data: [DONE]\n\n") and b'"finish_reason":"stop"' in rest
        assert await p.wait() == 0
        with pytest.raises(aiohttp.ClientConnectionError):  # nobody listens any more
            await http.get(f"{p.url}/health")
        assert await wait_streams_closed(http, emulator) == 0
    assert len(p.billing_lines()) == 1
    assert "shutdown complete" in p.log


async def test_drain_timeout_cuts_long_streams_and_bills_them_once(
        tmp_path: Path, emulator: TestServer, procs: list[ProxyProcess]) -> None:
    p = spawn(tmp_path, emulator_url(emulator), DRAIN_TIMEOUT="0.5")
    procs.append(p)
    await wait_healthy(p)
    async with aiohttp.ClientSession() as http:
        body = chat_body(words=200, chunks=100, chunk_delay_ms=100)  # ~10 s: longer than the drain
        async with http.post(f"{p.url}/v1/chat/completions", json=body) as resp:
            await resp.content.readuntil(b"\n\n")
            p.signal(signal.SIGINT)
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        assert await p.wait() == 0
        assert await wait_streams_closed(http, emulator) == 0
    (line,) = p.billing_lines()
    assert "Model: gpt-4" in line


async def test_second_signal_exits_at_once(
        tmp_path: Path, emulator: TestServer, procs: list[ProxyProcess], notify: NotifySocket) -> None:
    p = spawn(tmp_path, emulator_url(emulator), NOTIFY_SOCKET=notify.path, DRAIN_TIMEOUT="60")
    procs.append(p)
    await notify.expect("READY=1")
    async with aiohttp.ClientSession() as http:
        body = chat_body(words=200, chunks=100, chunk_delay_ms=200)  # ~20 s
        async with http.post(f"{p.url}/v1/chat/completions", json=body) as resp:
            await resp.content.readuntil(b"\n\n")
            p.signal(signal.SIGTERM)
            await notify.expect("STOPPING=1")
            p.signal(signal.SIGTERM)
            assert await p.wait(within=10) == 128 + signal.SIGTERM
    assert "second SIGTERM during the drain: exiting now" in p.log


async def test_readiness_reports_checks_and_goes_503_when_draining(proxy: TestServer,
                                                                   http: aiohttp.ClientSession) -> None:
    url = proxy.make_url("/health/ready")
    async with http.get(url) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ready" and body["checks"] == {"upstream": "ok", "ledger": "ok"} and body["pid"] > 0

    async def broken() -> bool:
        raise ConnectionError("down")

    healthy = proxy.app[READY_CHECKS_KEY]["ledger"]
    proxy.app[READY_CHECKS_KEY]["ledger"] = broken
    async with http.get(url) as resp:
        assert resp.status == 503
        assert (await resp.json()) == {"status": "not_ready", "checks": {"upstream": "ok", "ledger": "unreachable"},
                                       "pid": body["pid"], "spool": {"rows": 0, "ledger": "up", "policy": "open"}}
    proxy.app[READY_CHECKS_KEY]["ledger"] = healthy
    proxy.app[LIFECYCLE_KEY].draining = True
    async with http.get(url) as resp:
        assert resp.status == 503
        assert (await resp.json())["status"] == "draining"
    async with http.get(proxy.make_url("/health")) as resp:
        assert resp.status == 200  # liveness is not readiness: a draining process is alive


@pytest.mark.redis
@pytest.mark.parametrize(("redis_url", "status", "state"), [
    ("redis://127.0.0.1:6379/0", 200, "ok"),
    (f"redis://127.0.0.1:{free_port()}/0", 503, "unreachable"),
], ids=["redis-up", "redis-down"])
async def test_readiness_pings_redis_when_configured(proxy_factory: Any, http: aiohttp.ClientSession,
                                                     redis_url: str, status: int, state: str) -> None:
    proxy = await proxy_factory(redis_url=redis_url,
                                redis_key_prefix=f"aiproxy-test-{os.getpid()}-{os.urandom(3).hex()}:")
    async with http.get(proxy.make_url("/health/ready")) as resp:
        assert resp.status == status
        assert (await resp.json())["checks"]["redis"] == state
