"""setup_access(app, settings): keys, identity, limits, budgets, redaction, hardening, /openapi.json."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator

from aiohttp import web

from aiproxy.observability import redact
from aiproxy.access.auth import authenticate, bind_identity, needs_auth
from aiproxy.access.budget import Budgets, SpentFn, budgets_of
from aiproxy.access.budget_counters import BudgetCounters, MemoryBudgetCounters
from aiproxy.http.hardening import OpenProxyRefused, add_security_headers, hardening_middleware, is_loopback
from aiproxy.access.keys import KeyCache, KeyStore, open_keystore
from aiproxy.access.limits import MemoryLimiter, RateLimiter
from aiproxy.openai.openapi import openapi_json
from aiproxy.access.throttle import Throttle
from aiproxy.appkeys import LEDGER_KEY, METER_KEY, PREFLIGHT_KEY
from aiproxy.billing.record import UsageRecord
from aiproxy.billing.reservations import RESERVATIONS_KEY
from aiproxy.config import Settings

log = logging.getLogger("aiproxy.access")

@dataclass
class Access:
    store: KeyStore
    keys: KeyCache
    limiter: RateLimiter
    throttle: Throttle
    budgets: Budgets


ACCESS_KEY: web.AppKey[Access] = web.AppKey("access", Access)


def _secret(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name, None)
    return value.get_secret_value() if value is not None and hasattr(value, "get_secret_value") else value


def _ledger_spent(app: web.Application) -> SpentFn | None:
    """The usage ledger's `spent(user, since)`; None when the app has no ledger."""
    ledger = app.get(LEDGER_KEY)
    return ledger.spent if ledger is not None else None


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


def setup_access(app: web.Application, settings: Settings) -> Access:
    redact.install([settings.gemini_key, _secret(settings, "admin_token"), _secret(settings, "credits_service_api_key")])
    store = open_keystore(settings.usage_db_url)
    limiter = _make_limiter(settings)
    throttle = Throttle(limiter, fail_closed=settings.rate_limit_redis_failure == "closed",
                        default_output_tokens=settings.rate_limit_default_output_tokens,
                        reservations=app[RESERVATIONS_KEY])
    local = MemoryBudgetCounters(settings.budget_cache_ttl)
    counters = _budget_counters(settings, limiter, local)
    budgets = Budgets(lambda: _ledger_spent(app), counters, app[RESERVATIONS_KEY], app[METER_KEY].prices,
                      settings.budget_default_output_tokens, fail_closed=settings.rate_limit_redis_failure == "closed",
                      local=local if counters is not local else None,
                      webhook=settings.budget_alert_webhook, once=getattr(limiter, "set_once", None))
    access = Access(store, KeyCache(store, settings.key_cache_ttl), limiter, throttle, budgets)
    app[ACCESS_KEY] = access
    admin_token = settings.admin_secret

    @web.middleware
    async def access_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "OPTIONS" or not needs_auth(request.path):
            return await handler(request)
        await authenticate(request, access.keys, admin_token)
        try:
            return await handler(request)
        finally:
            await asyncio.shield(throttle.close_stream(request))

    async def budget_hook(rec: UsageRecord) -> None:
        """Requests of keys without budgets still count towards their user's budgets."""
        snapshot = access.keys.snapshot
        key = snapshot.by_id.get(rec.key_id or "")
        if key is not None and budgets_of(key):
            return  # its own reservation is settled with its cost
        if rec.cost_usd > 0 and rec.user in budgets.budgeted_users(snapshot):
            await budgets.add_spend(rec)

    app.middlewares.append(access_middleware)
    app.middlewares.append(hardening_middleware(settings))
    app[PREFLIGHT_KEY].insert(0, bind_identity)  # before any other check reads the billing user
    app[PREFLIGHT_KEY].extend([throttle.preflight, budgets.preflight])
    app[METER_KEY].hooks.append(budget_hook)
    app.on_response_prepare.append(add_security_headers)
    app.on_response_prepare.append(throttle.add_headers)
    app.router.add_get("/openapi.json", openapi_json)
    app.cleanup_ctx.append(_lifecycle(access, settings))
    return access


def _lifecycle(access: Access, settings: Settings) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await access.store.open()
        try:
            snap = await access.keys.refresh()
            if not snap.any_keys:
                if not is_loopback(settings.host) and not settings.allow_open_proxy:
                    raise OpenProxyRefused(
                        f"no client keys exist and HOST={settings.host} is reachable from other machines; create "
                        "one (python -m aiproxy keys create --user NAME) or set ALLOW_OPEN_PROXY=true")
                log.warning("no client keys configured: the proxy is OPEN (anyone who can reach it spends the "
                            "Gemini key); create keys with `python -m aiproxy keys create --user NAME`")
            yield
        finally:
            await access.budgets.close()
            await access.limiter.close()
            await access.store.close()

    return ctx
