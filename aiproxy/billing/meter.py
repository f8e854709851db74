"""The on-finish meter: prices each request once, logs the billing line, hands the row on.

Handlers call `Meter.finish` before their last byte so a completed response is always recorded
first; the middleware calls it again in `finally` for every other ending (client gone, upstream
failure). `Metering.finished` makes the second call a no-op, so no request is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from aiproxy.appkeys import METERING_KEY
from aiproxy.billing.estimate import estimate_text_tokens, metering_prompt_estimate
from aiproxy.billing.pricing import PriceTable, format_usd
from aiproxy.billing.record import Metering, UsageRecord

if TYPE_CHECKING:
    from aiproxy.billing.reservations import Reservations
    from aiproxy.providers.base import UsageCounts

log = logging.getLogger("aiproxy.billing")

BILLING_FORMAT = ("💰 BILLING | User: %s | Model: %s | Tokens: %d input + %d output = %d total | "
                  "Cost: $%s USD | Request ID: %s")


class UsageSink(Protocol):
    async def record(self, rec: UsageRecord) -> None: ...


def apply_usage(m: Metering, counts: UsageCounts | None, complete: bool) -> None:
    """Copy the provider's usage counts into the metering; estimate what a cut-off stream lacks.

    Counts the upstream got wrong (negative, huge, not numbers) arrive clamped by the provider
    with `problems` named; the row is then flagged estimated, never trusted as reported."""
    if counts is not None:
        m.prompt_tokens, m.completion_tokens, m.total_tokens = counts.prompt, counts.completion, counts.total
        m.reasoning_tokens, m.cached_tokens = counts.reasoning, counts.cached
        m.audio_prompt_tokens, m.cached_audio_tokens = counts.audio, counts.cached_audio
        m.cache_write_tokens, m.cache_write_1h_tokens = counts.cache_write, counts.cache_write_1h
        if counts.problems:
            log.warning("upstream usage for request %s had invalid counts (%s); clamped and flagged estimated",
                        m.request_id, ", ".join(counts.problems))
    if complete and counts is not None and not counts.problems:
        m.reported = True
        return
    # Cut off before the upstream's final counts, or counts not to be trusted: keep what is known,
    # estimate the rest.
    if m.prompt_tokens == 0:
        m.prompt_tokens = metering_prompt_estimate(m)
    m.completion_tokens = max(m.completion_tokens, estimate_text_tokens(m.output_chars) + m.reasoning_tokens)
    m.total_tokens = m.prompt_tokens + m.completion_tokens
    m.reported = False


UsageHook = Callable[[UsageRecord], "Awaitable[None] | None"]


class Meter:
    """`finish` logs the billing line, then hands the row to each sink (shielded, a failing one
    logged and skipped), then calls each hook, in list order."""

    def __init__(self, prices: PriceTable, sinks: list[UsageSink] | None = None,
                 hooks: list[UsageHook] | None = None, cache_hit_price_ratio: Decimal = Decimal(0)) -> None:
        self.prices = prices
        self.cache_hit_price_ratio = cache_hit_price_ratio  # a cache hit is charged this share of its cost
        self.sinks: list[UsageSink] = sinks or []
        self.hooks: list[UsageHook] = hooks or []

    def to_record(self, m: Metering) -> UsageRecord:
        price, fallback = self.prices.price_for(m.upstream_model)
        cost = price.cost(m.prompt_tokens, m.completion_tokens, m.cached_tokens, m.audio_prompt_tokens,
                          m.cached_audio_tokens, m.cache_write_tokens, m.cache_write_1h_tokens)
        full, saved = cost, Decimal(0)
        if m.cache_hit:  # nothing was spent upstream: the user pays the configured share
            cost = full * self.cache_hit_price_ratio
            saved = full - cost
        now = _now()
        return UsageRecord(
            request_id=m.request_id, user=m.user, key_id=m.key_id, requested_model=m.requested_model,
            upstream_model=m.upstream_model, endpoint=m.endpoint, streamed=m.streamed,
            prompt_tokens=m.prompt_tokens, completion_tokens=m.completion_tokens,
            reasoning_tokens=m.reasoning_tokens, cached_tokens=m.cached_tokens,
            total_tokens=m.prompt_tokens + m.completion_tokens, cost_usd=cost, status=m.status,
            estimated=not m.reported, price_fallback=fallback,
            started_at=datetime.fromtimestamp(m.started_wall, UTC),
            duration_ms=(now - m.started) * 1000.0,
            ttft_ms=(m.first_token_at - m.started) * 1000.0 if m.first_token_at is not None else None,
            end_user=m.end_user, audio_tokens=m.audio_prompt_tokens, client_request_id=m.client_request_id,
            provider=m.provider, cache_hit=m.cache_hit, cache_savings_usd=saved,
        )

    async def finish(self, m: Metering) -> UsageRecord | None:
        """Price, log and record `m` exactly once; later calls return None."""
        if m.finished:
            return None
        m.finished = True
        rec = self.to_record(m)
        if rec.price_fallback:
            log.warning("no price for model %s; billed at the fallback price", rec.upstream_model)
        log.info(BILLING_FORMAT, rec.user, rec.requested_model, rec.prompt_tokens, rec.completion_tokens,
                 rec.total_tokens, format_usd(rec.cost_usd), rec.request_id)
        for sink in self.sinks:
            try:
                # Shielded: a client that leaves must not cancel the write of its own bill.
                await asyncio.shield(sink.record(rec))
            except Exception:  # a failing sink must not break the response or the others (logged)
                log.exception("usage sink %s failed for request %s", type(sink).__name__, rec.request_id)
        for hook in self.hooks:
            result = hook(rec)
            if result is not None:
                await result
        return rec


def _now() -> float:
    return time.monotonic()


def metering_middleware(meter: Meter, reservations: Reservations | None = None) -> Any:
    """Bills a request that reached the upstream, however it ends (a handler that finished it
    already is not billed twice); then ends the admission holds the meter did not settle. One
    layer, in that order: a client that hangs up cannot get its holds back before its usage is
    counted (billing/reservations.py)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            try:
                m: Metering | None = request.get(METERING_KEY)
                if m is not None and not m.finished:
                    await meter.finish(m)
            finally:
                if reservations is not None and reservations.holds(request):
                    await asyncio.shield(reservations.end_unmetered(request))

    return middleware
