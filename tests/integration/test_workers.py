"""WORKERS=2: two processes on one port, merged metrics, crash restart, group drain and notify."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import emulator_url
from tests.integration.opshelp import chat
from tests.integration.procs import ProxyProcess, spawn, wait_healthy
from tests.integration.test_lifecycle import NotifySocket


@pytest.fixture
async def supervisor(tmp_path: Path, emulator: TestServer) -> AsyncIterator[tuple[ProxyProcess, NotifySocket]]:
    notify = NotifySocket(tmp_path / "notify.sock")
    p = spawn(tmp_path, emulator_url(emulator), name="workers", WORKERS="2", NOTIFY_SOCKET=notify.path,
              PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    yield p, notify
    p.kill()
    notify.close()


async def worker_pids(http: aiohttp.ClientSession, url: str, want: int, tries: int = 400) -> set[int]:
    """PIDs seen answering /health/ready over fresh connections (the kernel picks a worker per connection)."""
    pids: set[int] = set()
    for _ in range(tries):
        async with http.get(f"{url}/health/ready", headers={"Connection": "close"}) as resp:
            if resp.status == 200:
                pids.add((await resp.json())["pid"])
        if len(pids) >= want:
            break
    return pids


def requests_total(metrics_text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("aiproxy_requests_total{") and 'route="/v1/chat/completions"' in line)


async def test_two_workers_share_one_port_and_their_metrics(supervisor: tuple[ProxyProcess, NotifySocket]) -> None:
    p, notify = supervisor
    ready = await notify.expect("READY=1")
    assert f"MAINPID={p.proc.pid}" in ready and "2 workers serving" in ready
    await wait_healthy(p)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        pids = await worker_pids(http, p.url, want=2)
        assert len(pids) == 2 and p.proc.pid not in pids
        answers = await asyncio.gather(*(chat(http, p.url, stream=False, words=4) for _ in range(20)))
        assert [a.status for a in answers] == [200] * 20
        totals = set()
        for _ in range(6):  # any worker's /metrics counts the requests of both
            async with http.get(f"{p.url}/metrics") as resp:
                totals.add(requests_total(await resp.text()))
        assert totals == {20.0}
    assert len(p.billing_lines()) == 20

    p.signal(signal.SIGTERM)
    await notify.expect("STOPPING=1")
    assert await p.wait() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_crashed_worker_is_restarted(supervisor: tuple[ProxyProcess, NotifySocket]) -> None:
    p, notify = supervisor
    await notify.expect("READY=1")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        first = await worker_pids(http, p.url, want=2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)  # a worker this test's supervisor started, ended by its PID
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        pids: set[int] = set()
        while loop.time() < deadline:
            pids = await worker_pids(http, p.url, want=2, tries=50)
            if len(pids) == 2 and victim not in pids:
                break
            await asyncio.sleep(0.1)
        assert len(pids) == 2 and victim not in pids
    assert "exited with code -9; restarting" in p.log
    p.signal(signal.SIGINT)
    assert await p.wait() == 0


async def test_workers_starting_together_on_a_fresh_database_all_come_up(tmp_path: Path, emulator: TestServer) -> None:
    """Both workers migrate the same new SQLite ledger and key tables at once; none may fail
    ("table usage already exists", "database is locked") and be restarted. Two fresh starts (the
    deterministic proof, eight openers at once on both backends, is tests/ledger/test_migrations.py)."""
    for n in range(2):
        run_dir = tmp_path / f"start-{n}"
        run_dir.mkdir()
        p = spawn(run_dir, emulator_url(emulator), name="fresh", WORKERS="2",
                  PROMETHEUS_MULTIPROC_DIR=str(run_dir / "prom"))  # USAGE_DB_URL default: ./data/usage.db, new
        try:
            await wait_healthy(p)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                assert len(await worker_pids(http, p.url, want=2)) == 2
            p.signal(signal.SIGTERM)
            assert await p.wait() == 0
            assert "exited with code" not in p.log, p.log[-3000:]
            assert (run_dir / "data" / "usage.db").exists()
        finally:
            p.kill()
