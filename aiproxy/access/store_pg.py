"""Key store in the ledger's PostgreSQL database (asyncpg), so every instance sees one key table.

`?schema=name` in USAGE_DB_URL puts the tables in that schema, as the ledger does (tests use a
fresh schema per run). Migrations run through aiproxy.storage.migrate (advisory lock first), so
instances starting together apply each step once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from aiproxy.access.keys import KeyRecord
from aiproxy.access.store_sql import COLUMNS, VERSION_TABLE, from_row, migrations, to_params
from aiproxy.storage.migrate import migrate_postgres
from aiproxy.storage.urls import split_schema


class PostgresKeyStore:
    def __init__(self, url: str) -> None:
        self._dsn, self.schema = split_schema(url)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=2, server_settings=settings)
        async with self._pool.acquire() as conn:
            steps = [(v, [script]) for v, script in migrations("NUMERIC", "TIMESTAMPTZ", "BOOLEAN")]
            await migrate_postgres(conn, VERSION_TABLE, steps, schema=self.schema)

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("key store is not open")
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def insert(self, rec: KeyRecord) -> None:
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        params: tuple[Any, ...] = to_params(rec, lambda dt: dt)
        await self._p().execute(f"INSERT INTO access_keys ({', '.join(COLUMNS)}) VALUES ({marks})", *params)

    async def all_keys(self) -> list[KeyRecord]:
        rows = await self._p().fetch(f"SELECT {', '.join(COLUMNS)} FROM access_keys ORDER BY created_at, id")
        return [from_row(r) for r in rows]

    async def revoke(self, key_id: str, when: datetime) -> bool:
        status = await self._p().execute(
            "UPDATE access_keys SET enabled = FALSE, revoked_at = COALESCE(revoked_at, $1) WHERE id = $2", when, key_id
        )
        return status.split()[-1] != "0"
