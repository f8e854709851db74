"""Billing a cache hit: its ledger row is flagged `cache_hit` and carries the tokens the answer
would have cost; the meter charges CACHE_HIT_PRICE_RATIO of that cost and records the rest as
`cache_savings_usd`. The upstream is never called.

A chat or Responses hit is billed by its API's own writer, like a miss (`ReplayStream`,
aiproxy/cache/replay.py); an embeddings hit has no stream and is recorded here.
"""

from __future__ import annotations

import time

from aiohttp import web

from aiproxy.appkeys import METER_KEY, METERING_KEY
from aiproxy.billing.record import OK, Metering, UsageRecord
from aiproxy.cache.policy import SAVED


async def record_hit(request: web.Request, m: Metering) -> None:
    """An embeddings hit's one ledger row, before the answer goes out."""
    m.cache_hit, m.status = True, OK
    m.first_token_at = time.monotonic()
    request[METERING_KEY] = m
    await request.app[METER_KEY].finish(m)


def count_saving(rec: UsageRecord) -> None:
    """Meter hook: what a hit did not cost, for /metrics (the ledger keeps the exact Decimal)."""
    if rec.cache_hit:
        SAVED.inc(float(rec.cache_savings_usd))
