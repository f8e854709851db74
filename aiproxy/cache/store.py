"""Where cached answers live: an in-process LRU bounded in bytes, or Redis (shared by instances).

Entries are opaque bytes (the JSON of the folded answer); both stores expire them after the TTL.
A Redis failure is a miss (logged), never an error for the client.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

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


class RedisStore:
    """SET with EX under REDIS_KEY_PREFIX + "cache:"; every instance with the same Redis shares it."""

    def __init__(self, url: str, prefix: str, ttl: float) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self.prefix, self.ttl = prefix + "cache:", max(1, int(ttl))

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(self.prefix + key)
            return value if isinstance(value, bytes) else None
        except Exception:  # an unreachable cache is a miss
            log.warning("response cache: Redis get failed; treated as a miss", exc_info=True)
            return None

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self._redis.set(self.prefix + key, value, ex=self.ttl)
        except Exception:  # an unreachable cache stores nothing
            log.warning("response cache: Redis set failed; answer not cached", exc_info=True)

    async def close(self) -> None:
        await self._redis.aclose()
