"""Shared ledger: PostgreSQL through an asyncpg pool, for several proxy instances.

The pool is shared with the key store on the same database (aiproxy.storage.pg_pool).
Rows go in groups (one transaction, `executemany` pipelined) exactly like the SQLite backend;
cost is NUMERIC, so sums are exact in the database and come back as Decimal. `?schema=name` in
the URL puts the tables in their own schema (created if missing): tests use a fresh one per run.
Migrations run through aiproxy.storage.migrate (advisory lock first), so instances starting
together apply each migration once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

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
from aiproxy.storage.migrate import migrate_postgres
from aiproxy.storage.pg_pool import acquire_pool, release_pool

DIALECT = Dialect(
    placeholder=lambda i: f"${i}",
    day_expr="to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    cost_sum="SUM(cost_usd)",
    time_param=lambda dt: dt,
    money_param=lambda d: d,
    bool_param=bool,
    types={"id": "BIGSERIAL PRIMARY KEY", "text": "TEXT", "int": "BIGINT", "bool": "BOOLEAN", "money": "NUMERIC",
           "time": "TIMESTAMPTZ", "float": "DOUBLE PRECISION"},
    insert_ignore=("", " ON CONFLICT ({}) DO NOTHING"),
    hour_expr="to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
)  # fmt: skip
INSERT_USAGE = insert_usage(DIALECT)
INSERT_CHARGE = insert_charge(DIALECT)
CLAIM = claim_query(DIALECT, lock=" FOR UPDATE SKIP LOCKED")
UPDATE_CHARGE = update_charge_query(DIALECT)


class PostgresLedger:
    dialect = DIALECT

    def __init__(self, dsn: str, schema: str | None = None, *, outbox: bool = False) -> None:
        self._dsn, self.schema = dsn, schema
        self.outbox = outbox
        self.transactions = 0
        self._pool: asyncpg.Pool | None = None
        self._commits = GroupCommit(self._write_batch)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("ledger is not open")
        return self._pool

    async def open(self) -> None:
        if self._pool is None:  # opening again only re-checks the schema
            self._pool = await acquire_pool(self._dsn, self.schema)
        async with self.pool.acquire() as conn:
            await migrate_postgres(conn, VERSION_TABLE, migrations(DIALECT), schema=self.schema)

    async def close(self) -> None:
        await self._commits.drain()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await release_pool(pool)

    async def record(self, rec: UsageRecord) -> None:
        await self._commits.submit(rec)

    async def _write_batch(self, recs: list[UsageRecord]) -> None:
        charges = [c for c in map(charge_for, recs) if c is not None] if self.outbox else []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(INSERT_USAGE, [usage_values(DIALECT, r) for r in recs])
            if charges:
                await conn.executemany(INSERT_CHARGE, charge_values(DIALECT, charges, datetime.now(UTC)))
        self.transactions += 1

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
        rows = await self.pool.fetch(sql, *params)
        return report_rows([tuple(r) for r in rows], group_by)

    async def select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """A read-only query built for DIALECT (the dashboard's)."""
        return [tuple(r) for r in await self.pool.fetch(sql, *params)]

    async def execute(self, sql: str, params: list[Any]) -> int:
        """One write statement built for DIALECT (stored responses); rows changed."""
        status = await self.pool.execute(sql, *params)
        return int(status.rsplit(" ", 1)[-1]) if status.rsplit(" ", 1)[-1].isdigit() else 0

    async def spent(self, user: str, since: datetime) -> Decimal:
        value = await self.pool.fetchval(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE user_id = $1 AND started_at >= $2", user, utc(since)
        )
        return Decimal(value)

    async def ping(self) -> bool:
        try:
            return await self.pool.fetchval("SELECT 1") == 1
        except Exception:  # noqa: BLE001 - readiness answers, it does not raise
            return False

    async def rows(self) -> list[dict]:
        """Every usage row as stored (tests and debugging), oldest first."""
        return [dict(r) for r in await self.pool.fetch(f"SELECT {USAGE_COLUMNS} FROM usage ORDER BY id")]

    async def claim_charges(self, now: datetime, lease: timedelta, limit: int = 100) -> list[Charge]:
        rows = await self.pool.fetch(CLAIM, utc(now) + lease, uuid.uuid4().hex, PENDING, utc(now), limit)
        return [Charge(*r) for r in rows]

    async def charges(self, state: str | None = None) -> list[Charge]:
        sql = f"SELECT {CHARGE_COLUMNS} FROM outbox"
        args: list[Any] = []
        if state is not None:
            sql, args = sql + " WHERE state = $1", [state]
        return [Charge(*r) for r in await self.pool.fetch(sql + " ORDER BY created_at, request_id", *args)]

    async def charge_counts(self) -> dict[str, int]:
        return counts_by_state([tuple(r) for r in await self.pool.fetch(COUNT_CHARGES)])

    async def update_charge(
        self, charge: Charge, *, state: str, attempts: int, next_attempt_at: datetime | None, error: str | None
    ) -> bool:
        status = await self.pool.execute(
            UPDATE_CHARGE, state, attempts, utc(next_attempt_at or datetime.now(UTC)), error,
            charge.request_id, charge.lease_token,
        )
        return status == "UPDATE 1"
