"""Helpers for the access-control tests: keys added straight into a running proxy's key store."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from aiproxy.access.keys import KeyRecord, generate_key, hash_key, new_key_id, shown_prefix
from aiproxy.appkeys import ACCESS_KEY
from aiproxy.emulator import directive_text


async def add_key(server: TestServer, user: str = "alice", **fields: Any) -> tuple[str, KeyRecord]:
    """Create a key in `server`'s store and make it visible at once (no TTL wait)."""
    key = generate_key()
    for name in ("daily_budget", "monthly_budget"):
        if name in fields and fields[name] is not None:
            fields[name] = Decimal(str(fields[name]))
    rec = KeyRecord(id=new_key_id(), key_hash=hash_key(key), prefix=shown_prefix(key), user=user,
                    created_at=datetime.now(UTC), **fields)
    access = server.app[ACCESS_KEY]
    await access.store.insert(rec)
    await access.keys.refresh()
    return key, rec


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat_body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def scripted(**directive: Any) -> str:
    return "hi " + directive_text(**directive)


@pytest.fixture
def run_prefix() -> str:
    """A Redis key prefix no other test run (or helper) shares."""
    return f"aiproxy-test:{os.getpid()}:{secrets.token_hex(4)}:"


async def delete_redis_keys(url: str, prefix: str) -> None:
    """Remove what a test left in the shared Redis under its own prefix."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
