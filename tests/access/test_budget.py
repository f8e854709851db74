"""USD budgets per user: enforced from the ledger before the call, alerts once per threshold."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy.access.budget import period_end, period_start
from aiproxy.access.setup import ACCESS_KEY
from aiproxy.appkeys import LEDGER_KEY
from tests.access.conftest import add_key, bearer, chat_body


@pytest.mark.parametrize("now,period,start,end", [
    ("2026-03-15T13:45:00", "day", "2026-03-15T00:00:00", "2026-03-16T00:00:00"),
    ("2026-03-15T13:45:00", "month", "2026-03-01T00:00:00", "2026-04-01T00:00:00"),
    ("2026-12-31T23:59:59", "month", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("2026-12-31T23:59:59", "day", "2026-12-31T00:00:00", "2027-01-01T00:00:00"),
])  # fmt: skip
def test_periods_are_utc_days_and_months(now: str, period: str, start: str, end: str) -> None:
    t = datetime.fromisoformat(now).replace(tzinfo=timezone.utc)
    assert period_start(period, t) == datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    assert period_end(period, t) == datetime.fromisoformat(end).replace(tzinfo=timezone.utc)


async def one_request_cost(proxy: Any, http: aiohttp.ClientSession, key: str) -> Decimal:
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 200
    [row] = await proxy.app[LEDGER_KEY].report(user="alice")
    assert row["cost_usd"] > 0
    return row["cost_usd"]


@pytest.mark.parametrize("period", ["daily_budget", "monthly_budget"])
@pytest.mark.parametrize("ttl", [0, 3600])  # from the ledger each time, or the cache advanced by each cost
async def test_budget_exceeded_is_429_insufficient_quota(proxy_factory: Any, http: aiohttp.ClientSession,
                                                         period: str, ttl: int) -> None:
    proxy = await proxy_factory(budget_cache_ttl=ttl)
    free, _ = await add_key(proxy, user="alice")
    cost = await one_request_cost(proxy, http, free)  # spend of the user on another key counts too
    key, _ = await add_key(proxy, user="alice", **{period: cost * 2})
    url = proxy.make_url("/v1/chat/completions")
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 200  # spent C of 2C
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
    proxy = await proxy_factory(budget_alert_webhook=url_alerts)
    free, _ = await add_key(proxy, user="alice")
    cost = await one_request_cost(proxy, http, free)
    budget = cost * Decimal("2.2")
    key, rec = await add_key(proxy, user="alice", daily_budget=budget)
    statuses = []
    for _ in range(4):  # spend C → 2C (91%) → 3C (136%) → refused → refused
        async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key)) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 200, 429, 429]
    tasks = list(proxy.app[ACCESS_KEY].budgets._tasks)
    await asyncio.gather(*tasks)
    assert [a["threshold_percent"] for a in received] == [80, 100]
    first = received[0]
    assert first["event"] == "budget_threshold" and first["user"] == "alice" and first["key_id"] == rec.id
    assert first["period"] == "day" and Decimal(first["budget_usd"]) == budget
    assert Decimal(first["spent_usd"]) == cost * 2 and Decimal(received[1]["spent_usd"]) == cost * 3
    warnings = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert len(warnings) == 2 and "80% of the daily budget" in warnings[0]
