"""Budget counters in Redis, shared by every instance: check-and-reserve as one Lua script.

One hash per user and period (`<prefix>budget:<user>:<day|month>:<start date>`) holds `s`
(spent) and `r` (reserved) in nano-USD. A missing hash is seeded from the ledger's spend by the
caller (the script asks for it, then a second call sets it only if still missing, so instances
racing to seed agree) and expires an hour after its period ends. Every instance advances `s` with
the real cost of each finished request; Redis does not re-read the ledger while the hash lives.
Lua numbers are doubles, so counters are exact up to 2^53 nano-USD (about 9 million USD).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aiproxy.access.budget_counters import CountersUnavailable, PeriodBudget, Refusal, SeedFn, to_units

EXPIRE_AFTER_PERIOD = 3600  # seconds a period's counters outlive it (late settles still land)

# KEYS: one hash per period. ARGV: mode, amount (reserve) or reserved (settle), cost (settle),
# then per key i: budget, ttl seconds, seed ('' = ask the caller to read the ledger).
BUDGET_LUA = """
local mode, amount, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if mode == 'settle' then
  local out = {}
  for i, key in ipairs(KEYS) do
    out[i] = -1
    if redis.call('EXISTS', key) == 1 then
      if redis.call('HINCRBY', key, 'r', -amount) < 0 then redis.call('HSET', key, 'r', 0) end
      out[i] = redis.call('HINCRBY', key, 's', cost)
    end
  end
  return out
end
local missing = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    local seed = ARGV[3 * i + 3]
    if seed == '' then
      missing[#missing + 1] = i
    else
      redis.call('HSET', key, 's', seed, 'r', 0)
      redis.call('EXPIRE', key, tonumber(ARGV[3 * i + 2]))
    end
  end
end
if #missing > 0 then return {'seed', unpack(missing)} end
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 's', 'r')
  if tonumber(v[1]) + tonumber(v[2]) + amount > tonumber(ARGV[3 * i + 1]) then return {'over', i, v[1], v[2]} end
end
for _, key in ipairs(KEYS) do redis.call('HINCRBY', key, 'r', amount) end
return {'ok'}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBudgetCounters:
    """Spent/reserved per user and period in Redis; uses the rate limiter's client (one pool)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._script = client.register_script(BUDGET_LUA)

    def _key(self, user: str, p: PeriodBudget) -> str:
        return f"{self._prefix}budget:{user}:{p.period}:{p.start.date().isoformat()}"

    async def _run(self, user: str, periods: list[PeriodBudget], mode: str, amount: int, cost: int,
                   seeds: list[str]) -> list[Any]:
        now = datetime.now(UTC)
        args: list[Any] = [mode, amount, cost]
        for p, seed in zip(periods, seeds, strict=True):
            args += [p.budget, math.ceil((p.end - now).total_seconds()) + EXPIRE_AFTER_PERIOD, seed]
        try:
            return list(await self._script(keys=[self._key(user, p) for p in periods], args=args))
        except (RedisError, OSError) as exc:
            raise CountersUnavailable(type(exc).__name__) from None

    async def reserve(self, user: str, periods: list[PeriodBudget], amount: int, seed: SeedFn) -> Refusal | None:
        seeds = [""] * len(periods)
        for _ in range(3):  # ask, seed what is missing, ask again (a hash could expire meanwhile)
            reply = await self._run(user, periods, "reserve", amount, 0, seeds)
            tag = _text(reply[0])
            if tag == "ok":
                return None
            if tag == "over":
                return Refusal(periods[int(reply[1]) - 1], int(_text(reply[2])), int(_text(reply[3])))
            for i in reply[1:]:
                p = periods[int(i) - 1]
                seeds[int(i) - 1] = str(to_units(await seed(user, p.start)))
        raise CountersUnavailable("budget counters could not be seeded")

    async def settle(self, user: str, periods: list[PeriodBudget], reserved: int, cost: int) -> list[int | None]:
        reply = await self._run(user, periods, "settle", reserved, cost, [""] * len(periods))
        return [None if int(v) < 0 else int(v) for v in reply]

    async def close(self) -> None:
        return None  # the client belongs to the rate limiter, which closes it
