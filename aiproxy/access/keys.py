"""Client keys: how they are made, how they are stored (hashed), and the in-memory snapshot.

A key is `aip_` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: with that
much entropy a plain hash cannot be reversed or brute-forced, and it keeps lookups to one dict
access. The whole key table is small, so the proxy holds a snapshot of it and refreshes it every
KEY_CACHE_TTL seconds: authentication costs no database round trip, a flood of made-up keys never
reaches the database, and a revoked key stops working within the TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from aiproxy.errors import ProxyError
from aiproxy.storage.urls import parse_database_url

log = logging.getLogger("aiproxy.access")

KEY_PREFIX = "aip_"
SHOWN_PREFIX_CHARS = 8  # characters after `aip_` that `keys list` shows to tell keys apart


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One stored key (never the key itself)."""

    id: str
    key_hash: str
    prefix: str
    user: str
    label: str = ""
    admin: bool = False
    enabled: bool = True
    rpm: int | None = None
    tpm: int | None = None
    max_streams: int | None = None
    daily_budget: Decimal | None = None
    monthly_budget: Decimal | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def rate_limited(self) -> bool:
        return bool(self.rpm or self.tpm)


@dataclass(frozen=True, slots=True)
class NewKey:
    """What `keys create` asks for."""

    user: str
    label: str = ""
    admin: bool = False
    rpm: int | None = None
    tpm: int | None = None
    max_streams: int | None = None
    daily_budget: Decimal | None = None
    monthly_budget: Decimal | None = None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def shown_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + SHOWN_PREFIX_CHARS]


class KeyStore(Protocol):
    async def open(self) -> None:
        """Connect and bring the key tables to the current schema version."""

    async def close(self) -> None: ...

    async def insert(self, rec: KeyRecord) -> None: ...

    async def all_keys(self) -> list[KeyRecord]:
        """Every key row, revoked ones included (their existence keeps auth switched on)."""

    async def revoke(self, key_id: str, when: datetime) -> bool:
        """Disable `key_id`; False when there is no such key."""


def open_keystore(url: str) -> KeyStore:
    """The key store for USAGE_DB_URL (the ledger's database), not yet opened."""
    where = parse_database_url(url)
    if where.is_postgres:
        from aiproxy.access.store_pg import PostgresKeyStore

        return PostgresKeyStore(where.dsn or "", where.schema)
    from aiproxy.access.store_sqlite import SqliteKeyStore

    return SqliteKeyStore(where.sqlite_path)


@dataclass
class KeySnapshot:
    by_hash: dict[str, KeyRecord] = field(default_factory=dict)
    by_id: dict[str, KeyRecord] = field(default_factory=dict)
    loaded_at: float = float("-inf")

    @property
    def any_keys(self) -> bool:
        return bool(self.by_id)


class KeyCache:
    """The key table in memory, refreshed at most every `ttl` seconds by one task at a time."""

    def __init__(self, store: KeyStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self.snapshot = KeySnapshot()
        self._lock = asyncio.Lock()

    async def refresh(self) -> KeySnapshot:
        rows = await self.store.all_keys()
        snap = KeySnapshot({r.key_hash: r for r in rows}, {r.id: r for r in rows}, time.monotonic())
        self.snapshot = snap
        return snap

    async def current(self) -> KeySnapshot:
        snap = self.snapshot
        if time.monotonic() - snap.loaded_at < self.ttl:
            return snap
        async with self._lock:  # one refresh for a burst of requests
            if time.monotonic() - self.snapshot.loaded_at < self.ttl:
                return self.snapshot
            try:
                return await self.refresh()
            except Exception as exc:  # noqa: BLE001 - the database is down: keep the last known keys
                if self.snapshot.loaded_at == float("-inf"):
                    raise ProxyError(503, "Key verification is temporarily unavailable; please retry.",
                                     type="api_error", code="auth_unavailable", headers={"Retry-After": "1"}) from None
                log.warning("could not reload the key table (%s); using the copy from %.0f s ago",
                            type(exc).__name__, time.monotonic() - self.snapshot.loaded_at)
                self.snapshot.loaded_at = time.monotonic()  # retry after another TTL, not per request
                return self.snapshot

    async def lookup(self, key: str) -> KeyRecord | None:
        """The enabled key record for `key`, compared in constant time; None when unknown/revoked."""
        digest = hash_key(key)
        rec = (await self.current()).by_hash.get(digest)
        if rec is None or not hmac.compare_digest(rec.key_hash, digest) or not rec.enabled:
            return None
        return rec
