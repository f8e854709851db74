"""Rate-limit counters in Redis, shared by every instance: `limits.take` as one Lua script.

Each check is a single EVALSHA, so refill, test and consume happen atomically on the Redis
server with its own clock (`TIME`): instances with skewed clocks still agree. Bucket keys expire
once they would be full again, so idle keys cost no memory. Stream slots are a sorted set of
leases scored by expiry: a slot held by an instance that died frees itself after
STREAM_LEASE_SECONDS.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aiproxy.access.limits import LimiterUnavailable, Limits, LimitState

BUCKETS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mode, delta = ARGV[4], tonumber(ARGV[5])
local function load(key, limit)
  if limit <= 0 then return nil end
  local v = redis.call('HMGET', key, 'l', 't')
  local level, at = tonumber(v[1]), tonumber(v[2])
  if level == nil then return limit end
  return math.min(limit, level + (now - at) * limit / 60)
end
local function save(key, limit, level)
  redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
  redis.call('EXPIRE', key, math.ceil((limit - level) * 60 / limit) + 1)
end
local r, b = load(KEYS[1], rpm), load(KEYS[2], tpm)
local need = 0
if tpm > 0 then need = math.min(tokens, tpm) end
local retry, exceeded = 0, ''
if mode == 'take' then
  if r ~= nil and r < 1 then retry, exceeded = (1 - r) * 60 / rpm, 'requests' end
  if b ~= nil and b < need then
    local wait = (need - b) * 60 / tpm
    if wait > retry then retry, exceeded = wait, 'tokens' end
  end
  if exceeded == '' then
    if r ~= nil then r = r - 1; save(KEYS[1], rpm, r) end
    if b ~= nil then b = b - need; save(KEYS[2], tpm, b) end
  end
elseif mode == 'adjust' and b ~= nil then
  b = math.min(tpm, b - delta)
  save(KEYS[2], tpm, b)
end
local function rem(level) if level == nil then return 0 end return math.max(0, math.floor(level)) end
local function reset(level, limit)
  if level == nil then return 0 end
  return math.floor((limit - level) * 60000 / limit)
end
local ok = 0
if exceeded == '' then ok = 1 end
return {ok, rem(r), reset(r, rpm), rem(b), reset(b, tpm), math.ceil(retry * 1000), exceeded}
"""

STREAM_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return 1
"""


def _state(limits: Limits, reply: list[Any]) -> LimitState:
    ok, rem_r, reset_r, rem_t, reset_t, retry_ms, exceeded = reply
    return LimitState(
        allowed=bool(ok), limits=limits, remaining_requests=int(rem_r), reset_requests=int(reset_r) / 1000,
        remaining_tokens=int(rem_t), reset_tokens=int(reset_t) / 1000, retry_after=int(retry_ms) / 1000,
        exceeded=exceeded.decode() if isinstance(exceeded, bytes) else str(exceeded),
    )


class RedisLimiter:
    def __init__(self, url: str, prefix: str, lease_seconds: float, timeout: float = 0.5) -> None:
        self._redis = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._prefix = prefix
        self._lease = lease_seconds
        self._buckets = self._redis.register_script(BUCKETS_LUA)
        self._stream = self._redis.register_script(STREAM_LUA)

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, shared with the budget counters."""
        return self._redis

    def _keys(self, key_id: str) -> list[str]:
        base = f"{self._prefix}rl:{key_id}"
        return [base + ":r", base + ":t"]

    async def _run(self, key_id: str, limits: Limits, tokens: int, mode: str, delta: int = 0) -> LimitState:
        try:
            reply = await self._buckets(keys=self._keys(key_id),
                                        args=[limits.rpm or 0, limits.tpm or 0, tokens, mode, delta])
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(type(exc).__name__) from None
        return _state(limits, reply)

    async def acquire(self, key_id: str, limits: Limits, tokens: int) -> LimitState:
        return await self._run(key_id, limits, tokens, "take")

    async def peek(self, key_id: str, limits: Limits) -> LimitState:
        return await self._run(key_id, limits, 0, "peek")

    async def adjust(self, key_id: str, limits: Limits, delta_tokens: int) -> None:
        await self._run(key_id, limits, 0, "adjust", delta_tokens)

    async def open_stream(self, key_id: str, limit: int, lease_id: str) -> bool:
        try:
            return bool(await self._stream(keys=[f"{self._prefix}streams:{key_id}"],
                                           args=[limit, lease_id, self._lease]))
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(type(exc).__name__) from None

    async def close_stream(self, key_id: str, lease_id: str) -> None:
        try:
            await self._redis.zrem(f"{self._prefix}streams:{key_id}", lease_id)
        except (RedisError, OSError):
            pass  # the lease expires by itself

    async def set_once(self, name: str, ttl_seconds: int) -> bool:
        """True the first time `name` is set across all instances (alert de-duplication)."""
        try:
            return bool(await self._redis.set(self._prefix + name, b"1", nx=True, ex=max(1, ttl_seconds)))
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        await self._redis.aclose()
