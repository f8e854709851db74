"""USD budgets per user: enforced from the ledger before the call, alerts once per threshold."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy.access.budget import period_end, period_start, periods_at
from aiproxy.access.budget_counters import MemoryBudgetCounters, Refusal
from aiproxy.appkeys import ACCESS_KEY, LEDGER_KEY, METER_KEY
from aiproxy.billing.pricing import worst_case_cost
from aiproxy.server.serve import free_port
from tests.access.conftest import add_key, bearer, chat_body, scripted


@pytest.mark.parametrize("now,period,start,end", [
    ("2026-03-15T13:45:00", "day", "2026-03-15T00:00:00", "2026-03-16T00:00:00"),
    ("2026-03-15T13:45:00", "month", "2026-03-01T00:00:00", "2026-04-01T00:00:00"),
    ("2026-12-31T23:59:59", "month", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("2026-12-31T23:59:59", "day", "2026-12-31T00:00:00", "2027-01-01T00:00:00"),
])  # fmt: skip
def test_periods_are_utc_days_and_months(now: str, period: str, start: str, end: str) -> None:
    t = datetime.fromisoformat(now).replace(tzinfo=UTC)
    assert period_start(period, t) == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert period_end(period, t) == datetime.fromisoformat(end).replace(tzinfo=UTC)


async def one_request_cost(proxy: Any, http: aiohttp.ClientSession, key: str) -> Decimal:
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 200
    [row] = await proxy.app[LEDGER_KEY].report(user="alice")
    assert row["cost_usd"] > 0
    return row["cost_usd"]


EXACT_OUTPUT = 37  # the emulator's answer to chat_body() uses 37 output tokens (with thoughts)


def worst_case(proxy: Any, output_tokens: int = EXACT_OUTPUT) -> Decimal:
    """What a reservation holds for chat_body() ("hello": 2 prompt tokens) with no max_tokens."""
    return worst_case_cost(proxy.app[METER_KEY].prices, "gemini-3.5-flash", 2, output_tokens)


@pytest.mark.parametrize("period", ["daily_budget", "monthly_budget"])
@pytest.mark.parametrize("ttl", [0, 3600])  # from the ledger each time, or the counters advanced by each cost
async def test_budget_exceeded_is_429_insufficient_quota(proxy_factory: Any, http: aiohttp.ClientSession,
                                                         period: str, ttl: int) -> None:
    proxy = await proxy_factory(budget_cache_ttl=ttl, budget_default_output_tokens=40)
    free, _ = await add_key(proxy, user="alice")
    cost = await one_request_cost(proxy, http, free)  # spend of the user on another key counts too
    worst = worst_case(proxy, 40)
    assert worst > cost
    key, _ = await add_key(proxy, user="alice", **{period: cost + worst})
    url = proxy.make_url("/v1/chat/completions")
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 200  # spent C, and C + worst case fits
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        body = await resp.json()
        assert resp.status == 429
        assert body["error"]["type"] == "insufficient_quota" and body["error"]["code"] == "insufficient_quota"
        assert ("daily" if period == "daily_budget" else "monthly") in body["error"]["message"]
        assert 1 <= int(resp.headers["Retry-After"]) <= 31 * 86400
    [row] = await proxy.app[LEDGER_KEY].report(user="alice")
    assert row["requests"] == 2  # the refused request never reached Gemini nor the ledger
    # another user is not affected
    bob, _ = await add_key(proxy, user="bob", daily_budget=cost * 2)
    async with http.post(url, json=chat_body(), headers=bearer(bob)) as resp:
        assert resp.status == 200


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", receive)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/alerts")), received
    await server.close()


async def test_alerts_at_80_and_100_percent_once_per_period(proxy_factory: Any, http: aiohttp.ClientSession,
                                                           webhook: Any, caplog: Any) -> None:
    url_alerts, received = webhook
    caplog.set_level(logging.WARNING, logger="aiproxy.access")
    proxy = await proxy_factory(budget_alert_webhook=url_alerts, budget_default_output_tokens=EXACT_OUTPUT)
    free, _ = await add_key(proxy, user="alice")
    cost = await one_request_cost(proxy, http, free)
    assert worst_case(proxy) == cost  # each reservation holds exactly what the request costs
    budget = cost * Decimal("2.5")
    key, rec = await add_key(proxy, user="alice", daily_budget=budget)
    statuses = []
    for _ in range(4):  # spend C → 2C (80%) → refused: 3C would pass 100% → refused
        async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key)) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 429, 429, 429]
    key3, rec3 = await add_key(proxy, user="alice", daily_budget=cost * 3)  # room for exactly one more
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key3)) as resp:
        assert resp.status == 200  # spent 3C: 100%
    tasks = list(proxy.app[ACCESS_KEY].budgets._tasks)
    await asyncio.gather(*tasks)
    assert [(a["threshold_percent"], a["key_id"]) for a in received] == [(80, rec.id), (100, rec3.id)]
    first = received[0]
    assert first["event"] == "budget_threshold" and first["user"] == "alice"
    assert first["period"] == "day" and Decimal(first["budget_usd"]) == budget
    assert Decimal(first["spent_usd"]) == cost * 2 and Decimal(received[1]["spent_usd"]) == cost * 3
    warnings = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert len(warnings) == 2 and "80% of the daily budget" in warnings[0]


async def test_request_refused_upstream_gives_its_reservation_back(proxy_factory: Any,
                                                                   http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(budget_default_output_tokens=EXACT_OUTPUT)
    refused = chat_body(scripted(error=400))
    prompt = math.ceil(len(refused["messages"][0]["content"]) / 4)
    budget = worst_case_cost(proxy.app[METER_KEY].prices, "gemini-3.5-flash", prompt, EXACT_OUTPUT)
    assert worst_case(proxy) <= budget < 2 * worst_case(proxy)  # room for one request at a time
    key, _ = await add_key(proxy, user="alice", daily_budget=budget)
    url = proxy.make_url("/v1/chat/completions")
    async with http.post(url, json=refused, headers=bearer(key)) as resp:
        assert resp.status == 400  # Gemini refused before any work: nothing spent, nothing held
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 200
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 429 and (await resp.json())["error"]["code"] == "insufficient_quota"


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_budget_counters_unreachable_follow_the_redis_policy(proxy_factory: Any, http: aiohttp.ClientSession,
                                                                   policy: str) -> None:
    proxy = await proxy_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_redis_failure=policy,
                                budget_default_output_tokens=EXACT_OUTPUT)
    key, _ = await add_key(proxy, user="alice", daily_budget=worst_case(proxy))
    url = proxy.make_url("/v1/chat/completions")
    statuses = []
    for _ in range(2):
        async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
            statuses.append((resp.status, (await resp.json()).get("error", {}).get("code")))
    if policy == "closed":
        assert statuses == [(503, "budget_unavailable")] * 2
    else:  # this instance's own counters still hold the budget
        assert statuses == [(200, None), (429, "insufficient_quota")]


async def test_memory_counters_never_lose_a_cost_settled_during_a_ledger_read() -> None:
    now = [0.0]
    counters = MemoryBudgetCounters(ttl=5, clock=lambda: now[0])
    [day] = periods_at(datetime(2026, 3, 15, 12, tzinfo=UTC), [("day", Decimal("0.000001"))])  # 1000 nano
    ledger = {"spent": Decimal("0.0000001")}  # 100 nano
    gate = asyncio.Event()

    async def seed(user: str, since: datetime) -> Decimal:
        await gate.wait()
        return ledger["spent"]

    gate.set()
    assert await counters.reserve("eve", [day], 400, seed) is None  # 100 + 400
    gate.clear()
    now[0] = 10.0  # stale: the next reservation re-reads the ledger
    refresh = asyncio.create_task(counters.reserve("eve", [day], 100, seed))
    for _ in range(3):
        await asyncio.sleep(0)  # the read has started and waits for the ledger
    assert await counters.settle("eve", [day], 400, 300) == [400]  # settled while the read is in flight
    gate.set()  # the read does not include that cost yet
    assert await refresh is None
    assert await counters.reserve("eve", [day], 501, seed) == Refusal(day, 400, 100)  # 400 + 100 + 501 > 1000

    async def ledger_down(user: str, since: datetime) -> Decimal:
        raise ConnectionError("ledger down")

    now[0] = 20.0
    assert await counters.reserve("eve", [day], 500, ledger_down) is None  # kept counting from what is known
    assert await counters.reserve("eve", [day], 1, ledger_down) == Refusal(day, 400, 600)
