"""The usage ledger: one durable row per metered request, and the charge outbox beside it.

One interface, two backends (SQLite embedded, PostgreSQL shared), chosen by URL. Both take rows
through `GroupCommit`, so a request waits for *a* commit that includes its row, while all rows
that arrive during one commit share the next transaction: durability without one fsync per row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

from aiproxy.backoff import RetryPolicy
from aiproxy.billing.record import UsageRecord
from aiproxy.storage.urls import parse_database_url

GROUPS = ("day", "model", "user", "provider")

# Outbox states: waiting to be sent (or re-sent), acknowledged by the credits service, refused
# after the fact (402 insufficient balance / 404 unknown user), or refused for good by another
# 4xx (a request the service will never accept). The last two are final, left for operators.
PENDING = "pending"
SENT = "sent"
UNPAID = "unpaid"
REJECTED = "rejected"
CHARGE_STATES = (PENDING, SENT, UNPAID, REJECTED)

TOTAL_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "total_tokens")


@dataclass(frozen=True, slots=True)
class Charge:
    """One outbox row: what the credits service must be told about one request."""

    request_id: str
    user: str
    amount: Decimal
    description: str
    state: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    lease_token: str | None = None  # stamped by the claim that leased it; only that claim may update it


@runtime_checkable
class Ledger(Protocol):
    transactions: int  # commits of usage rows so far (tests check group commit with it)

    async def open(self) -> None:
        """Connect and bring the schema to the current version."""

    async def record(self, rec: UsageRecord) -> None:
        """Return once `rec` is durably committed. `request_id` is the server's own id, so only a
        replay of the same row (never another request) is ignored as a repeat."""

    async def close(self) -> None:
        """Commit everything still pending, then close."""

    async def report(
        self,
        *,
        user: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: str | None = None,
    ) -> list[dict]:
        """Totals (TOTAL_FIELDS + cost_usd as Decimal), one dict per group, sorted by group key."""

    async def spent(self, user: str, since: datetime) -> Decimal:
        """Total cost of `user`'s requests started at or after `since`."""

    async def ping(self) -> bool:
        """True when the store answers a trivial query."""

    async def claim_charges(self, now: datetime, lease: timedelta, limit: int = 100) -> list[Charge]:
        """Pending charges due at `now`, oldest first, each pushed `lease` into the future so that
        another worker (another proxy instance on the same ledger) does not send it meanwhile,
        and stamped with a fresh `lease_token` that proves this claim owns it."""

    async def update_charge(
        self, charge: Charge, *, state: str, attempts: int, next_attempt_at: datetime | None, error: str | None
    ) -> bool:
        """Store the outcome of one send attempt of a claimed `charge`, only while its lease token
        is still the row's (no later claim took it over); False when nothing was written."""

    async def charges(self, state: str | None = None) -> list[Charge]:
        """All outbox rows (optionally in one state), for operators and tests."""

    async def charge_counts(self) -> dict[str, int]:
        """How many outbox rows are in each of CHARGE_STATES, counted by the database."""


