"""Where cached answers live: an in-process LRU bounded in bytes, or Redis (shared by instances).

Entries are opaque bytes (the JSON of the folded answer); both stores expire them after the TTL.

A cache fails open: Redis down, refusing or silent is a miss and nothing stored, never an error
or a wait for the client. Every Redis call is bounded by TIMEOUT (connecting included); after a
failure the store does not touch Redis for RETRY_AFTER seconds (requests are served from the upstream and
billed as misses without paying the timeout), then tries again. One warning per outage (the
exception's type, never the URL), one info line when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("aiproxy.cache")


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes) -> None: ...
    async def close(self) -> None: ...


class MemoryStore:
    """LRU by total value bytes; an entry older than `ttl` seconds is gone."""

    def __init__(self, ttl: float, max_bytes: int) -> None:
        self.ttl, self.max_bytes = ttl, max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._bytes += len(value)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0


TIMEOUT = 0.5  # seconds one Redis cache call may take, connecting included (the rate limiter's bound)
RETRY_AFTER = 5.0  # seconds Redis is left alone after a failure


class RedisStore:
    """SET with EX under REDIS_KEY_PREFIX + "cache:"; every instance with the same Redis shares it."""

    def __init__(self, url: str, prefix: str, ttl: float, timeout: float = TIMEOUT) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self.prefix, self.ttl, self.timeout = prefix + "cache:", max(1, int(ttl)), timeout
        self._down_until: float | None = None  # set while Redis is considered down

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._redis.get(self.prefix + key))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        await self._call(lambda: self._redis.set(self.prefix + key, value, ex=self.ttl))

    async def _call(self, op: Callable[[], Awaitable[Any]]) -> Any:
        """`op()`'s result, or None when Redis is down, fails or takes longer than the timeout."""
        if self._down_until is not None and time.monotonic() < self._down_until:
            return None  # left alone until RETRY_AFTER has passed
        try:
            async with asyncio.timeout(self.timeout):  # the whole call, the client's own retries included
                result = await op()
        except Exception as exc:  # noqa: BLE001 - a cache fails open, whatever went wrong
            if self._down_until is None:
                log.warning("response cache: Redis unavailable (%s); serving without the cache, retrying every "
                            "%g s", type(exc).__name__, RETRY_AFTER)
            self._down_until = time.monotonic() + RETRY_AFTER
            return None
        if self._down_until is not None:
            log.info("response cache: Redis answers again; cache back on")
            self._down_until = None
        return result

    async def close(self) -> None:
        await self._redis.aclose()
