"""Prometheus metrics (`GET /metrics`), updated per request and per upstream attempt, never per chunk.

Per request the middleware does a few dict lookups into caches of labelled children (prometheus
client's own `.labels()` takes a lock and builds a tuple each call); tokens, cost and
time-to-first-token come from the meter's hook once the request is priced. With WORKERS>1 the
supervisor points PROMETHEUS_MULTIPROC_DIR at a shared directory before the workers start, and
the handler merges every worker's values, so any worker answers for the whole service.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from aiproxy.appkeys import METERING_KEY, QUEUE_PROBE_KEY
from aiproxy.billing.record import CLIENT_DISCONNECTED, UsageRecord
from aiproxy.providers.base import UpstreamEvents
from aiproxy.providers.router import CircuitEvents

disable_created_metrics()  # the *_created series only double the output; nothing here reads them

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_FIRST_BYTE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)

REQUESTS = Counter("aiproxy_requests_total", "HTTP requests answered, by route, Gemini model and status.",
                   ["route", "model", "status"])
REQUEST_SECONDS = Histogram("aiproxy_request_duration_seconds",
                            "Time from request to last byte (whole stream for streaming).", ["route"],
                            buckets=_LATENCY_BUCKETS)
TTFT_SECONDS = Histogram("aiproxy_time_to_first_token_seconds", "Time from request to the first answer token.",
                         ["model"], buckets=_FIRST_BYTE_BUCKETS)
UPSTREAM_SECONDS = Histogram("aiproxy_upstream_latency_seconds", "Time from sending to Gemini's status line, "
                             "per attempt.", ["model"], buckets=_FIRST_BYTE_BUCKETS)
TOKENS = Counter("aiproxy_tokens_total", "Tokens billed, by Gemini model and kind "
                 "(prompt, completion, reasoning, cached).", ["model", "kind"])
COST = Counter("aiproxy_cost_usd_total", "Cost billed in USD by Gemini model (the ledger keeps exact Decimals).",
               ["model"])
INFLIGHT = Gauge("aiproxy_inflight_requests", "Chat requests being answered right now (streams included).",
                 multiprocess_mode="livesum")
RETRIES = Counter("aiproxy_upstream_retries_total", "Upstream attempts repeated on the same model, by reason.",
                  ["model", "reason"])
FALLBACKS = Counter("aiproxy_model_fallbacks_total", "Requests moved to a fallback model.",
                    ["from_model", "to_model", "reason"])
UPSTREAM_FAILURES = Counter("aiproxy_upstream_failures_total",
                            "Upstream attempts that failed before the first byte, by reason.", ["model", "reason"])
RATE_LIMITED = Counter("aiproxy_rate_limit_rejections_total",
                       "Requests the proxy refused with 429 itself (Gemini's own 429s are upstream failures).",
                       ["route"])
LEDGER_QUEUE = Gauge("aiproxy_ledger_queue_depth", "Usage rows waiting for their ledger commit.",
                     multiprocess_mode="livesum")
LEDGER_SPOOL = Gauge("aiproxy_ledger_spool_rows", "Usage rows in the local spool, waiting for the ledger to "
                     "come back.", multiprocess_mode="livesum")
OUTBOX_PENDING = Gauge("aiproxy_outbox_pending", "Charges waiting in the outbox for the credits service.",
                       multiprocess_mode="max")
CIRCUIT_STATE = Gauge("aiproxy_provider_circuit_state", "Each provider's circuit: 0 closed, 1 half open (a trial "
                      "is let through), 2 open (nothing is sent to it).", ["provider"], multiprocess_mode="max")
ROUTE_CHOICES = Counter("aiproxy_route_choices_total", "Requests for a models-file route, by its strategy and the "
                        "candidate that served (as configured).", ["route", "strategy", "candidate"])
CHARGES_REJECTED = Counter("aiproxy_credits_charges_rejected_total",
                           "Charges the credits service refused for good (a permanent 4xx), by status.", ["status"])

# Set by the upstream events inside the request's task; read by the middleware in the same task.
_upstream_status: contextvars.ContextVar[str | None] = contextvars.ContextVar("upstream_status", default=None)
# The request being handled by this task, for structured logs (jsonlog reads it).
current_request: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar("current_request",
                                                                                     default=None)


class _Children:
    """Cache of labelled children: one dict lookup per update instead of `.labels()`."""

    __slots__ = ("_metric", "_cache")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(*labels)
        return child


_requests = _Children(REQUESTS)
_request_seconds = _Children(REQUEST_SECONDS)
_ttft = _Children(TTFT_SECONDS)
_upstream_seconds = _Children(UPSTREAM_SECONDS)
_tokens = _Children(TOKENS)
_cost = _Children(COST)
_retries = _Children(RETRIES)
_fallbacks = _Children(FALLBACKS)
_upstream_failures = _Children(UPSTREAM_FAILURES)
_rate_limited = _Children(RATE_LIMITED)
_route_choices = _Children(ROUTE_CHOICES)


OTHER_MODEL = "other"


class ModelLabels:
    """The `model` label for a model name: the name when the operator's configuration names it
    (model map aliases and targets, priced models, fallbacks), else `other`. Client-chosen names
    never become label values, so /metrics stays small whatever names clients send."""

    __slots__ = ("_known",)

    def __init__(self, known: Iterable[str]) -> None:
        self._known = frozenset(known)

    def __call__(self, model: str) -> str:
        return model if model in self._known else OTHER_MODEL


class MetricsEvents(UpstreamEvents):
    """The upstream client's attempt events as metrics."""

    def __init__(self, label: ModelLabels) -> None:
        self._label = label

    def latency(self, model: str, seconds: float) -> None:
        _upstream_seconds(self._label(model)).observe(seconds)

    def retry(self, model: str, reason: str) -> None:
        _retries(self._label(model), reason).inc()

    def fallback(self, from_model: str, to_model: str, reason: str) -> None:
        _fallbacks(self._label(from_model), self._label(to_model), reason).inc()

    def failure(self, model: str, reason: str) -> None:
        _upstream_failures(self._label(model), reason).inc()
        _upstream_status.set(reason)


CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class RouterMetrics(CircuitEvents):
    """The router's circuit changes and strategy choices as metrics; labels are configured names
    only (enabled providers, models-file routes and their candidates)."""

    def __init__(self, providers: Iterable[str]) -> None:
        for name in providers:  # every provider's circuit shows, closed, from the start
            CIRCUIT_STATE.labels(name).set(0)

    def circuit(self, provider: str, state: str) -> None:
        CIRCUIT_STATE.labels(provider).set(CIRCUIT_VALUES[state])

    def chosen(self, alias: str, strategy: str, candidate: str) -> None:
        _route_choices(alias, strategy, candidate).inc()


def observe_record(rec: UsageRecord, label: ModelLabels) -> None:
    """Meter hook (bound to the app's labels): tokens, cost and time-to-first-token of one request."""
    model = label(rec.upstream_model)
    _tokens(model, "prompt").inc(rec.prompt_tokens)
    _tokens(model, "completion").inc(rec.completion_tokens)
    if rec.reasoning_tokens:
        _tokens(model, "reasoning").inc(rec.reasoning_tokens)
    if rec.cached_tokens:
        _tokens(model, "cached").inc(rec.cached_tokens)
    _cost(model).inc(float(rec.cost_usd))
    if rec.ttft_ms is not None:
        _ttft(model).observe(rec.ttft_ms / 1000.0)


def route_label(request: web.Request) -> str:
    """The route template (bounded cardinality), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


_CHAT_ROUTES = frozenset({"/v1/chat/completions", "/chat/completions"})

AccessLog = Callable[[web.Request, str, int, float], None]


def metrics_middleware(access_log: AccessLog | None, label: ModelLabels) -> Any:
    """Outermost middleware: it sees the final status of every request, errors included."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        current_request.set(request)
        _upstream_status.set(None)
        route = route_label(request)
        chat = route in _CHAT_ROUTES
        if chat:
            INFLIGHT.inc()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            # The client went away (499, nginx's convention), unless it left only after its
            # whole stream was written and billed (then a later middleware's cleanup was cut).
            metering = request.get(METERING_KEY)
            done = (metering is not None and metering.streamed and metering.finished
                    and metering.status != CLIENT_DISCONNECTED)
            status = 200 if done else 499
            raise
        finally:
            elapsed = time.perf_counter() - started
            if chat:
                INFLIGHT.dec()
            metering = request.get(METERING_KEY)
            model = label(metering.upstream_model) if metering is not None else "-"
            _requests(route, model, str(status)).inc()
            _request_seconds(route).observe(elapsed)
            if status == 429 and _upstream_status.get() != "429":
                _rate_limited(route).inc()
            if access_log is not None:
                access_log(request, route, status, elapsed)

    return middleware


async def metrics_handler(request: web.Request) -> web.Response:
    for probe in request.app[QUEUE_PROBE_KEY]:
        try:
            depth, pending = await probe()
        except Exception:  # noqa: BLE001 - a ledger hiccup must not break the scrape
            continue
        if depth is not None:
            LEDGER_QUEUE.set(depth)
        if pending is not None:
            OUTBOX_PENDING.set(pending)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

