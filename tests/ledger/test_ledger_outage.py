"""The ledger failing under a running proxy (Postgres cut by a TCP relay, SQLite full): clients are
answered normally, every request ends up in the ledger exactly once, readiness and /metrics say
what is going on, and LEDGER_FAIL_POLICY=closed refuses before Gemini is called."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.appkeys import LEDGER_GUARD_KEY, LEDGER_KEY
from tests.conftest import recorded_requests
from tests.ledger.faults import LedgerFault

TIMEOUT = aiohttp.ClientTimeout(total=20)  # a hung stream fails the test instead of hanging it


@pytest.fixture
async def fault(ledger_url: str) -> AsyncIterator[LedgerFault]:
    f = LedgerFault(ledger_url)
    await f.start()
    yield f
    await f.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def ask(http: aiohttp.ClientSession, proxy: TestServer, user: str, stream: bool) -> tuple[int, dict, bytes]:
    body = {"model": "gemini-2.5-flash", "stream": stream, "user": user,
            "messages": [{"role": "user", "content": f"hello from {user}"}]}
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def assert_complete(status: int, raw: bytes, stream: bool) -> None:
    """What a client needs: 200, and all chunks then [DONE] (streamed) or the JSON with usage."""
    assert status == 200, raw
    if stream:
        assert raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
        assert b'"finish_reason":"stop"' in raw.replace(b" ", b"")
    else:
        assert jsonutil.loads(raw)["usage"]["total_tokens"] > 0


async def users_in_ledger(proxy: TestServer, prefix: str) -> list[str]:
    return sorted(r["user_id"] for r in await proxy.app[LEDGER_KEY].rows() if r["user_id"].startswith(prefix))


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def readiness(http: aiohttp.ClientSession, proxy: TestServer) -> tuple[int, dict[str, Any]]:
    async with http.get(proxy.make_url("/health/ready")) as resp:
        return resp.status, await resp.json()


async def spool_metric(http: aiohttp.ClientSession, proxy: TestServer) -> float:
    async with http.get(proxy.make_url("/metrics")) as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("aiproxy_ledger_spool_rows "):
                return float(line.split()[1])
    raise AssertionError("aiproxy_ledger_spool_rows missing from /metrics")


def billed_once(lines: list[str], users: list[str]) -> bool:
    return all(sum(f"User: {u} |" in line for line in lines) == 1 for u in users)


async def test_ledger_cut_mid_load_bills_every_request_exactly_once(
    proxy_factory, fault: LedgerFault, tmp_path: Path, http, billing_lines
) -> None:
    proxy = await proxy_factory(usage_db_url=fault.url, spool_dir=tmp_path / "spool")
    ledger = proxy.app[LEDGER_KEY]
    users = [f"load-{i:02d}" for i in range(24)]
    done = 0
    cut = False
    sent_during_cut: list[str] = []
    gate = asyncio.Semaphore(4)  # four requests in flight at any time

    async def one(i: int, user: str) -> tuple[int, bytes, bool]:
        nonlocal done, cut
        async with gate:
            if cut:
                sent_during_cut.append(user)
            status, _, raw = await ask(http, proxy, user, stream=i % 2 == 0)
        done += 1
        if done == 6:  # cut while the next requests are in flight ...
            await fault.cut(ledger)
            cut = True
        elif done == 16:  # ... and restore while the last ones are
            await fault.restore(ledger)
            cut = False
        return status, raw, i % 2 == 0

    results = await asyncio.gather(*(one(i, u) for i, u in enumerate(users)))
    for status, raw, stream in results:
        assert_complete(status, raw, stream)
    assert len(sent_during_cut) >= 6  # these were answered while the ledger was cut
    await eventually(lambda: _eq(users_in_ledger(proxy, "load-"), users))
    assert (await users_in_ledger(proxy, "load-")) == users  # each once: none lost, none twice
    await eventually(lambda: _holds(proxy.app[LEDGER_GUARD_KEY].depth == 0))
    assert not list((tmp_path / "spool").glob("rows-*.jsonl"))
    assert billed_once(billing_lines(), users)


async def test_readiness_and_metric_report_the_spool(proxy_factory, fault: LedgerFault, tmp_path: Path, http) -> None:
    proxy = await proxy_factory(usage_db_url=fault.url, spool_dir=tmp_path / "spool")
    ledger = proxy.app[LEDGER_KEY]
    status, body = await readiness(http, proxy)
    assert (status, body["status"], body["checks"]["ledger"]) == (200, "ready", "ok")
    assert body["spool"] == {"rows": 0, "ledger": "up", "policy": "open"}
    await fault.cut(ledger)
    for i, stream in enumerate((True, False, True)):
        status, _, raw = await ask(http, proxy, f"ready-{i}", stream)
        assert_complete(status, raw, stream)
    status, body = await readiness(http, proxy)
    # Policy open: still serving, so still in the load balancer, with the ledger reported degraded.
    assert status == 200
    assert body["status"] == "degraded" and body["checks"]["ledger"] == "degraded"
    assert body["spool"] == {"rows": 3, "ledger": "down", "policy": "open"}
    assert await spool_metric(http, proxy) == 3.0
    await fault.restore(ledger)
    await eventually(lambda: _eq(users_in_ledger(proxy, "ready-"), ["ready-0", "ready-1", "ready-2"]))
    await eventually(lambda: _status_is(http, proxy, 200, "ready"))
    assert await spool_metric(http, proxy) == 0.0


async def test_closed_policy_refuses_before_any_upstream_call(
    proxy_factory, emulator, fault: LedgerFault, tmp_path: Path, http
) -> None:
    proxy = await proxy_factory(usage_db_url=fault.url, spool_dir=tmp_path / "spool", ledger_fail_policy="closed")
    ledger = proxy.app[LEDGER_KEY]
    await fault.cut(ledger)
    # The first request finds out: it was already answered by Gemini, so it completes and is spooled.
    status, _, raw = await ask(http, proxy, "closed-0", stream=False)
    assert_complete(status, raw, stream=False)
    upstream_calls = len(await recorded_requests(http, emulator))
    for stream in (False, True):
        status, headers, raw = await ask(http, proxy, "closed-1", stream)
        assert status == 503
        assert headers["Retry-After"] == "5"
        assert jsonutil.loads(raw) == {"error": {
            "message": "Usage cannot be recorded right now, so the request was not sent; please retry shortly.",
            "type": "api_error", "param": None, "code": "ledger_unavailable"}}  # fmt: skip
    assert len(await recorded_requests(http, emulator)) == upstream_calls  # Gemini never called
    status, body = await readiness(http, proxy)
    assert status == 503 and body["checks"]["ledger"] == "down"
    assert body["spool"] == {"rows": 1, "ledger": "down", "policy": "closed"}
    await fault.restore(ledger)
    await eventually(lambda: _status_is(http, proxy, 200, "ready"))
    status, _, raw = await ask(http, proxy, "closed-2", stream=True)
    assert_complete(status, raw, stream=True)
    assert await users_in_ledger(proxy, "closed-") == ["closed-0", "closed-2"]


async def test_spooled_rows_are_replayed_by_the_next_instance(
    proxy_factory, fault: LedgerFault, ledger_url: str, tmp_path: Path, http
) -> None:
    spool = tmp_path / "spool"
    first = await proxy_factory(usage_db_url=fault.url, spool_dir=spool)
    await fault.cut(first.app[LEDGER_KEY])
    for i, stream in enumerate((True, False)):
        status, _, raw = await ask(http, first, f"restart-{i}", stream)
        assert_complete(status, raw, stream)
    await first.close()  # shut down with the ledger still broken: the rows stay in the spool
    assert len(list(spool.glob("rows-*.jsonl"))) >= 1
    second = await proxy_factory(usage_db_url=ledger_url, spool_dir=spool)
    await eventually(lambda: _eq(users_in_ledger(second, "restart-"), ["restart-0", "restart-1"]))
    await eventually(lambda: _holds(second.app[LEDGER_GUARD_KEY].depth == 0))
    assert not list(spool.glob("rows-*.jsonl"))


async def _holds(condition: bool) -> bool:
    return condition


async def _eq(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _status_is(http: aiohttp.ClientSession, proxy: TestServer, code: int, status: str) -> bool:
    got, body = await readiness(http, proxy)
    return got == code and body["status"] == status
