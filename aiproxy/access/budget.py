"""USD budgets per user per UTC day and month: each request reserves its worst case first.

A key's budgets apply to its user's whole spend (all of that user's keys). Admission reserves the
request's worst case (billing/worst_case.py) and refuses it (429 insufficient_quota) unless
spent + reserved + worst case stays within every budget of the key; the meter then swaps the
reservation for the real cost, and a request that never reached Gemini gives it back
(billing/reservations.py). The counters (budget_counters.py) are seeded from the ledger's
`spent(user, since)`; with REDIS_URL they live in Redis and every instance shares them, else in
this process (re-read from the ledger every BUDGET_CACHE_TTL seconds). Redis unreachable:
RATE_LIMIT_REDIS_FAILURE=closed answers 503, open falls back to this process's counters.
Crossing 80% and 100% logs a warning and, with BUDGET_ALERT_WEBHOOK, POSTs one alert per user,
period and threshold (de-duplicated across instances through Redis when REDIS_URL is set).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
from aiohttp import web

from aiproxy.access.auth import KEY_RECORD
from aiproxy.access.budget_counters import (
    BudgetCounters,
    CountersUnavailable,
    MemoryBudgetCounters,
    PeriodBudget,
    Refusal,
    to_units,
    to_usd,
)
from aiproxy.access.keys import KeyRecord, KeySnapshot
from aiproxy.billing.pricing import PriceTable, format_usd
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.reservations import Reservations
from aiproxy.billing.worst_case import request_worst_case
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.access")

SpentFn = Callable[[str, datetime], Awaitable[Decimal]]
OnceFn = Callable[[str, int], Awaitable[bool]]  # (name, ttl seconds) -> first time?
THRESHOLDS = (80, 100)
MAX_PENDING_ALERTS = 100  # bounded: a flood of alerts drops the excess (each is also logged)
WARN_EVERY = 60.0  # seconds between "Redis unreachable" warnings


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return datetime.fromtimestamp(start.timestamp() + 86400, UTC)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def budgets_of(rec: KeyRecord) -> list[tuple[str, Decimal]]:
    return [(p, b) for p, b in (("day", rec.daily_budget), ("month", rec.monthly_budget)) if b is not None]


def periods_at(now: datetime, budgets: list[tuple[str, Decimal]]) -> list[PeriodBudget]:
    return [PeriodBudget(p, period_start(p, now), period_end(p, now), to_units(b)) for p, b in budgets]


@dataclass
class BudgetHold:
    """One request's worst case, reserved in every budget period of its key."""

    budgets: Budgets
    counters: BudgetCounters  # where it was reserved (Redis, or the local fallback)
    key: KeyRecord
    periods: list[PeriodBudget]
    amount: int  # nano-USD

    async def settle(self, rec: UsageRecord) -> None:
        await self.budgets.settle(self, to_units(rec.cost_usd))

    async def release(self) -> None:
        await self.budgets.settle(self, 0)

    async def keep(self) -> None:
        await self.budgets.settle(self, self.amount)


