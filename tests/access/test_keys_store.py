"""Key storage (SQLite and Postgres) and the `keys` command: keys are shown once, stored hashed."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from aiproxy.access.cli import main as keys_main
from aiproxy.access.keys import KeyCache, KeyRecord, generate_key, hash_key, new_key_id, open_keystore, shown_prefix

PG = "postgresql://postgres@127.0.0.1:5432/test"


def test_key_shape_and_hash() -> None:
    key = generate_key()
    assert key.startswith("aip_") and len(key) == 47
    assert generate_key() != key
    assert hash_key(key) == hash_key(key) and len(hash_key(key)) == 64 and key not in hash_key(key)
    assert shown_prefix(key) == key[:12]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: Any, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/usage.db"
        return
    schema = f"access_{os.getpid()}_{secrets.token_hex(4)}"
    yield f"{PG}?schema={schema}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


def _record(user: str = "alice", **fields: Any) -> tuple[str, KeyRecord]:
    key = generate_key()
    return key, KeyRecord(id=new_key_id(), key_hash=hash_key(key), prefix=shown_prefix(key), user=user,
                          created_at=datetime.now(UTC), **fields)


async def test_store_round_trip_revoke_and_cache(store_url: str) -> None:
    store = open_keystore(store_url)
    await store.open()
    await store.open()  # migrations are idempotent
    try:
        key, rec = _record(rpm=60, tpm=1000, max_streams=2, daily_budget=Decimal("1.25"),
                           monthly_budget=Decimal("30.000001"), label="laptop", admin=True)
        await store.insert(rec)
        [back] = await store.all_keys()
        assert back.daily_budget == Decimal("1.25") and back.monthly_budget == Decimal("30.000001")
        assert (back.id, back.user, back.rpm, back.tpm, back.max_streams, back.label, back.admin, back.enabled) == (
            rec.id, "alice", 60, 1000, 2, "laptop", True, True)
        cache = KeyCache(store, ttl=0)
        assert (await cache.lookup(key)) is not None
        assert await cache.lookup(key + "x") is None
        assert await store.revoke(rec.id, datetime.now(UTC))
        assert not await store.revoke("key_missing", datetime.now(UTC))
        assert await cache.lookup(key) is None
        assert (await cache.current()).any_keys  # a revoked key still keeps auth on
    finally:
        await store.close()


def test_cli_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/usage.db"
    assert keys_main(["--db", db, "create", "--user", "alice", "--label", "phone", "--rpm", "10", "--tpm", "5000",
                      "--streams", "2", "--daily-budget", "1.50", "--monthly-budget", "20"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("aip_") and "cannot be shown again" in out.err
    assert keys_main(["--db", db, "list"]) == 0
    listing = capsys.readouterr().out
    assert key not in listing and key[:12] in listing
    assert "alice" in listing and "rpm=10 tpm=5000 streams=2 daily=$1.50 monthly=$20" in listing
    # only the hash is on disk
    raw = (tmp_path / "usage.db").read_bytes()
    assert key.encode() not in raw and hash_key(key).encode() in raw
    key_id = listing.splitlines()[1].split("\t")[0]
    assert keys_main(["--db", db, "revoke", key_id]) == 0
    assert keys_main(["--db", db, "revoke", "key_nope"]) == 1
    capsys.readouterr()
    keys_main(["--db", db, "list"])
    assert "\trevoked\t" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["create"], ["create", "--user", "a", "--rpm", "0"],
                                  ["create", "--user", "a", "--daily-budget", "-1"],
                                  ["create", "--user", "a", "--daily-budget", "abc"], ["revoke"]])
def test_cli_rejects_bad_arguments(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        keys_main(["--db", f"sqlite:///{tmp_path}/u.db", *args])
    assert exc.value.code == 2


def test_python_dash_m_dispatches_keys(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path}/u.db"
    done = subprocess.run([sys.executable, "-m", "aiproxy", "keys", "--db", db, "create", "--user", "bob"],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert done.returncode == 0 and done.stdout.startswith("aip_")
    listing = asyncio.run(_list(db))
    assert [r.user for r in listing] == ["bob"]


async def _list(db: str) -> list[KeyRecord]:
    store = open_keystore(db)
    await store.open()
    try:
        return await store.all_keys()
    finally:
        await store.close()
