"""build_access(settings, ledger, reservations, prices) -> Access: keys, identity, limits, budgets.

The returned object exposes what `create_app` wires in: the authenticating middleware, three
admission steps (`identify`, `rate_limit`, `reserve_budget`), a meter hook
(`count_unbudgeted_spend`), the x-ratelimit-* response headers, and the lifecycle (the key store
opened, keys loaded and the open-proxy check at startup; everything closed at cleanup). It adds
nothing to an app by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aiproxy.access.auth import authenticate, bind_identity, needs_auth
from aiproxy.access.budget import Budgets, budgets_of
from aiproxy.access.budget_counters import BudgetCounters, MemoryBudgetCounters
from aiproxy.access.keys import KeyCache, KeyStore, open_keystore
from aiproxy.access.limits import MemoryLimiter, RateLimiter
from aiproxy.access.throttle import Throttle
from aiproxy.billing.ledger import Ledger
from aiproxy.billing.pricing import PriceTable
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.reservations import Reservations
from aiproxy.config import Settings
from aiproxy.http.hardening import OpenProxyRefused, is_loopback

log = logging.getLogger("aiproxy.access")


@dataclass
class Access:
    settings: Settings
    store: KeyStore
    keys: KeyCache
    limiter: RateLimiter
    throttle: Throttle
    budgets: Budgets
    admin_token: str = ""  # ADMIN_TOKEN, read once

    # -- the middleware ------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Authenticate the client key (401/403); after the response, free its stream slot."""
        if request.method == "OPTIONS" or not needs_auth(request.path):
            return await handler(request)
        await authenticate(request, self.keys, self.admin_token)
        try:
            return await handler(request)
        finally:
            if self.throttle.holds_stream(request):  # no task for the requests that took no slot
                await asyncio.shield(self.throttle.close_stream(request))

    # -- admission steps -----------------------------------------------------------------------
    async def identify(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        """Bill the key's user, whatever the body claims (before any step reads the billed user)."""
        await bind_identity(request, metering, max_out)

    async def rate_limit(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        """Concurrent streams, requests and tokens per minute (429); the token estimate is held."""
        await self.throttle.preflight(request, metering, max_out)

    async def reserve_budget(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        """The worst case reserved in the key's daily/monthly USD budgets (429 insufficient_quota)."""
        await self.budgets.preflight(request, metering, max_out)

    # -- the meter hook ------------------------------------------------------------------------
    async def count_unbudgeted_spend(self, rec: UsageRecord) -> None:
        """Requests of keys without budgets still count towards their user's budgets."""
        snapshot = self.keys.snapshot
        key = snapshot.by_id.get(rec.key_id or "")
        if key is not None and budgets_of(key):
            return  # its own reservation is settled with its cost
        if rec.cost_usd > 0 and rec.user in self.budgets.budgeted_users(snapshot):
            await self.budgets.add_spend(rec)

    # -- on_response_prepare -------------------------------------------------------------------
    async def add_rate_limit_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """OpenAI's x-ratelimit-* headers on every response to a rate-limited key."""
        await self.throttle.add_headers(request, response)

    # -- cleanup_ctx ---------------------------------------------------------------------------
    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        settings = self.settings
        await self.store.open()
        try:
            snap = await self.keys.refresh()
            if not snap.any_keys:
                if not is_loopback(settings.host) and not settings.allow_open_proxy:
                    raise OpenProxyRefused(
                        f"no client keys exist and HOST={settings.host} is reachable from other machines; create "
                        "one (python -m aiproxy keys create --user NAME) or set ALLOW_OPEN_PROXY=true")
                log.warning("no client keys configured: the proxy is OPEN (anyone who can reach it spends the "
                            "Gemini key); create keys with `python -m aiproxy keys create --user NAME`")
            yield
        finally:
            await self.budgets.close()
            await self.limiter.close()
            await self.store.close()


def _make_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        from aiproxy.access.limits_redis import RedisLimiter

        return RedisLimiter(settings.redis_url, settings.redis_key_prefix, settings.stream_lease_seconds)
    return MemoryLimiter()


def _budget_counters(settings: Settings, limiter: RateLimiter, local: MemoryBudgetCounters) -> BudgetCounters:
    """Shared through Redis (on the rate limiter's connection pool) when REDIS_URL is set."""
    client = getattr(limiter, "client", None)
    if settings.redis_url and client is not None:
        from aiproxy.access.budget_counters_redis import RedisBudgetCounters

        return RedisBudgetCounters(client, settings.redis_key_prefix)
    return local


def build_access(settings: Settings, ledger: Ledger, reservations: Reservations, prices: PriceTable) -> Access:
    """Budgets read the user's spend from `ledger`; limits and budgets file their holds in `reservations`."""
    store = open_keystore(settings.usage_db_url)
    limiter = _make_limiter(settings)
    fail_closed = settings.rate_limit_redis_failure == "closed"
    throttle = Throttle(limiter, fail_closed=fail_closed,
                        default_output_tokens=settings.rate_limit_default_output_tokens, reservations=reservations)
    local = MemoryBudgetCounters(settings.budget_cache_ttl)
    counters = _budget_counters(settings, limiter, local)
    budgets = Budgets(lambda: ledger.spent, counters, reservations, prices, settings.budget_default_output_tokens,
                      fail_closed=fail_closed, local=local if counters is not local else None,
                      webhook=settings.budget_alert_webhook, once=getattr(limiter, "set_once", None))
    return Access(settings, store, KeyCache(store, settings.key_cache_ttl), limiter, throttle, budgets,
                  admin_token=settings.admin_secret)