@dataclass
class Budgets:
    spent_source: Callable[[], SpentFn | None]  # resolved lazily: the ledger is opened at startup
    counters: BudgetCounters
    reservations: Reservations
    prices: PriceTable
    default_output_tokens: int
    fail_closed: bool = False
    local: MemoryBudgetCounters | None = None  # fallback when `counters` (Redis) is unreachable
    webhook: str | None = None
    once: OnceFn | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _alerted: dict[str, float] = field(default_factory=dict)  # alert name → end of its period (epoch s)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _budgeted: tuple[int, frozenset[str]] = (0, frozenset())  # (id of key snapshot, users with a budget)
    _warned_at: float = float("-inf")

    async def ledger_spent(self, user: str, since: datetime) -> Decimal:
        """The seed of a user's counters; 503 budget_unavailable when the ledger cannot say."""
        source = self.spent_source()
        if source is None:
            log.error("budgets are configured but no usage ledger is available; refusing budgeted keys")
        else:
            try:
                return await source(user, since)
            except Exception as exc:  # noqa: BLE001 - any ledger failure: refuse, never guess the spend
                log.warning("could not read %s's spend from the ledger (%s)", user, type(exc).__name__)
        raise ProxyError(503, "Budget accounting is unavailable; please retry later.", type="api_error",
                         code="budget_unavailable", headers={"Retry-After": "5"})

    async def preflight(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        rec: KeyRecord | None = request.get(KEY_RECORD)
        if rec is None or not budgets_of(rec):
            return
        now = self.clock()
        periods = periods_at(now, budgets_of(rec))
        worst = to_units(request_worst_case(self.prices, metering, max_out, self.default_output_tokens))
        counters = self.counters
        try:
            refusal = await counters.reserve(rec.user, periods, worst, self.ledger_spent)
        except CountersUnavailable as exc:
            counters = self._fallback(str(exc))
            refusal = await counters.reserve(rec.user, periods, worst, self.ledger_spent)
        if refusal is not None:
            raise self._refusal(refusal, worst, now)
        self.reservations.add(request, BudgetHold(self, counters, rec, periods, worst))

    def _fallback(self, why: str) -> BudgetCounters:
        """RATE_LIMIT_REDIS_FAILURE for budgets: 503, or this process's own counters."""
        if self.fail_closed or self.local is None:
            raise ProxyError(503, "Budget accounting is temporarily unavailable; please retry.", type="api_error",
                             code="budget_unavailable", headers={"Retry-After": "1"})
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("budget counters unreachable (%s); budgets are checked per instance "
                        "(RATE_LIMIT_REDIS_FAILURE=open)", why)
        return self.local

    def _refusal(self, r: Refusal, worst: int, now: datetime) -> ProxyError:
        p = r.period
        name = "daily" if p.period == "day" else "monthly"
        resets = p.end.strftime("%Y-%m-%d %H:%M")
        budget, spent = format_usd(to_usd(p.budget)), format_usd(to_usd(r.spent))
        if r.spent >= p.budget:
            message = f"You exceeded your {name} budget of ${budget} (spent ${spent}); it resets at {resets} UTC."
        else:
            message = (f"This request could exceed your {name} budget of ${budget}: spent ${spent}, "
                       f"${format_usd(to_usd(r.reserved))} held by requests in progress, and this request may "
                       f"cost up to ${format_usd(to_usd(worst))}. Lower max_tokens, or retry later; the budget "
                       f"resets at {resets} UTC.")
        alone_fits = r.spent + worst <= p.budget  # only requests in progress are in the way
        wait = 1 if alone_fits else max(1, math.ceil((p.end - now).total_seconds()))
        return ProxyError(429, message, type="insufficient_quota", code="insufficient_quota",
                          headers={"Retry-After": str(wait)})

    async def settle(self, hold: BudgetHold, cost: int) -> None:
        """Swap `hold` for `cost` (nano-USD); alert on crossing 80% / 100%."""
        try:
            after = await hold.counters.settle(hold.key.user, hold.periods, hold.amount, cost)
        except CountersUnavailable as exc:
            log.warning("could not settle a budget reservation (%s); it stays held until the period ends", exc)
            return
        now = self.clock()
        for p, spent in zip(hold.periods, after, strict=True):
            if spent is None:
                continue
            for pct in THRESHOLDS:
                if spent * 100 >= p.budget * pct:
                    await self._alert(hold.key, p.period, p.start, pct, to_usd(p.budget), to_usd(spent), now)

    def budgeted_users(self, snapshot: KeySnapshot) -> frozenset[str]:
        if self._budgeted[0] != id(snapshot):
            self._budgeted = (id(snapshot), frozenset(r.user for r in snapshot.by_id.values() if budgets_of(r)))
        return self._budgeted[1]

    async def add_spend(self, rec: UsageRecord) -> None:
        """Count a request that held no reservation (a key without budgets, of a user whose other
        keys have some) in that user's counters."""
        periods = periods_at(rec.started_at, [("day", Decimal(0)), ("month", Decimal(0))])
        for counters in (self.counters, self.local):
            if counters is None:
                continue
            try:
                await counters.settle(rec.user, periods, 0, to_units(rec.cost_usd))
            except CountersUnavailable:
                pass  # a later seed from the ledger counts it

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
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("budget alert webhook failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._session is not None:
            await self._session.close()
