"""The one schema-migration runner, for every store (ledger and keys) on SQLite and PostgreSQL.

Several processes open the same fresh database at once (WORKERS=2, several instances). A runner
that reads the schema version before it holds the lock lets two of them both see version 0 and
both create the tables ("table usage already exists"). This one locks FIRST, then reads the
version, applies the pending steps and records each, all in one transaction:
- SQLite: `BEGIN IMMEDIATE` takes the write lock up front (waiting under a busy timeout), so the
  others wait and then find the steps recorded;
- PostgreSQL: `pg_advisory_xact_lock` with one lock id for every store, so the ledger and the key
  store creating the same fresh schema serialise too.
A failed step rolls the whole run back: the database stays at its old version, never half-way.

Each store keeps its own numbered steps (append, never edit) and its own version table
(`schema_version` for the ledger, `access_schema_version` for keys), the tables earlier releases
created, so databases they made open and upgrade unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiproxy.storage.urls import quote_ident

if TYPE_CHECKING:
    import asyncpg

Steps = Sequence[tuple[int, Sequence[str]]]  # (version, statements), ascending
MIGRATION_LOCK = 0x6169_7078_6D69_6772  # "aipxmigr": one advisory lock id for every store's schema changes
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite opener waits for another one's migration


def latest(steps: Steps) -> int:
    return max((version for version, _ in steps), default=0)


def migrate_sqlite(conn: sqlite3.Connection, version_table: str, steps: Steps) -> int:
    """Bring the database to the last step under the write lock; returns the version it is at.
    `conn` must be in autocommit mode (isolation_level=None): the runner owns the transaction."""
    if conn.isolation_level is not None or conn.in_transaction:
        raise ValueError("migrate_sqlite needs an autocommit connection outside any transaction")
    if conn.execute("PRAGMA busy_timeout").fetchone()[0] < BUSY_TIMEOUT_MS:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("BEGIN IMMEDIATE")  # the lock before the version is read
    try:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {version_table} "
                     "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        current = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {version_table}").fetchone()[0]
        for version, statements in steps:
            if version > current:
                for statement in statements:
                    conn.execute(statement)
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                conn.execute(f"INSERT INTO {version_table} VALUES (?, ?)", (version, stamp))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(current, latest(steps))


async def migrate_postgres(conn: asyncpg.Connection, version_table: str, steps: Steps, *,
                           schema: str | None = None) -> int:
    """Bring the database (and `schema`, created if missing) to the last step under the advisory
    lock; returns the version it is at. The connection's search_path must name `schema`."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)  # the lock before the version is read
        if schema:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {version_table} (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
        current = await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {version_table}")
        for version, statements in steps:
            if version > current:
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(f"INSERT INTO {version_table} VALUES ($1, now())", version)
    return max(current, latest(steps))
