"""setup_ops(app, settings): retries and fallbacks, readiness and lifecycle, metrics, JSON access log.

One entry point so `create_app` needs one line for all of issue 7's wiring.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, AsyncIterator

from aiohttp import web

from aiproxy.appkeys import LEDGER_KEY, METERING_KEY, METER_KEY, MODELS_KEY, PROVIDERS_KEY
from aiproxy.billing.ledger import PENDING
from aiproxy.billing.ledger_guard import LEDGER_GUARD_KEY
from aiproxy.config import Settings
from aiproxy.server.lifecycle import READY_CHECKS_KEY, READY_DETAILS_KEY, setup_lifecycle
from aiproxy.observability.metrics import LEDGER_SPOOL, QUEUE_PROBE_KEY, MetricsEvents, ModelLabels, observe_record, setup_metrics
from aiproxy.providers.modelmap import DEFAULT_MODELS_FILE
from aiproxy.providers.retry import RetryPolicy, chains_text, fallbacks_from_toml, merge_fallbacks, parse_fallbacks

log = logging.getLogger("aiproxy")

UPSTREAM_MODEL_HEADER = "X-Upstream-Model"


def load_fallbacks(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Shipped models file, then the operator's MODELS_FILE, then MODEL_FALLBACKS (later wins)."""
    sources = [fallbacks_from_toml(DEFAULT_MODELS_FILE)]
    if settings.models_file is not None:
        sources.append(fallbacks_from_toml(settings.models_file))
    sources.append(parse_fallbacks(settings.model_fallbacks))
    return merge_fallbacks(*sources)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(retries=settings.upstream_retries, base_delay=settings.upstream_retry_base_delay,
                       max_delay=settings.upstream_retry_max_delay, deadline=settings.upstream_retry_deadline)


async def add_upstream_model_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: which Gemini model answered (differs from the request after a fallback)."""
    metering = request.get(METERING_KEY)
    if metering is not None:
        response.headers[UPSTREAM_MODEL_HEADER] = metering.upstream_model


def model_labels(app: web.Application, fallbacks: dict[str, tuple[str, ...]]) -> ModelLabels:
    """Metric labels from configuration only: the model map, the price table, the fallbacks."""
    chains = {m for primary, targets in fallbacks.items() for m in (primary, *targets)}
    return ModelLabels(app[MODELS_KEY].names() | set(app[METER_KEY].prices.models) | chains)


def setup_ops(app: web.Application, settings: Settings) -> None:
    fallbacks = load_fallbacks(settings)
    labels = model_labels(app, fallbacks)
    app[PROVIDERS_KEY].configure(retry_policy(settings), fallbacks, MetricsEvents(labels))
    for line in chains_text(fallbacks):
        log.info("model fallback: %s", line)
    app.on_response_prepare.append(add_upstream_model_header)
    app[METER_KEY].hooks.append(functools.partial(observe_record, label=labels))
    setup_lifecycle(app)
    access_log = None
    if settings.log_format == "json":
        from aiproxy.observability.jsonlog import json_access_log

        access_log = json_access_log
    setup_metrics(app, access_log, labels)
    _watch_dependencies(app, settings)


def _watch_dependencies(app: web.Application, settings: Settings) -> None:
    """Readiness checks and queue gauges for the ledger and Redis, when the app has them."""
    ledger = app.get(LEDGER_KEY)
    guard = app.get(LEDGER_GUARD_KEY)
    if ledger is not None:
        app[READY_CHECKS_KEY]["ledger"] = guard.readiness if guard is not None else ledger.ping
        if guard is not None:
            app[READY_DETAILS_KEY]["spool"] = guard.details
        commits = getattr(ledger, "_commits", None)  # both backends group-commit through GroupCommit

        async def queue_probe() -> tuple[int | None, int | None]:
            if guard is not None:
                LEDGER_SPOOL.set(guard.depth)
            pending = (await ledger.charge_counts())[PENDING] if settings.credits_enabled else None
            return (commits.depth if commits is not None else None), pending

        app[QUEUE_PROBE_KEY].append(queue_probe)
    if settings.redis_url:
        app.cleanup_ctx.append(_redis_ping(settings.redis_url))


def _redis_ping(url: str) -> Any:
    """A small client of its own for /health/ready, so readiness never waits behind limiter traffic."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        import redis.asyncio as aioredis

        client = aioredis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        app[READY_CHECKS_KEY]["redis"] = client.ping
        try:
            yield
        finally:
            await client.aclose()

    return ctx
