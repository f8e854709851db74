"""Key store in the ledger's SQLite file (stdlib sqlite3 on a worker thread).

Key traffic is tiny (a snapshot read every KEY_CACHE_TTL, a write per `keys create`), so one
short-lived connection per call keeps this simple and safe beside the ledger's own writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiproxy.access.keys import KeyRecord
from aiproxy.access.store_sql import COLUMNS, VERSION_TABLE, from_row, migrations, to_params
from aiproxy.storage.migrate import migrate_sqlite


def _stamp(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def _adapt(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str(p) if p is not None and not isinstance(p, (int, str, float)) else p for p in params)


class SqliteKeyStore:
    def __init__(self, path: str | None) -> None:
        """`path` None: a private in-memory database that lives as long as this store."""
        self._memory = path is None
        self._target = f"file:aiproxy-keys-{uuid.uuid4().hex}?mode=memory&cache=shared" if path is None else path
        self._keeper: sqlite3.Connection | None = None  # keeps a shared in-memory db alive

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._target, uri=self._memory, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect()
        try:
            cur = conn.execute(sql, params)
            return [(cur.rowcount,)] if cur.description is None else cur.fetchall()
        finally:
            conn.close()

    def _migrate(self) -> None:
        if not self._memory:
            Path(self._target).parent.mkdir(parents=True, exist_ok=True)
        else:
            self._keeper = self._connect()
        conn = self._connect()
        try:
            migrate_sqlite(conn, VERSION_TABLE, [(v, [script]) for v, script in migrations("TEXT", "TEXT", "INTEGER")])
        finally:
            conn.close()

    async def open(self) -> None:
        await asyncio.to_thread(self._migrate)

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    async def insert(self, rec: KeyRecord) -> None:
        sql = f"INSERT INTO access_keys ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        await asyncio.to_thread(self._run, sql, _adapt(to_params(rec, _stamp)))

    async def all_keys(self) -> list[KeyRecord]:
        rows = await asyncio.to_thread(self._run,
                                       f"SELECT {', '.join(COLUMNS)} FROM access_keys ORDER BY created_at, id")
        return [from_row(r) for r in rows]

    async def revoke(self, key_id: str, when: datetime) -> bool:
        rows = await asyncio.to_thread(
            self._run, "UPDATE access_keys SET enabled = 0, revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (_stamp(when), key_id),
        )
        return rows[0][0] > 0
