"""Per-key request and token budgets per minute as token buckets, plus concurrent-stream slots.

A bucket holds up to `limit` units and refills at `limit` per 60 s, which is what OpenAI's
headers describe: `remaining` is the current level, `reset` the time until the bucket is full
again. Requests and tokens are checked together and consumed only when both allow it. Token use
is estimated before the call and corrected after it (`adjust`), so the bucket may go below zero:
a request that used more than estimated delays the next ones, as real usage should.

`MemoryLimiter` is exact for one instance; `limits_redis.RedisLimiter` runs the same arithmetic
in one Lua script so several instances share the counters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

WINDOW = 60.0  # seconds: the "per minute" of rpm/tpm


class LimiterUnavailable(Exception):
    """The shared counter store (Redis) could not be reached; the caller applies
    RATE_LIMIT_REDIS_FAILURE. Defined here so the in-memory path never imports redis."""


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class LimitState:
    """The outcome of a check, and what the x-ratelimit-* headers report."""

    allowed: bool
    limits: Limits
    remaining_requests: int = 0
    reset_requests: float = 0.0  # seconds until the request bucket is full
    remaining_tokens: int = 0
    reset_tokens: float = 0.0
    retry_after: float = 0.0  # seconds until the refused request would fit
    exceeded: str = ""  # "requests" | "tokens" when refused


@dataclass(slots=True)
class Bucket:
    level: float
    at: float

    def refill(self, limit: int, now: float) -> None:
        self.level = min(float(limit), self.level + (now - self.at) * limit / WINDOW)
        self.at = now


def seconds_for(missing: float, limit: int) -> float:
    """Time for a bucket of `limit` per minute to refill `missing` units."""
    return max(0.0, missing) * WINDOW / limit if limit else 0.0


def take(req: Bucket | None, tok: Bucket | None, limits: Limits, tokens: int, now: float,
         consume: bool = True) -> LimitState:
    """The pure check both backends implement: refill, test both buckets, consume if allowed.

    A token estimate larger than the whole bucket is clamped to it, so a big request is delayed
    until the bucket is full instead of being refused forever.
    """
    need_t = min(tokens, limits.tpm) if limits.tpm else 0
    retry, exceeded = 0.0, ""
    if req is not None and limits.rpm:
        req.refill(limits.rpm, now)
        if consume and req.level < 1:
            retry, exceeded = seconds_for(1 - req.level, limits.rpm), "requests"
    if tok is not None and limits.tpm:
        tok.refill(limits.tpm, now)
        if consume and tok.level < need_t:
            wait = seconds_for(need_t - tok.level, limits.tpm)
            if wait > retry:
                retry, exceeded = wait, "tokens"
    allowed = not exceeded
    if allowed and consume:
        if req is not None and limits.rpm:
            req.level -= 1
        if tok is not None and limits.tpm:
            tok.level -= need_t
    return LimitState(
        allowed=allowed, limits=limits,
        remaining_requests=max(0, math.floor(req.level)) if req is not None and limits.rpm else 0,
        reset_requests=seconds_for(limits.rpm - req.level, limits.rpm) if req is not None and limits.rpm else 0.0,
        remaining_tokens=max(0, math.floor(tok.level)) if tok is not None and limits.tpm else 0,
        reset_tokens=seconds_for(limits.tpm - tok.level, limits.tpm) if tok is not None and limits.tpm else 0.0,
        retry_after=retry, exceeded=exceeded,
    )  # fmt: skip


class RateLimiter(Protocol):
    async def acquire(self, key_id: str, limits: Limits, tokens: int) -> LimitState:
        """Count one request of about `tokens` tokens, or refuse it (nothing consumed)."""

    async def peek(self, key_id: str, limits: Limits) -> LimitState:
        """The current state, consuming nothing (headers on responses that are not model calls)."""

    async def adjust(self, key_id: str, limits: Limits, delta_tokens: int) -> None:
        """Charge (or refund, when negative) the difference between real and estimated tokens."""

    async def open_stream(self, key_id: str, limit: int, lease_id: str) -> bool:
        """Take one of `limit` concurrent stream slots; False when all are in use."""

    async def close_stream(self, key_id: str, lease_id: str) -> None: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """Counters in this process: exact for a single instance, lost on restart."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._streams: dict[str, set[str]] = {}

    def _bucket(self, key_id: str, kind: str, limit: int | None) -> Bucket | None:
        if not limit:
            return None
        b = self._buckets.get((key_id, kind))
        if b is None:
            b = self._buckets[(key_id, kind)] = Bucket(float(limit), self._clock())
        return b

    async def acquire(self, key_id: str, limits: Limits, tokens: int) -> LimitState:
        return take(self._bucket(key_id, "r", limits.rpm), self._bucket(key_id, "t", limits.tpm), limits, tokens,
                    self._clock())

    async def peek(self, key_id: str, limits: Limits) -> LimitState:
        return take(self._bucket(key_id, "r", limits.rpm), self._bucket(key_id, "t", limits.tpm), limits, 0,
                    self._clock(), consume=False)

    async def adjust(self, key_id: str, limits: Limits, delta_tokens: int) -> None:
        b = self._bucket(key_id, "t", limits.tpm)
        if b is not None and limits.tpm:
            b.refill(limits.tpm, self._clock())
            b.level = min(float(limits.tpm), b.level - delta_tokens)

    async def open_stream(self, key_id: str, limit: int, lease_id: str) -> bool:
        held = self._streams.setdefault(key_id, set())
        if len(held) >= limit:
            return False
        held.add(lease_id)
        return True

    async def close_stream(self, key_id: str, lease_id: str) -> None:
        held = self._streams.get(key_id)
        if held is not None:
            held.discard(lease_id)
            if not held:
                del self._streams[key_id]

    async def close(self) -> None:
        return None
