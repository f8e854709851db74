"""USD budgets per user per UTC day and month, enforced before the call from the ledger's totals.

A key's budgets apply to its user's whole spend (all of that user's keys). The spend comes from
the ledger (`spent(user, since)`), cached for BUDGET_CACHE_TTL seconds and advanced by each
finished request's cost, so a busy user costs one ledger query per TTL. Crossing 80% and 100%
logs a warning and, with BUDGET_ALERT_WEBHOOK, POSTs one alert per user, period and threshold
(de-duplicated across instances through Redis when REDIS_URL is set).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Awaitable, Callable

import aiohttp
from aiohttp import web

from aiproxy.access.auth import KEY_RECORD
from aiproxy.access.keys import KeyRecord
from aiproxy.billing.pricing import format_usd
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.access")

SpentFn = Callable[[str, datetime], Awaitable[Decimal]]
OnceFn = Callable[[str, int], Awaitable[bool]]  # (name, ttl seconds) -> first time?
THRESHOLDS = (80, 100)
MAX_PENDING_ALERTS = 100  # bounded: a flood of alerts drops the excess (each is also logged)


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return datetime.fromtimestamp(start.timestamp() + 86400, timezone.utc)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def budgets_of(rec: KeyRecord) -> list[tuple[str, Decimal]]:
    return [(p, b) for p, b in (("day", rec.daily_budget), ("month", rec.monthly_budget)) if b is not None]


@dataclass
class Budgets:
    spent_source: Callable[[], SpentFn | None]  # resolved lazily: the ledger is opened at startup
    ttl: float
    webhook: str | None = None
    once: OnceFn | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    _cache: dict[tuple[str, str, datetime], tuple[Decimal, float]] = field(default_factory=dict)
    _alerted: dict[str, float] = field(default_factory=dict)  # alert name → end of its period (epoch s)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    async def spent(self, user: str, period: str, now: datetime) -> Decimal:
        start = period_start(period, now)
        key = (user, period, start)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[1] < self.ttl:
            return hit[0]
        source = self.spent_source()
        if source is None:
            log.error("budgets are configured but no usage ledger is available; refusing budgeted keys")
            raise ProxyError(503, "Budget accounting is unavailable; please retry later.", type="api_error",
                             code="budget_unavailable", headers={"Retry-After": "5"})
        value = await source(user, start)
        if len(self._cache) > 10_000:  # bounded: drop entries of past periods and stale users
            self._cache = {k: v for k, v in self._cache.items() if time.monotonic() - v[1] < self.ttl}
        self._cache[key] = (value, time.monotonic())
        return value

    async def preflight(self, request: web.Request, metering: Metering, _max_out: int | None) -> None:
        rec: KeyRecord | None = request.get(KEY_RECORD)
        if rec is None:
            return
        now = self.clock()
        for period, budget in budgets_of(rec):
            spent = await self.spent(rec.user, period, now)
            if spent >= budget:
                wait = max(1, math.ceil((period_end(period, now) - now).total_seconds()))
                raise ProxyError(
                    429, f"You exceeded your {'daily' if period == 'day' else 'monthly'} budget of "
                         f"${format_usd(budget)} (spent ${format_usd(spent)}); it resets at "
                         f"{period_end(period, now).strftime('%Y-%m-%d %H:%M')} UTC.",
                    type="insufficient_quota", code="insufficient_quota", headers={"Retry-After": str(wait)},
                )  # fmt: skip

    async def after(self, usage: UsageRecord, rec: KeyRecord) -> None:
        """Count the finished request in the cached spend; alert on crossing 80% / 100%."""
        now = self.clock()
        for period, budget in budgets_of(rec):
            key = (rec.user, period, period_start(period, now))
            hit = self._cache.get(key)
            if hit is None:
                continue
            spent = hit[0] + usage.cost_usd
            self._cache[key] = (spent, hit[1])
            for pct in THRESHOLDS:
                if spent * 100 >= budget * pct:
                    await self._alert(rec, period, key[2], pct, budget, spent, now)

    async def _alert(self, rec: KeyRecord, period: str, start: datetime, pct: int, budget: Decimal,
                     spent: Decimal, now: datetime) -> None:
        name = f"budget-alert:{rec.user}:{period}:{start.date().isoformat()}:{pct}"
        if name in self._alerted:
            return
        if len(self._alerted) > 10_000:  # bounded: forget alerts of periods that are over
            self._alerted = {k: end for k, end in self._alerted.items() if end > now.timestamp()}
        self._alerted[name] = period_end(period, now).timestamp()
        if self.once is not None:
            ttl = math.ceil((period_end(period, now) - now).total_seconds()) + 60
            try:
                if not await self.once(name, ttl):
                    return  # another instance already alerted
            except Exception:  # noqa: BLE001 - de-duplication is best effort
                pass
        log.warning("budget alert: user %s reached %d%% of the %s budget ($%s of $%s)", rec.user, pct,
                    "daily" if period == "day" else "monthly", format_usd(spent), format_usd(budget))
        if self.webhook and len(self._tasks) < MAX_PENDING_ALERTS:
            payload = {
                "event": "budget_threshold", "user": rec.user, "key_id": rec.id, "period": period,
                "period_start": start.isoformat(), "threshold_percent": pct,
                "budget_usd": format_usd(budget), "spent_usd": format_usd(spent),
            }  # fmt: skip
            task = asyncio.create_task(self._post(payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, payload: dict[str, object]) -> None:
        assert self.webhook is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.post(self.webhook, json=payload) as resp:
                if resp.status >= 300:
                    log.warning("budget alert webhook answered HTTP %d", resp.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("budget alert webhook failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._session is not None:
            await self._session.close()
