"""Two real proxy processes sharing the PostgreSQL ledger and the Redis limiter: one global rate
limit holds across both, every answered request is in the ledger exactly once, and the usage
report is the same whichever instance is asked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import emulator_url
from tests.integration.opshelp import chat_body
from tests.integration.procs import ROOT, ProxyProcess, spawn, wait_healthy

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PG_ROOT = "postgresql://postgres@127.0.0.1:5432/test"
RPM = 10
SENT = 30


@pytest.fixture
async def shared() -> AsyncIterator[dict[str, str]]:
    """A fresh ledger schema and Redis key prefix for this run; both removed afterwards."""
    schema = f"t_ops_{uuid.uuid4().hex[:10]}"
    prefix = f"aiproxy-test-{os.getpid()}-{uuid.uuid4().hex[:8]}:"
    yield {"USAGE_DB_URL": f"{PG_ROOT}?schema={schema}", "REDIS_URL": "redis://127.0.0.1:6379/0",
           "REDIS_KEY_PREFIX": prefix, "schema": schema}
    conn = await asyncpg.connect(PG_ROOT)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    import redis.asyncio as aioredis

    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def create_key(db_url: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "aiproxy", "keys", "--db", db_url, "create", *args],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=True).stdout
    return out.strip().splitlines()[-1]


@pytest.fixture
async def two_instances(tmp_path: Path, emulator: TestServer, shared: dict[str, str]
                        ) -> AsyncIterator[tuple[list[ProxyProcess], str, str]]:
    env = {k: v for k, v in shared.items() if k != "schema"}
    user_key = await asyncio.to_thread(create_key, env["USAGE_DB_URL"], "--user", "alice", "--rpm", str(RPM))
    admin_key = await asyncio.to_thread(create_key, env["USAGE_DB_URL"], "--user", "ops", "--admin")
    procs = [spawn(tmp_path, emulator_url(emulator), name=f"instance{i}", **env) for i in range(2)]
    try:
        await asyncio.gather(*(wait_healthy(p) for p in procs))
        yield procs, user_key, admin_key
    finally:
        for p in procs:
            p.kill()


async def test_two_instances_share_limits_ledger_and_reports(
        two_instances: tuple[list[ProxyProcess], str, str], shared: dict[str, str]) -> None:
    procs, user_key, admin_key = two_instances
    auth = {"Authorization": f"Bearer {user_key}"}
    ok_ids: list[str] = []
    refused = 0
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        async def one(i: int) -> None:
            nonlocal refused
            rid = f"req-ops-{i:03d}-{uuid.uuid4().hex[:6]}"
            url = f"{procs[i % 2].url}/v1/chat/completions"
            async with http.post(url, json=chat_body(stream=i % 3 == 0, words=6),
                                 headers={**auth, "X-Request-ID": rid}) as resp:
                await resp.read()
                if resp.status == 200:
                    ok_ids.append(rid)
                else:
                    assert resp.status == 429
                    assert (await resp.json())["error"]["code"] == "rate_limit_exceeded"
                    refused += 1

        for i in range(SENT):  # alternating instances, in order: both draw from one bucket
            await one(i)
        elapsed = time.monotonic() - started
        # One bucket for both instances: RPM at once plus what refilled meanwhile (RPM per 60 s).
        assert RPM <= len(ok_ids) <= RPM + int(elapsed * RPM / 60) + 1
        assert len(ok_ids) + refused == SENT
        assert all(p.billing_lines() for p in procs)  # both instances served

        reports = []
        for p in procs:
            async with http.get(f"{p.url}/v1/usage", headers={"Authorization": f"Bearer {admin_key}"}) as resp:
                assert resp.status == 200
                reports.append(await resp.json())
    assert reports[0] == reports[1]
    assert reports[0]["total"]["requests"] == len(ok_ids)
    billed_tokens = sum(int(line.split(" total |")[0].rsplit("= ", 1)[1]) for p in procs for line in p.billing_lines())
    assert reports[0]["total"]["total_tokens"] == billed_tokens

    for p in procs:
        p.signal(signal.SIGTERM)
    assert [await p.wait() for p in procs] == [0, 0]
    conn = await asyncpg.connect(PG_ROOT, server_settings={"search_path": shared["schema"]})
    try:
        rows = await conn.fetch("SELECT client_request_id, COUNT(*) AS n FROM usage GROUP BY client_request_id")
    finally:
        await conn.close()
    assert sorted(r["client_request_id"] for r in rows) == sorted(ok_ids)
    assert {r["n"] for r in rows} == {1}
