"""Embedded ledger: stdlib sqlite3 in WAL mode, one writer thread, group commits.

All writes run on one dedicated thread with one connection (SQLite allows one writer anyway),
so the event loop never blocks on disk; reports read through a second connection on their own
thread, which WAL lets run beside the writer. synchronous=FULL makes each commit survive power
loss as well as a killed process; grouping rows keeps that to one fsync per batch, not per row.
Costs are TEXT (exact decimal strings) and summed by a Decimal aggregate registered on the
connection, because SQLite's own SUM would go through float.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from aiproxy.billing.ledger import PENDING, Charge, GroupCommit, charge_for, counts_by_state
from aiproxy.billing.ledger_sql import (
    CHARGE_COLUMNS,
    COUNT_CHARGES,
    USAGE_COLUMNS,
    VERSION_TABLE,
    Dialect,
    charge_values,
    claim_query,
    insert_charge,
    insert_usage,
    migrations,
    report_query,
    report_rows,
    update_charge_query,
    usage_values,
    utc,
)
from aiproxy.billing.record import UsageRecord
from aiproxy.storage.migrate import migrate_sqlite
from aiproxy.storage.sqlite_wal import enable_wal

T = TypeVar("T")


def ts(dt: datetime) -> str:
    """Fixed-width UTC text, so string order is time order and the first 10 chars are the day."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class DecimalSum:
    """SQLite aggregate: exact sum of decimal strings (SQLite's SUM would use float)."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = (self.total or Decimal(0)) + Decimal(value)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


DIALECT = Dialect(
    placeholder=lambda _: "?",
    day_expr="substr(started_at, 1, 10)",
    cost_sum="dsum(cost_usd)",
    time_param=ts,
    money_param=str,
    bool_param=int,
    types={"id": "INTEGER PRIMARY KEY", "text": "TEXT", "int": "INTEGER", "bool": "INTEGER", "money": "TEXT",
           "time": "TEXT", "float": "REAL"},
    insert_ignore=("OR IGNORE ", ""),
    hour_expr="substr(started_at, 1, 13)",
)  # fmt: skip
INSERT_USAGE = insert_usage(DIALECT)
INSERT_CHARGE = insert_charge(DIALECT)
CLAIM = claim_query(DIALECT, lock="")
UPDATE_CHARGE = update_charge_query(DIALECT)


class SqliteLedger:
    dialect = DIALECT

    def __init__(self, path: str | None, *, outbox: bool = False) -> None:
        """`path` None means a private in-memory database (tests, throwaway demos)."""
        self._memory = path is None
        self._target = f"file:aiproxy-{uuid.uuid4().hex}?mode=memory&cache=shared" if path is None else path
        self.outbox = outbox
        self.transactions = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite-w")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite-r")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._commits = GroupCommit(self._write_batch)

    # -- threads -------------------------------------------------------------------------------
    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        if not self._memory:
            Path(self._target).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._target, uri=self._memory, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.create_aggregate("dsum", 1, DecimalSum)  # type: ignore[arg-type]  # typeshed: int only; SQLite: any
        return conn

    def _open_writer(self) -> None:
        conn = self._connect()
        if not self._memory:
            enable_wal(conn)  # retried: another process opening the same fresh file may hold it
            conn.execute("PRAGMA synchronous = FULL")
        migrate_sqlite(conn, VERSION_TABLE, migrations(DIALECT))
        self._wconn = conn

    def _open_reader(self) -> None:
        self._rconn = self._connect()
        self._rconn.execute("PRAGMA query_only = ON")

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        await self._on(self._writer, self._open_writer)
        await self._on(self._reader, self._open_reader)

    async def close(self) -> None:
        await self._commits.drain()
        for pool, attr in ((self._reader, "_rconn"), (self._writer, "_wconn")):
            conn = getattr(self, attr)
            if conn is not None:
                await self._on(pool, conn.close)
                setattr(self, attr, None)
            pool.shutdown(wait=True)

    # -- writes --------------------------------------------------------------------------------
    async def record(self, rec: UsageRecord) -> None:
        await self._commits.submit(rec)

    async def _write_batch(self, recs: list[UsageRecord]) -> None:
        await self._on(self._writer, self._write_batch_sync, recs)

    def _write_batch_sync(self, recs: list[UsageRecord]) -> None:
        conn = self._require(self._wconn)
        charges = [c for c in map(charge_for, recs) if c is not None] if self.outbox else []
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT_USAGE, [usage_values(DIALECT, r) for r in recs])
            if charges:
                conn.executemany(INSERT_CHARGE, charge_values(DIALECT, charges, datetime.now(UTC)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLITE_FULL and some I/O errors have rolled back already
                conn.execute("ROLLBACK")
            raise
        self.transactions += 1

    # -- reads ---------------------------------------------------------------------------------
    async def _read(self, sql: str, params: list[Any] | tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            return self._require(self._rconn).execute(sql, params).fetchall()

        return await self._on(self._reader, run)

    async def report(
        self,
        *,
        user: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: str | None = None,
    ) -> list[dict]:
        sql, params = report_query(DIALECT, user=user, model=model, since=since, until=until, group_by=group_by)
        return report_rows(await self._read(sql, params), group_by)

    async def select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """A read-only query built for DIALECT (the dashboard's), on the reader connection."""
        return await self._read(sql, params)

    async def execute(self, sql: str, params: list[Any]) -> int:
        """One write statement built for DIALECT (stored responses), on the writer; rows changed."""
        def run() -> int:
            return self._require(self._wconn).execute(sql, params).rowcount

        return await self._on(self._writer, run)

    async def spent(self, user: str, since: datetime) -> Decimal:
        rows = await self._read("SELECT dsum(cost_usd) FROM usage WHERE user_id = ? AND started_at >= ?",
                                (user, ts(since)))
        return Decimal(rows[0][0] or 0)

    async def ping(self) -> bool:
        try:
            return (await self._read("SELECT 1", ()))[0][0] == 1
        except Exception:  # noqa: BLE001 - readiness answers, it does not raise
            return False

    async def rows(self) -> list[dict]:
        """Every usage row as stored (tests and debugging), oldest first."""

        def run() -> list[dict]:
            cur = self._require(self._rconn).execute(f"SELECT {USAGE_COLUMNS} FROM usage ORDER BY id")
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        return await self._on(self._reader, run)

    # -- outbox --------------------------------------------------------------------------------
    async def claim_charges(self, now: datetime, lease: timedelta, limit: int = 100) -> list[Charge]:
        def run() -> list[Charge]:
            args = (ts(now + lease), uuid.uuid4().hex, PENDING, ts(now), limit)
            rows = self._require(self._wconn).execute(CLAIM, args).fetchall()
            return [self._charge(r) for r in rows]

        return await self._on(self._writer, run)

    async def charges(self, state: str | None = None) -> list[Charge]:
        sql = f"SELECT {CHARGE_COLUMNS} FROM outbox"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state,)
        return [self._charge(r) for r in await self._read(sql + " ORDER BY created_at, request_id", params)]

    async def charge_counts(self) -> dict[str, int]:
        return counts_by_state(await self._read(COUNT_CHARGES, ()))

    async def update_charge(
        self, charge: Charge, *, state: str, attempts: int, next_attempt_at: datetime | None, error: str | None
    ) -> bool:
        def run() -> bool:
            nxt = ts(next_attempt_at) if next_attempt_at is not None else ts(datetime.now(UTC))
            args = (state, attempts, nxt, error, charge.request_id, charge.lease_token)
            return self._require(self._wconn).execute(UPDATE_CHARGE, args).rowcount == 1

        return await self._on(self._writer, run)

    @staticmethod
    def _charge(r: tuple[Any, ...]) -> Charge:
        return Charge(r[0], r[1], Decimal(r[2]), r[3], r[4], r[5], parse_ts(r[6]), r[7], r[8])

    @staticmethod
    def _require(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError("ledger is not open")
        return conn
