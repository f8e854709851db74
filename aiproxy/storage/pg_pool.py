"""One asyncpg pool per Postgres database, shared by the ledger and the key store.

Both live in USAGE_DB_URL's database; two pools there would hold twice the idle connections
against a server whose connection limit every proxy instance shares. Pools are keyed by event
loop, DSN and schema (a pool belongs to the loop that made it), counted by reference, and closed
when the last user releases theirs. Concurrent first users wait for the one pool being created.
"""

from __future__ import annotations

import asyncio

import asyncpg

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 4
COMMAND_TIMEOUT = 30.0  # seconds; a statement stuck longer fails (and is retried or spooled)

_Key = tuple[asyncio.AbstractEventLoop, str, str | None]


class _Entry:
    def __init__(self, creating: asyncio.Future[asyncpg.Pool]) -> None:
        self.creating = creating
        self.pool: asyncpg.Pool | None = None
        self.users = 0


_pools: dict[_Key, _Entry] = {}


async def acquire_pool(dsn: str, schema: str | None) -> asyncpg.Pool:
    """The shared pool for (`dsn`, `schema`), created on first use; pair with `release_pool`."""
    key = (asyncio.get_running_loop(), dsn, schema)
    entry = _pools.get(key)
    if entry is None:
        entry = _pools[key] = _Entry(asyncio.ensure_future(_create(dsn, schema)))
    entry.users += 1
    try:
        entry.pool = await asyncio.shield(entry.creating)
    except BaseException:  # creation failed, or this opener was cancelled while waiting
        entry.users -= 1
        if entry.users == 0 and _pools.get(key) is entry:
            del _pools[key]  # the next open tries afresh
            entry.creating.add_done_callback(_close_unused)
        raise
    return entry.pool


async def release_pool(pool: asyncpg.Pool) -> None:
    """Drop one user of `pool`; the last one out closes it."""
    for key, entry in _pools.items():
        if entry.pool is pool:
            entry.users -= 1
            if entry.users > 0:
                return
            del _pools[key]
            break
    await pool.close()


def _close_unused(creating: asyncio.Future[asyncpg.Pool]) -> None:
    """A pool that finished opening after everyone waiting for it gave up."""
    if not creating.cancelled() and creating.exception() is None:
        asyncio.ensure_future(creating.result().close())


async def _create(dsn: str, schema: str | None) -> asyncpg.Pool:
    settings = {"search_path": schema} if schema else {}
    return await asyncpg.create_pool(dsn, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE,
                                     server_settings=settings, command_timeout=COMMAND_TIMEOUT)
