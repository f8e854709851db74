"""USAGE_DB_URL is parsed in one place, and the ledger and the key store on one Postgres database
share one connection pool, which outlives whichever of them closes first."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from aiproxy.access.keys import KeyRecord, generate_key, hash_key, new_key_id, open_keystore, shown_prefix
from aiproxy.billing.ledger import open_ledger
from aiproxy.config import Settings
from aiproxy.storage import pg_pool
from aiproxy.storage.urls import DatabaseURL, parse_database_url
from tests.ledger.factories import make_record

PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///data/usage.db", DatabaseURL("sqlite", sqlite_path="data/usage.db")),
    ("sqlite:///./data/usage.db", DatabaseURL("sqlite", sqlite_path="./data/usage.db")),
    ("sqlite:////var/lib/aiproxy/usage.db", DatabaseURL("sqlite", sqlite_path="/var/lib/aiproxy/usage.db")),
    ("memory://", DatabaseURL("sqlite", sqlite_path=None)),
    ("postgresql://u@db:5432/app?schema=billing&sslmode=disable",
     DatabaseURL("postgres", dsn="postgresql://u@db:5432/app?sslmode=disable", schema="billing")),
    ("postgres://u@db/app", DatabaseURL("postgres", dsn="postgres://u@db/app", schema=None)),
])
def test_one_parser_for_every_store(url: str, expected: DatabaseURL) -> None:
    assert parse_database_url(url) == expected


def test_unknown_scheme_is_refused_by_the_parser_and_the_settings() -> None:
    with pytest.raises(ValueError, match="unsupported USAGE_DB_URL scheme: mysql"):
        parse_database_url("mysql://db/app")
    with pytest.raises(ValueError, match="unsupported USAGE_DB_URL scheme: mysql"):
        open_ledger("mysql://db/app")
    with pytest.raises(ValueError, match="unsupported USAGE_DB_URL scheme: mysql"):
        open_keystore("mysql://db/app")
    with pytest.raises(ValueError, match="must start with sqlite://, postgresql:// or memory://"):
        Settings(_env_file=None, usage_db_url="mysql://db/app")


def _key() -> KeyRecord:
    key = generate_key()
    return KeyRecord(id=new_key_id(), key_hash=hash_key(key), prefix=shown_prefix(key), user="alice",
                     created_at=datetime.now(UTC))


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    schema = f"t_pool_{secrets.token_hex(5)}"
    yield f"{PG}?schema={schema}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


@pytest.mark.postgres
async def test_ledger_and_key_store_share_one_pool_and_survive_each_other(pg_url: str) -> None:
    ledger, store = open_ledger(pg_url), open_keystore(pg_url)
    try:
        await ledger.open()
        await store.open()
        shared = ledger.pool
        assert store._pool is shared  # one pool on one database
        assert shared.get_max_size() == pg_pool.POOL_MAX_SIZE

        await ledger.close()  # the key store keeps working on the shared pool
        assert not shared.is_closing()
        rec = _key()
        await store.insert(rec)
        assert [k.id for k in await store.all_keys()] == [rec.id]

        again = open_ledger(pg_url)  # a ledger opened later joins the same pool
        await again.open()
        assert again.pool is shared
        await store.close()  # and the ledger keeps working once the key store has closed
        await again.record(make_record())
        assert (await again.report())[0]["requests"] == 1
        assert not shared.is_closing()
        await again.close()  # the last user out closes it
        assert shared.is_closing()
    finally:
        await ledger.close()
        await store.close()


@pytest.mark.postgres
async def test_ledger_and_key_store_opening_together_create_one_pool(pg_url: str) -> None:
    ledger, store = open_ledger(pg_url), open_keystore(pg_url)
    try:
        await asyncio.gather(ledger.open(), store.open())  # as two app startup hooks may
        assert store._pool is ledger.pool
    finally:
        await asyncio.gather(ledger.close(), store.close())
