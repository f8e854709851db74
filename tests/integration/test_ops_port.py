"""OPS_PORT with WORKERS=2: every worker binds the ops port too (SO_REUSEPORT), probes reach each
of them there, /metrics is served there only and covers both workers."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from aiproxy.server.serve import free_port
from tests.conftest import emulator_url
from tests.integration.opshelp import chat
from tests.integration.procs import spawn, wait_healthy
from tests.integration.test_workers import requests_total, worker_pids


async def test_ops_port_with_two_workers(tmp_path: Path, emulator: TestServer) -> None:
    ops = free_port()
    p = spawn(tmp_path, emulator_url(emulator), name="ops", WORKERS="2", OPS_PORT=str(ops))
    try:
        await wait_healthy(p)
        ops_url = f"http://127.0.0.1:{ops}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            assert len(await worker_pids(http, ops_url, want=2)) == 2
            assert (await chat(http, p.url, stream=False, words=3)).status == 200
            async with http.get(f"{p.url}/metrics") as resp:
                assert resp.status == 404
            async with http.get(f"{ops_url}/metrics") as resp:
                assert resp.status == 200 and requests_total(await resp.text()) >= 1
            async with http.get(f"{ops_url}/v1/models") as resp:
                assert resp.status == 404
    finally:
        p.kill()
