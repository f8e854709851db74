"""Builders for the operational pieces `create_app` wires in: retries and fallbacks of the upstream
client, metric labels, the JSON access log, the X-Upstream-Model header, and what /health/ready
and /metrics read about the ledger and Redis. Nothing here adds itself to an app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from aiproxy.appkeys import METERING_KEY, READY_CHECKS_KEY, QueueProbe
from aiproxy.billing.ledger import PENDING
from aiproxy.billing.pricing import PriceTable
from aiproxy.billing.wiring import Billing
from aiproxy.config import Settings
from aiproxy.observability.metrics import LEDGER_SPOOL, AccessLog, ModelLabels
from aiproxy.providers.modelmap import DEFAULT_MODELS_FILE, ModelMap
from aiproxy.providers.retry import (
    RetryPolicy,
    chains_text,
    fallbacks_from_toml,
    merge_fallbacks,
    parse_fallbacks,
)

log = logging.getLogger("aiproxy")

UPSTREAM_MODEL_HEADER = "X-Upstream-Model"


def load_fallbacks(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Shipped models file, then the operator's MODELS_FILE, then MODEL_FALLBACKS (later wins);
    each chain is logged once."""
    sources = [fallbacks_from_toml(DEFAULT_MODELS_FILE)]
    if settings.models_file is not None:
        sources.append(fallbacks_from_toml(settings.models_file))
    sources.append(parse_fallbacks(settings.model_fallbacks))
    fallbacks = merge_fallbacks(*sources)
    for line in chains_text(fallbacks):
        log.info("model fallback: %s", line)
    return fallbacks


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(retries=settings.upstream_retries, base_delay=settings.upstream_retry_base_delay,
                       max_delay=settings.upstream_retry_max_delay, deadline=settings.upstream_retry_deadline)


async def add_upstream_model_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: which Gemini model answered (differs from the request after a fallback)."""
    metering = request.get(METERING_KEY)
    if metering is not None:
        response.headers[UPSTREAM_MODEL_HEADER] = metering.upstream_model


def model_labels(models: ModelMap, prices: PriceTable, fallbacks: dict[str, tuple[str, ...]]) -> ModelLabels:
    """Metric labels from configuration only: the model map, the price table, the fallbacks."""
    chains = {m for primary, targets in fallbacks.items() for m in (primary, *targets)}
    chains |= {m.partition("/")[2] for m in chains if "/" in m}  # `anthropic/x` is reported as `x`
    return ModelLabels(models.names() | set(prices.models) | chains)


def access_log(settings: Settings) -> AccessLog | None:
    """LOG_FORMAT=json: one structured line per request, written by the metrics middleware."""
    if settings.log_format != "json":
        return None
    from aiproxy.observability.jsonlog import json_access_log

    return json_access_log


def ledger_queue_probe(billing: Billing) -> QueueProbe:
    """For /metrics: rows waiting for their commit, charges pending in the outbox, rows spooled."""
    guard, ledger = billing.ledger_guard, billing.ledger
    commits = getattr(ledger, "_commits", None)  # both backends group-commit through GroupCommit

    async def queue_probe() -> tuple[int | None, int | None]:
        LEDGER_SPOOL.set(guard.depth)
        pending = (await ledger.charge_counts())[PENDING] if billing.settings.credits_enabled else None
        return (commits.depth if commits is not None else None), pending

    return queue_probe


def redis_ping(url: str) -> Any:
    """cleanup_ctx: a small Redis client of its own for /health/ready, so readiness never waits
    behind limiter traffic."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        import redis.asyncio as aioredis

        client = aioredis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        app[READY_CHECKS_KEY]["redis"] = client.ping
        try:
            yield
        finally:
            await client.aclose()

    return ctx
