"""Spent and reserved money per user and budget period, so admission can reserve atomically.

A budget check is "spent + reserved + this request's worst case <= budget", and the reservation
is added in the same step, so N concurrent requests cannot all see the same free budget. Money
is counted in integer nano-USD (1e-9 USD): reservations and costs are rounded UP to the next
nano-dollar (a counter errs by less than a nano-dollar per request, and only towards refusing).

`MemoryBudgetCounters` is exact for one instance. Its spend is seeded from the ledger and
re-read every BUDGET_CACHE_TTL seconds, so several instances without Redis see each other's
spend only that often: between two reads they can overspend together. `RedisBudgetCounters`
(budget_counters_redis.py) keeps the same counters in Redis for every instance.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

NANO_USD = Decimal("1e-9")
SeedFn = Callable[[str, datetime], Awaitable[Decimal]]  # (user, period start) -> spent in the ledger
MAX_COUNTERS = 10_000


def to_units(amount: Decimal) -> int:
    """USD → nano-USD, rounded up (a reservation never under-counts)."""
    return math.ceil(amount / NANO_USD)


def to_usd(units: int) -> Decimal:
    return units * NANO_USD


class CountersUnavailable(Exception):
    """The shared store (Redis) could not be reached; the caller applies RATE_LIMIT_REDIS_FAILURE."""


@dataclass(frozen=True, slots=True)
class PeriodBudget:
    """One budget of a key for the current period: "day" or "month", its UTC bounds, its size."""

    period: str
    start: datetime
    end: datetime
    budget: int  # nano-USD


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation did not fit: the period and its counters at that moment."""

    period: PeriodBudget
    spent: int
    reserved: int


class BudgetCounters(Protocol):
    async def reserve(self, user: str, periods: list[PeriodBudget], amount: int, seed: SeedFn) -> Refusal | None:
        """Reserve `amount` in every period, or in none and say which period is full."""

    async def settle(self, user: str, periods: list[PeriodBudget], reserved: int, cost: int) -> list[int | None]:
        """Swap a reservation for its real cost (0 to release); return each period's spend after
        (None where no counter exists: the next seed reads the cost from the ledger)."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Counter:
    spent: int
    loaded_at: float
    reserved: int = 0
    settled: int = 0  # every cost settled here, ever: what a ledger read in flight may not include


class MemoryBudgetCounters:
    """Counters in this process. Check-and-reserve runs without an await in between, so it is
    atomic under asyncio; the only awaits are the ledger reads that seed and refresh the spend."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._counters: dict[tuple[str, str, datetime], _Counter] = {}
        self._reads: dict[tuple[str, str, datetime], asyncio.Task[None]] = {}

    async def _load(self, user: str, p: PeriodBudget, seed: SeedFn) -> None:
        key = (user, p.period, p.start)
        c = self._counters.get(key)
        if c is not None and self._clock() - c.loaded_at < self.ttl:
            return
        task = self._reads.get(key)
        if task is None:  # one ledger read per counter however many requests wait for it
            task = asyncio.create_task(self._read(key, seed))
            self._reads[key] = task
            task.add_done_callback(lambda _: self._reads.pop(key, None))
        await asyncio.shield(task)

    async def _read(self, key: tuple[str, str, datetime], seed: SeedFn) -> None:
        c = self._counters.get(key)
        settled_before = c.settled if c is not None else 0
        try:
            spent = to_units(await seed(key[0], key[2]))
        except Exception:
            if c is None:
                raise
            c.loaded_at = self._clock()  # the ledger cannot answer: keep counting from what is known
            return
        c = self._counters.get(key)
        if c is None:
            if len(self._counters) >= MAX_COUNTERS:
                self._evict()
            self._counters[key] = _Counter(spent, self._clock())
            return
        # Costs settled while the read was in flight may be missing from it: add them (a cost the
        # read did include is then counted twice until the next read, which only errs towards refusing).
        c.spent, c.loaded_at = spent + (c.settled - settled_before), self._clock()

    def _evict(self) -> None:
        now = self._clock()
        keep = max(self.ttl, 60.0)  # never a counter a reservation in progress just loaded
        self._counters = {k: c for k, c in self._counters.items() if c.reserved or now - c.loaded_at < keep}

    async def reserve(self, user: str, periods: list[PeriodBudget], amount: int, seed: SeedFn) -> Refusal | None:
        for p in periods:
            await self._load(user, p, seed)
        counters = [self._counters[(user, p.period, p.start)] for p in periods]
        for p, c in zip(periods, counters, strict=True):  # no await from here: check and reserve are one step
            if c.spent + c.reserved + amount > p.budget:
                return Refusal(p, c.spent, c.reserved)
        for c in counters:
            c.reserved += amount
        return None

    async def settle(self, user: str, periods: list[PeriodBudget], reserved: int, cost: int) -> list[int | None]:
        after: list[int | None] = []
        for p in periods:
            c = self._counters.get((user, p.period, p.start))
            if c is None:  # never loaded or evicted: the next read finds the cost in the ledger
                after.append(None)
                continue
            c.reserved = max(0, c.reserved - reserved)
            c.spent += cost
            c.settled += cost
            after.append(c.spent)
        return after

    async def close(self) -> None:
        return None
