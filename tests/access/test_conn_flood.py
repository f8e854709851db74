"""Connection floods (issue 11 item 3): a per-client-address cap, X-Forwarded-For only from trusted
proxies, and an ops listener that answers /health however full the client port is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiproxy import jsonutil
from aiproxy.app import create_app
from aiproxy.server.clientaddr import forwarded_client, parse_networks
from aiproxy.server.listen import ServingRunner
from aiproxy.server.serve import _serve
from tests.conftest import emulator_url, make_settings

OTHER_CLIENT = "127.0.0.2"  # another loopback address: Linux routes all of 127/8 to lo


@pytest.fixture
async def serve(emulator: Any) -> AsyncIterator[Any]:
    runners: list[ServingRunner] = []

    async def start(ops: bool = True, **overrides: Any) -> ServingRunner:
        settings = make_settings(emulator_url(emulator), **overrides)
        runner = await _serve(create_app(settings), "127.0.0.1", 0, ops_port=0 if ops else None)
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.cleanup()


async def connect(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def exchange(port: int, request: bytes, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """One request on a fresh connection (Connection: close): status and body, within 5 s."""
    reader, writer = await connect(port, source)
    try:
        writer.write(request)
        reply = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode()


def ops_port(runner: ServingRunner) -> int:
    from aiproxy.appkeys import LISTEN_PORTS_KEY

    port = runner.app[LISTEN_PORTS_KEY].ops_port
    assert port is not None
    return port


async def test_idle_flood_from_one_address_is_refused_while_others_and_ops_are_served(serve: Any) -> None:
    runner = await serve(max_connections_per_ip=20)
    idle = [await connect(runner.port) for _ in range(20)]  # never send a byte, like the flood did
    try:
        for _ in range(10):  # past the cap: an immediate 429 and the connection is closed
            reader, writer = await connect(runner.port)
            reply = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 429 ") and b"Retry-After: 1" in head
            assert jsonutil.loads(body)["error"]["code"] == "too_many_connections"
        assert (await exchange(runner.port, get("/health"), source=OTHER_CLIENT))[0] == 200  # another client
        assert (await exchange(ops_port(runner), get("/health")))[0] == 200  # probes: same address, ops port
        assert (await exchange(ops_port(runner), get("/health/ready")))[0] == 200
    finally:
        for _, writer in idle:
            writer.close()


async def test_total_cap_does_not_reach_the_ops_port(serve: Any) -> None:
    runner = await serve(max_connections=3)
    idle = [await connect(runner.port, source=f"127.0.0.{10 + i}") for i in range(3)]
    try:
        status, body = await exchange(runner.port, get("/health"), source=OTHER_CLIENT)
        assert status == 503 and jsonutil.loads(body)["error"]["code"] == "too_many_connections"
        assert (await exchange(ops_port(runner), get("/health")))[0] == 200
    finally:
        for _, writer in idle:
            writer.close()


async def test_ops_port_serves_only_ops_paths_and_metrics_leave_the_client_port(serve: Any) -> None:
    runner = await serve()
    status, body = await exchange(runner.port, get("/metrics"))
    assert status == 404 and jsonutil.loads(body)["error"]["type"] == "invalid_request_error"
    assert (await exchange(runner.port, get("/health")))[0] == 200
    assert (await exchange(runner.port, get("/v1/models")))[0] == 200
    status, body = await exchange(ops_port(runner), get("/metrics"))
    assert status == 200 and b"# TYPE" in body
    assert (await exchange(ops_port(runner), get("/v1/models")))[0] == 404


async def test_probes_are_not_refused_as_busy(serve: Any) -> None:
    runner = await serve(max_concurrent_requests=1)
    slow = await connect(runner.port)
    slow[1].write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{")  # holds the one request slot: its body never completes
    try:
        for _ in range(50):
            status, _ = await exchange(runner.port, get("/v1/models"), source=OTHER_CLIENT)
            if status == 503:
                break
            await asyncio.sleep(0.02)
        assert status == 503  # clients: busy
        for path in ("/health", "/health/ready", "/metrics"):
            assert (await exchange(ops_port(runner), get(path)))[0] == 200, path
    finally:
        slow[1].close()


async def test_without_ops_port_metrics_stay_on_the_client_port(serve: Any) -> None:
    runner = await serve(ops=False)
    assert (await exchange(runner.port, get("/metrics")))[0] == 200


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(serve: Any) -> None:
    runner = await serve(max_connections_per_ip=1, trusted_proxies=OTHER_CLIENT)
    held = await connect(runner.port)  # 127.0.0.1 (not trusted) uses its one connection
    try:
        status, _ = await exchange(runner.port, get("/v1/models", "X-Forwarded-For: 198.51.100.1"))
        assert status == 429  # a forged header does not make it someone else
    finally:
        held[1].close()


async def test_forwarded_for_from_a_trusted_proxy_counts_per_client(serve: Any) -> None:
    runner = await serve(max_connections_per_ip=1, trusted_proxies=f"{OTHER_CLIENT}/32")
    # The proxy's own connections are not capped per address: it carries many clients.
    slow = await connect(runner.port, OTHER_CLIENT)
    slow[1].write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Forwarded-For: 203.0.113.7\r\nContent-Length: 100\r\n\r\n{")  # in flight: body pending
    await slow[1].drain()
    try:
        for _ in range(50):  # until the server has the slow request in hand
            status, body = await exchange(runner.port, get("/v1/models", "X-Forwarded-For: 203.0.113.7"),
                                          source=OTHER_CLIENT)
            if status == 429:
                break
            await asyncio.sleep(0.02)
        assert status == 429 and jsonutil.loads(body)["error"]["code"] == "too_many_connections"
        other = await exchange(runner.port, get("/v1/models", "X-Forwarded-For: 203.0.113.8"), source=OTHER_CLIENT)
        assert other[0] == 200  # another client behind the same proxy
        # The client's own claim left of the proxy's entry is not believed: the proxy-added hop counts.
        forged = await exchange(runner.port, get("/v1/models", "X-Forwarded-For: 198.51.100.9, 203.0.113.7"),
                                source=OTHER_CLIENT)
        assert forged[0] == 429
    finally:
        slow[1].close()


@pytest.mark.parametrize("peer,chain,client", [
    ("10.0.0.5", ["203.0.113.7"], "203.0.113.7"),
    ("10.0.0.5", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),  # rightmost untrusted hop
    ("10.0.0.5", ["203.0.113.7, 10.0.0.9"], "203.0.113.7"),  # a second trusted proxy is skipped
    ("10.0.0.5", ["203.0.113.7", "10.0.0.9"], "203.0.113.7"),  # several header lines form one chain
    ("10.0.0.5", ["not-an-ip"], "10.0.0.5"),  # garbage: the socket peer
    ("10.0.0.5", [], "10.0.0.5"),
    ("192.0.2.1", ["203.0.113.7"], "192.0.2.1"),  # untrusted peer: header ignored
    ("::ffff:10.0.0.5", ["2001:db8::1"], "2001:db8::1"),  # IPv4-mapped peer on a dual-stack socket
])
def test_forwarded_client(peer: str, chain: list[str], client: str) -> None:
    assert forwarded_client(peer, chain, parse_networks("10.0.0.0/8")) == client


def test_bad_trusted_proxies_is_a_config_error() -> None:
    from aiproxy.config import ConfigError

    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        make_settings("http://127.0.0.1:1", trusted_proxies="10.0.0.0/8, nonsense")
    with pytest.raises(ConfigError, match="OPS_PORT"):
        make_settings("http://127.0.0.1:1", port=9000, ops_port=9000)
