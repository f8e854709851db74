"""The Redis limiter against the real Redis at 127.0.0.1:6379: atomic, shared, and its failure policy."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from aiproxy.access.limits import Limits
from aiproxy.access.limits_redis import LimiterUnavailable, RedisLimiter
from aiproxy.access.setup import ACCESS_KEY
from aiproxy.server import free_port
from tests.access.conftest import add_key, bearer, chat_body
from tests.access.test_limits import cut_stream_midway

pytestmark = pytest.mark.redis
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix(run_prefix: str) -> AsyncIterator[str]:
    yield run_prefix
    client = aioredis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(match=run_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def limiter(prefix: str) -> AsyncIterator[RedisLimiter]:
    lim = RedisLimiter(REDIS, prefix, lease_seconds=60)
    yield lim
    await lim.close()


async def test_concurrent_acquires_are_atomic(limiter: RedisLimiter, prefix: str) -> None:
    other = RedisLimiter(REDIS, prefix, lease_seconds=60)  # a second instance on the same counters
    try:
        limits = Limits(rpm=10)
        results = await asyncio.gather(*(l.acquire("k1", limits, 0) for l in [limiter, other] * 25))
    finally:
        await other.close()
    assert sum(r.allowed for r in results) == 10
    refused = [r for r in results if not r.allowed]
    assert all(r.exceeded == "requests" and 0 < r.retry_after <= 6 for r in refused)


async def test_tokens_adjust_and_peek(limiter: RedisLimiter) -> None:
    limits = Limits(rpm=100, tpm=600)
    first = await limiter.acquire("k2", limits, 500)
    assert first.allowed and first.remaining_tokens in (100, 101) and first.remaining_requests == 99
    assert not (await limiter.acquire("k2", limits, 500)).allowed
    await limiter.adjust("k2", limits, -400)  # real use was 100
    peek = await limiter.peek("k2", limits)
    assert 500 <= peek.remaining_tokens <= 510 and peek.remaining_requests == 99
    await limiter.adjust("k2", limits, 2000)  # real use far above the estimate: debt
    state = await limiter.peek("k2", limits)
    assert state.remaining_tokens == 0 and state.reset_tokens > 60


async def test_stream_slots(limiter: RedisLimiter) -> None:
    assert await limiter.open_stream("k3", 2, "a")
    assert await limiter.open_stream("k3", 2, "b")
    assert not await limiter.open_stream("k3", 2, "c")
    await limiter.close_stream("k3", "a")
    assert await limiter.open_stream("k3", 2, "c")


async def test_expired_stream_lease_frees_its_slot(prefix: str) -> None:
    lim = RedisLimiter(REDIS, prefix, lease_seconds=0.001)  # an instance that died holding a slot
    try:
        assert await lim.open_stream("k4", 1, "dead")
        for _ in range(100):  # the lease expires on Redis' clock
            if await lim.open_stream("k4", 1, "new"):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("expired lease never freed its slot")
    finally:
        await lim.close()


async def test_two_proxies_share_the_counters(proxy_factory: Any, http: aiohttp.ClientSession, prefix: str) -> None:
    a = await proxy_factory(redis_url=REDIS, redis_key_prefix=prefix)
    b = await proxy_factory(redis_url=REDIS, redis_key_prefix=prefix)
    key, rec = await add_key(a, rpm=3)
    await b.app[ACCESS_KEY].store.insert(rec)
    await b.app[ACCESS_KEY].keys.refresh()
    statuses = []
    for server in (a, a, b, b):
        async with http.post(server.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key)) as resp:
            statuses.append(resp.status)
            last = resp
    assert statuses == [200, 200, 200, 429]
    assert last.headers["x-ratelimit-limit-requests"] == "3" and int(last.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("policy,status", [("open", 200), ("closed", 503)])
async def test_redis_unreachable_policy(proxy_factory: Any, http: aiohttp.ClientSession, caplog: Any,
                                        policy: str, status: int) -> None:
    caplog.set_level(logging.WARNING, logger="aiproxy.access")
    proxy = await proxy_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_redis_failure=policy)
    key, _ = await add_key(proxy, rpm=5, max_streams=1)
    for stream in (False, True):
        async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(stream=stream),
                             headers=bearer(key)) as resp:
            assert resp.status == status
            await resp.read()
            if status == 503:
                assert (await resp.json())["error"]["code"] == "rate_limiter_unavailable"
                assert resp.headers["Retry-After"] == "1"
    warned = [r for r in caplog.records if "rate limiter unreachable" in r.getMessage()]
    assert len(warned) == (1 if policy == "open" else 0)  # warned once, not per request


async def test_unreachable_raises_limiter_unavailable() -> None:
    lim = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", "x:", lease_seconds=1)
    try:
        with pytest.raises(LimiterUnavailable):
            await lim.acquire("k", Limits(rpm=1), 0)
    finally:
        await lim.close()


async def test_budget_alert_sent_once_across_instances(limiter: RedisLimiter, prefix: str, caplog: Any) -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    from aiproxy.access.budget import Budgets
    from aiproxy.access.keys import KeyRecord
    from tests.ledger.factories import make_record

    caplog.set_level(logging.WARNING, logger="aiproxy.access")
    other = RedisLimiter(REDIS, prefix, lease_seconds=60)
    rec = KeyRecord(id="key_x", key_hash="h", prefix="aip_", user="carol", daily_budget=Decimal("1"))

    async def spent(user: str, since: datetime) -> Decimal:
        return Decimal("0.5")

    try:
        instances = [Budgets(lambda: spent, ttl=60, once=lim.set_once) for lim in (limiter, other)]
        for budgets in instances:
            await budgets.spent("carol", "day", datetime.now(timezone.utc))  # warm the cache at $0.50
            await budgets.after(make_record(user="carol", cost_usd=Decimal("0.35")), rec)  # → 85%
    finally:
        await other.close()
    assert len([r for r in caplog.records if "budget alert" in r.getMessage()]) == 1


async def test_disconnected_stream_counts_its_billed_tokens(proxy_factory: Any, http: aiohttp.ClientSession,
                                                            prefix: str) -> None:
    tpm = 6_000  # refills 100 tokens a second on Redis' clock
    proxy = await proxy_factory(redis_url=REDIS, redis_key_prefix=prefix)
    key, _ = await add_key(proxy, tpm=tpm)
    started = time.monotonic()
    rec = await cut_stream_midway(proxy, key, tpm)
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        remaining = int(resp.headers["x-ratelimit-remaining-tokens"])
    refilled = math.ceil((time.monotonic() - started) * tpm / 60)
    assert max(0, tpm - rec.total_tokens) <= remaining <= max(0, tpm - rec.total_tokens) + refilled + 1
