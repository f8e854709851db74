"""Schema migrations: many openers of one fresh database at once, and databases made by earlier code.

With WORKERS=2 on a fresh SQLite file, starts failed with "table usage already exists": the
version was read before the lock was taken. Here eight ledgers and eight key stores (each with
its own connections and threads) open the same fresh database at once, several times, on both
backends; a real WORKERS=2 start is in tests/integration/test_workers.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from aiproxy.access.keys import open_keystore
from aiproxy.access.store_sql import migrations as key_migrations
from aiproxy.billing import ledger_pg, ledger_sqlite
from aiproxy.billing.ledger import open_ledger
from aiproxy.billing.ledger_sql import migrations as ledger_migrations
from aiproxy.storage.urls import split_schema
from tests.ledger.conftest import drop_schema

OPENERS = 8
ROUNDS = 4
LEDGER_VERSIONS = [version for version, _ in ledger_migrations(ledger_sqlite.DIALECT)]


def round_url(base: str, n: int) -> str:
    """A fresh database per round: another file, or another schema."""
    return base.replace("usage.db", f"usage-{n}.db") if base.startswith("sqlite") else f"{base}_{n}"


async def versions(url: str) -> tuple[list[int], list[int]]:
    """(ledger versions, key-store versions) recorded in the database, in order."""
    queries = ("SELECT version FROM schema_version ORDER BY version",
               "SELECT version FROM access_schema_version ORDER BY version")
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return [r[0] for r in conn.execute(queries[0])], [r[0] for r in conn.execute(queries[1])]
        finally:
            conn.close()
    dsn, schema = split_schema(url)
    pg = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        return [r[0] for r in await pg.fetch(queries[0])], [r[0] for r in await pg.fetch(queries[1])]
    finally:
        await pg.close()


async def open_both_and_close(url: str) -> None:
    ledger, keys = open_ledger(url), open_keystore(url)
    try:
        await asyncio.gather(ledger.open(), keys.open())
        assert await keys.all_keys() == [] and await ledger.spent("alice", datetime(2026, 1, 1, tzinfo=UTC)) == 0
    finally:
        await asyncio.gather(ledger.close(), keys.close())


async def test_many_openers_of_a_fresh_database_at_once_all_succeed(ledger_url: str) -> None:
    try:
        for n in range(ROUNDS):
            url = round_url(ledger_url, n)
            results = await asyncio.gather(*(open_both_and_close(url) for _ in range(OPENERS)), return_exceptions=True)
            assert [r for r in results if r is not None] == [], f"round {n}"
            assert await versions(url) == (LEDGER_VERSIONS, [1])
    finally:
        if not ledger_url.startswith("sqlite"):
            for n in range(ROUNDS):
                await drop_schema(split_schema(round_url(ledger_url, n))[1] or "")


# --- a database made by the code before the shared runner: ledger at version 1, keys at 1 ------

OLD_ROW = ("req-old-1", "alice", "gpt-4o", "gemini-2.5-pro", "chat", 10, 20, 0, 0, 30, "0.000125", "ok")
OLD_KEY = ("key_0123456789ab", "f" * 64, "aip_abcdefgh", "alice", "phone", "2026-11-01T00:00:00+00:00")


def make_old_sqlite(path: str) -> None:
    """What the earlier SqliteLedger and SqliteKeyStore left in a file: their version tables, the
    ledger's first step only, one usage row and one key."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    for stmt in dict(ledger_migrations(ledger_sqlite.DIALECT))[1]:
        conn.execute(stmt)
    conn.execute("INSERT INTO schema_version VALUES (1, '2026-11-01T00:00:00.000000Z')")
    conn.execute(
        "INSERT INTO usage (request_id, user_id, requested_model, upstream_model, endpoint, streamed, prompt_tokens,"
        " completion_tokens, reasoning_tokens, cached_tokens, total_tokens, cost_usd, status, estimated,"
        " price_fallback, started_at, duration_ms) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, 0, 0,"
        " '2026-11-01T10:00:00.000000Z', 12.5)", OLD_ROW)
    conn.execute("CREATE TABLE IF NOT EXISTS access_schema_version"
                 " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    conn.execute(dict(key_migrations("TEXT", "TEXT", "INTEGER"))[1])
    conn.execute("INSERT INTO access_schema_version VALUES (1, '2026-11-01T00:00:00+00:00')")
    conn.execute("INSERT INTO access_keys (id, key_hash, prefix, user_id, label, is_admin, enabled, created_at)"
                 " VALUES (?, ?, ?, ?, ?, 0, 1, ?)", OLD_KEY)
    conn.close()


async def make_old_postgres(url: str) -> None:
    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path = "{schema}"')
        await conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
        for stmt in dict(ledger_migrations(ledger_pg.DIALECT))[1]:
            await conn.execute(stmt)
        await conn.execute("INSERT INTO schema_version VALUES (1, now())")
        await conn.execute(
            "INSERT INTO usage (request_id, user_id, requested_model, upstream_model, endpoint, streamed,"
            " prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens, total_tokens, cost_usd, status,"
            " estimated, price_fallback, started_at, duration_ms)"
            " VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8, $9, $10, $11,"
            " $12, false, false, '2026-11-01T10:00:00Z', 12.5)", *OLD_ROW[:10], Decimal(OLD_ROW[10]), OLD_ROW[11])
        await conn.execute(
            "CREATE TABLE access_schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
        await conn.execute(dict(key_migrations("NUMERIC", "TIMESTAMPTZ", "BOOLEAN"))[1])
        await conn.execute("INSERT INTO access_schema_version VALUES (1, now())")
        await conn.execute("INSERT INTO access_keys (id, key_hash, prefix, user_id, label, is_admin, enabled,"
                           " created_at) VALUES ($1, $2, $3, $4, $5, false, true, now())", *OLD_KEY[:5])
    finally:
        await conn.close()


@pytest.fixture
async def old_database(ledger_url: str) -> AsyncIterator[str]:
    if ledger_url.startswith("sqlite"):
        make_old_sqlite(ledger_url.removeprefix("sqlite:///"))
    else:
        await make_old_postgres(ledger_url)
    yield ledger_url


async def test_database_made_by_earlier_code_upgrades_and_keeps_its_rows_and_keys(old_database: str) -> None:
    ledger, keys = open_ledger(old_database, outbox=True), open_keystore(old_database)
    await asyncio.gather(ledger.open(), keys.open())
    try:
        [total] = await ledger.report(user="alice")
        assert (total["requests"], total["total_tokens"], total["cost_usd"]) == (1, 30, Decimal("0.000125"))
        [key] = await keys.all_keys()
        assert (key.id, key.user, key.label, key.enabled) == ("key_0123456789ab", "alice", "phone", True)
        assert await ledger.charges() == []  # the outbox table of step 2 exists now
    finally:
        await asyncio.gather(ledger.close(), keys.close())
    assert await versions(old_database) == (LEDGER_VERSIONS, [1])


async def test_a_failing_step_leaves_the_database_at_its_old_version(tmp_path: Any) -> None:
    from aiproxy.storage.migrate import migrate_sqlite

    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    steps = [(1, ["CREATE TABLE a (x INTEGER)"]), (2, ["CREATE TABLE b (x INTEGER)", "CREATE TABLE a (y INTEGER)"])]
    with pytest.raises(sqlite3.OperationalError):
        migrate_sqlite(conn, "v", steps)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
    assert migrate_sqlite(conn, "v", steps[:1]) == 1
    assert [r[0] for r in conn.execute("SELECT version FROM v")] == [1]
    conn.close()
