"""Key store in the ledger's PostgreSQL database (asyncpg), so every instance sees one key table.

`?schema=name` in USAGE_DB_URL puts the tables in that schema, as the ledger does (tests use a
fresh schema per run), through the pool it shares with the ledger (aiproxy.storage.pg_pool).
Migrations run through aiproxy.storage.migrate (advisory lock first), so
instances starting together apply each step once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from aiproxy.access.keys import KeyRecord
from aiproxy.access.store_sql import COLUMNS, VERSION_TABLE, from_row, migrations, to_params
from aiproxy.storage.migrate import migrate_postgres
from aiproxy.storage.pg_pool import acquire_pool, release_pool


class PostgresKeyStore:
    def __init__(self, dsn: str, schema: str | None = None) -> None:
        self._dsn, self.schema = dsn, schema
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        if self._pool is None:  # opening again only re-checks the schema
            self._pool = await acquire_pool(self._dsn, self.schema)
        async with self._pool.acquire() as conn:
            steps = [(v, [script]) for v, script in migrations("NUMERIC", "TIMESTAMPTZ", "BOOLEAN")]
            await migrate_postgres(conn, VERSION_TABLE, steps, schema=self.schema)

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("key store is not open")
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await release_pool(pool)

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