# Retries of a failed batch write before its rows are isolated or handed back: short, so a
# request waits at most about a second for a blip to pass (then its row is spooled, never lost).
WRITE_RETRY = RetryPolicy(retries=2, base_delay=0.05, max_delay=0.5)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the store could not take *any* row now (connection lost or refused,
    disk full, database locked or read-only, timeout), so splitting the batch would not help."""
    if isinstance(exc, ValueError):  # asyncpg's client-side DataError is a ValueError: a row's value
        return False
    if isinstance(exc, (OSError, TimeoutError, sqlite3.OperationalError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):  # PostgreSQL: connection, resources, operator intervention
        return sqlstate[:2] in ("08", "53", "57")
    return type(exc).__module__.startswith("asyncpg")  # InterfaceError: connection closed, pool closing


def is_row_fault(exc: BaseException) -> bool:
    """True when `exc` blames the row's own values (out of range, constraint), not the store:
    writing that row again will fail again, while the rows beside it are fine."""
    if isinstance(exc, (ValueError, TypeError, OverflowError, sqlite3.IntegrityError, sqlite3.DataError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23")  # data exception, integrity


class GroupCommit:
    """Group commit over an async batch writer.

    The first row starts a write at once (no added latency when idle); rows arriving while a
    write is under way wait and go together in the next one. A caller's cancellation does not
    withdraw its row: once submitted, it is written.

    A failed batch is retried with a short backoff; if it still fails and the store is not simply
    down, it is bisected, so one bad row fails alone and the rows beside it commit. Each waiter
    learns its own row's outcome.
    """

    def __init__(
        self,
        write: Callable[[list[UsageRecord]], Awaitable[None]],
        max_batch: int = 1000,
        retry: RetryPolicy = WRITE_RETRY,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._retry = retry
        self._pending: list[tuple[UsageRecord, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Rows waiting for the next commit (the write under way not included); for /metrics."""
        return len(self._pending)

    async def submit(self, rec: UsageRecord) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rec, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="ledger-group-commit")
        await asyncio.shield(fut)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._commit(batch)
            except BaseException:  # cancelled mid-write: every waiter must still learn the outcome
                _settle(batch, RuntimeError("ledger write cancelled"))
                raise

    async def _commit(self, batch: list[tuple[UsageRecord, asyncio.Future[None]]]) -> None:
        error: Exception | None = None
        for attempt in range(self._retry.retries + 1):
            if attempt:
                await asyncio.sleep(self._retry.delay(attempt - 1, None))
            try:
                await self._write([rec for rec, _ in batch])
            except Exception as exc:  # noqa: BLE001 - retried, then isolated or handed to the waiters
                error = exc
                if is_row_fault(exc):
                    break  # the same rows fail the same way: isolate at once
            else:
                _settle(batch, None)
                return
        assert error is not None
        if len(batch) == 1 or is_outage(error):
            _settle(batch, error)
            return
        await self._isolate(batch, error)

    async def _isolate(self, batch: list[tuple[UsageRecord, asyncio.Future[None]]], error: Exception) -> None:
        """Bisect a failing batch: halves that commit are done; a single failing row fails alone."""
        if len(batch) == 1:
            _settle(batch, error)
            return
        mid = len(batch) // 2
        for half in (batch[:mid], batch[mid:]):
            try:
                await self._write([rec for rec, _ in half])
            except Exception as exc:  # noqa: BLE001 - narrowed down further, unless the store went away
                if is_outage(exc):
                    _settle(half, exc)
                else:
                    await self._isolate(half, exc)
            else:
                _settle(half, None)

    async def drain(self) -> None:
        """Wait until every submitted row has been written (or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)


def counts_by_state(rows: list[tuple[str, int]]) -> dict[str, int]:
    """(state, count) rows as a dict with every state of CHARGE_STATES present."""
    counts = dict.fromkeys(CHARGE_STATES, 0)
    counts.update((state, int(n)) for state, n in rows)
    return counts


def _settle(batch: list[tuple[UsageRecord, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, fut in batch:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


def describe_charge(rec: UsageRecord) -> str:
    """The bill's description: model, tokens and the request id the charge can be traced by."""
    return f"{rec.requested_model} - {rec.total_tokens} tokens - request {rec.request_id}"


def charge_for(rec: UsageRecord) -> Charge | None:
    """The outbox row a usage row implies, or None when there is nothing to bill."""
    if rec.cost_usd <= 0:
        return None
    return Charge(request_id=rec.request_id, user=rec.user, amount=rec.cost_usd, description=describe_charge(rec))


def open_ledger(url: str, *, outbox: bool = False) -> Ledger:
    """The backend for `url` (not yet opened). With `outbox`, every priced row also enqueues its
    charge in the same transaction, for the credits-service worker to send."""
    where = parse_database_url(url)
    if where.is_postgres:
        from aiproxy.billing.ledger_pg import PostgresLedger

        return PostgresLedger(where.dsn or "", where.schema, outbox=outbox)
    from aiproxy.billing.ledger_sqlite import SqliteLedger

    return SqliteLedger(where.sqlite_path, outbox=outbox)
