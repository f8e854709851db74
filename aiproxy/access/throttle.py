"""Rate limits applied to requests: the preflight, OpenAI's x-ratelimit-* headers, and the
after-the-fact token correction (a Meter hook).

Tokens are estimated before the call (the prompt by billing.estimate, media and tools included,
plus the output limit, or RATE_LIMIT_DEFAULT_OUTPUT_TOKENS when the client set none). The
estimate is a reservation (`TokenHold`): the meter replaces it by the real total, and it is
refunded only when the request never reached the upstream, so a client that hangs up still has
its tokens counted. Every response to a rate-limited key carries the headers; responses that are
not model calls report the state without consuming anything.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aiproxy.access.auth import KEY_RECORD
from aiproxy.access.keys import KeyRecord
from aiproxy.access.limits import LimiterUnavailable, Limits, LimitState, RateLimiter
from aiproxy.appkeys import REQUEST_ID_KEY
from aiproxy.billing.estimate import metering_prompt_estimate
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.reservations import Reservations
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.access")

STATE_SLOT: web.RequestKey[Any] = web.RequestKey("ratelimit_state")
LEASE_SLOT: web.RequestKey[Any] = web.RequestKey("stream_lease")
WARN_EVERY = 60.0  # seconds between "Redis unreachable" warnings


def duration(seconds: float) -> str:
    """OpenAI's reset format: 1s, 6m0s, 250ms."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def ratelimit_headers(state: LimitState) -> dict[str, str]:
    headers: dict[str, str] = {}
    if state.limits.rpm:
        headers["x-ratelimit-limit-requests"] = str(state.limits.rpm)
        headers["x-ratelimit-remaining-requests"] = str(state.remaining_requests)
        headers["x-ratelimit-reset-requests"] = duration(state.reset_requests)
    if state.limits.tpm:
        headers["x-ratelimit-limit-tokens"] = str(state.limits.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(state.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = duration(state.reset_tokens)
    return headers


def limits_of(rec: KeyRecord) -> Limits:
    return Limits(rpm=rec.rpm, tpm=rec.tpm)


@dataclass
class TokenHold:
    """A request's tokens-per-minute estimate, taken at admission and ended once."""

    limiter: RateLimiter
    key_id: str
    limits: Limits
    estimate: int

    async def settle(self, rec: UsageRecord) -> None:
        await self._adjust(rec.total_tokens - self.estimate)

    async def release(self) -> None:
        await self._adjust(-self.estimate)

    async def keep(self) -> None:
        return None  # the estimate stays counted

    async def _adjust(self, delta: int) -> None:
        if delta == 0:
            return
        try:
            await self.limiter.adjust(self.key_id, self.limits, delta)
        except LimiterUnavailable:
            pass  # the correction is best effort; the bucket refills anyway


@dataclass
class Throttle:
    limiter: RateLimiter
    fail_closed: bool
    default_output_tokens: int
    reservations: Reservations
    _warned_at: float = float("-inf")

    def _unavailable(self, what: str) -> None:
        """Apply RATE_LIMIT_REDIS_FAILURE: refuse (503, Lotti retries) or let through with a warning."""
        if self.fail_closed:
            raise ProxyError(503, "Rate limiting is temporarily unavailable; please retry.", type="api_error",
                             code="rate_limiter_unavailable", headers={"Retry-After": "1"})
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("rate limiter unreachable (%s); requests pass unlimited (RATE_LIMIT_REDIS_FAILURE=open)", what)

    def estimate(self, metering: Metering, max_out: int | None) -> int:
        return metering_prompt_estimate(metering) + (max_out if max_out is not None else self.default_output_tokens)

    async def preflight(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        rec: KeyRecord | None = request.get(KEY_RECORD)
        if rec is None:
            return
        if rec.max_streams and metering.streamed:
            await self._open_stream(request, rec)
        if not rec.rate_limited:
            return
        limits, tokens = limits_of(rec), self.estimate(metering, max_out)
        try:
            state = await self.limiter.acquire(rec.id, limits, tokens)
        except LimiterUnavailable as exc:
            self._unavailable(str(exc))
            return
        request[STATE_SLOT] = state
        if not state.allowed:
            raise self._refusal(state)
        if limits.tpm:
            self.reservations.add(request, TokenHold(self.limiter, rec.id, limits, min(tokens, limits.tpm)))

    async def _open_stream(self, request: web.Request, rec: KeyRecord) -> None:
        lease = request[REQUEST_ID_KEY] + ":" + secrets.token_hex(8)
        try:
            ok = await self.limiter.open_stream(rec.id, rec.max_streams or 0, lease)
        except LimiterUnavailable as exc:
            self._unavailable(str(exc))
            return
        if not ok:
            raise ProxyError(429, f"Too many concurrent streams for this key (limit {rec.max_streams}); "
                                  "wait for one to finish.", code="concurrent_streams_exceeded",
                             headers={"Retry-After": "1"})
        request[LEASE_SLOT] = (rec.id, lease)

    def _refusal(self, state: LimitState) -> ProxyError:
        kind = state.exceeded or "requests"
        limit = state.limits.rpm if kind == "requests" else state.limits.tpm
        wait = max(1, math.ceil(state.retry_after))
        message = (f"Rate limit reached for {kind} per minute (limit {limit}). "
                   f"Please try again in {duration(state.retry_after)}.")
        headers = {"Retry-After": str(wait), **ratelimit_headers(state)}
        return ProxyError(429, message, code="rate_limit_exceeded", headers=headers)

    @staticmethod
    def holds_stream(request: web.Request) -> bool:
        """Whether this request took a concurrent-stream slot (only keys with a stream limit do)."""
        return request.get(LEASE_SLOT) is not None

    async def close_stream(self, request: web.Request) -> None:
        """After the response: free the request's concurrent-stream slot."""
        lease = request.get(LEASE_SLOT)
        if lease is not None:
            await self.limiter.close_stream(*lease)

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: the x-ratelimit-* headers on every response to a limited key."""
        rec: KeyRecord | None = request.get(KEY_RECORD)
        if rec is None or not rec.rate_limited:
            return
        state: LimitState | None = request.get(STATE_SLOT)
        if state is None:
            try:
                state = await self.limiter.peek(rec.id, limits_of(rec))
            except LimiterUnavailable:
                return
        for name, value in ratelimit_headers(state).items():
            response.headers.setdefault(name, value)
