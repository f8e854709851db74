"""The composition root: `create_app(settings)` builds the app and lists, in order, what runs.

Read top to bottom, `create_app` says what happens to a request: the middlewares (outermost
first), the admission steps a model request passes before the upstream is called, what the
meter does with each priced row, the response-header callbacks, the routes, and the resources
that live as long as the app (started in list order, closed in reverse). Every other module
only builds objects and never adds itself to an app, so this file is the one place where order
is decided. A test builds the parts with `build_parts`, swaps one, and passes them in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp_cors
from aiohttp import web

from aiproxy.access.setup import Access, build_access
from aiproxy.api.admission import Admission
from aiproxy.api.chat import chat_completions
from aiproxy.api.dashboard import dashboard_routes
from aiproxy.api.embeddings import embeddings
from aiproxy.api.health import health
from aiproxy.api.models import get_model, list_models
from aiproxy.api.responses import create_response, delete_response, get_response
from aiproxy.api.usage import usage_handler
from aiproxy.appkeys import (
    ACCESS_KEY,
    ADMISSION_KEY,
    CREDITS_KEY,
    LEDGER_GUARD_KEY,
    LEDGER_KEY,
    LIFECYCLE_KEY,
    LISTEN_PORTS_KEY,
    METER_KEY,
    MODELS_KEY,
    PROVIDERS_KEY,
    QUEUE_PROBE_KEY,
    READY_CHECKS_KEY,
    READY_DETAILS_KEY,
    RESERVATIONS_KEY,
    RESPONSE_CACHE_KEY,
    SETTINGS_KEY,
    STATE_KEY,
    ReadyCheck,
)
from aiproxy.billing.meter import Meter, metering_middleware
from aiproxy.billing.pricing import PriceTable, load_price_table
from aiproxy.billing.reservations import Reservations
from aiproxy.billing.wiring import Billing, build_billing
from aiproxy.cache.hit import count_saving
from aiproxy.cache.policy import build_response_cache
from aiproxy.config import Settings
from aiproxy.http.hardening import add_security_headers, hardening_middleware
from aiproxy.http.middleware import (
    CLIENT_ID_HEADER,
    SERVER_ID_HEADER,
    add_request_id_header,
    request_boundary_middleware,
)
from aiproxy.media.fetch import RemoteImageFetcher, build_media_fetcher
from aiproxy.observability import redact
from aiproxy.observability.metrics import (
    MetricsEvents,
    ModelLabels,
    RouterMetrics,
    metrics_handler,
    metrics_middleware,
    observe_record,
)
from aiproxy.observability.ops import (
    access_log,
    add_upstream_model_header,
    ledger_queue_probe,
    load_fallbacks,
    model_labels,
    redis_ping,
    retry_policy,
)
from aiproxy.openai.openapi import openapi_json
from aiproxy.providers.modelmap import ModelMap, load_model_map
from aiproxy.providers.registry import Providers, load_providers
from aiproxy.server.client_guard import (
    ForwardedClients,
    ListenPorts,
    forwarded_client_middleware,
    ops_split_middleware,
)
from aiproxy.server.lifecycle import Lifecycle, readiness


@dataclass
class Parts:
    """What `create_app` wires together, each built from the settings by its own module."""

    prices: PriceTable
    models: ModelMap
    labels: ModelLabels  # the `model` label of metrics: configured model names only
    reservations: Reservations  # admission's holds, ended once (billing/reservations.py)
    billing: Billing  # the ledger behind its guard, the credits service
    access: Access  # client keys, rate limits, budgets
    media: RemoteImageFetcher  # remote images, SSRF-checked
    providers: Providers  # the upstreams (Gemini today), resolved per model name


def build_parts(settings: Settings) -> Parts:
    prices = load_price_table(settings.pricing_file)
    models = load_model_map(settings.models_file)
    fallbacks = load_fallbacks(settings)
    labels = model_labels(models, prices, fallbacks)
    reservations = Reservations()
    billing = build_billing(settings, prices, reservations)
    return Parts(prices, models, labels, reservations, billing,
                 access=build_access(settings, billing.ledger, reservations, prices),
                 media=build_media_fetcher(settings),
                 providers=_providers(settings, models, fallbacks, labels, prices))


def create_app(settings: Settings, parts: Parts | None = None) -> web.Application:
    redact.install(redact.secret_settings(settings))  # process-wide: no log line shows a configured secret
    p = parts or build_parts(settings)
    billing, access = p.billing, p.access
    ports = ListenPorts()  # the server fills in the ops port once its sockets are bound
    forwarded = ForwardedClients(settings.max_connections_per_ip, settings.trusted_networks)
    cache = build_response_cache(settings)  # RESPONSE_CACHE: looked up after admission (api/chat.py)

    # What happens to each priced row (Meter.finish logs the billing line first).
    meter = Meter(p.prices,
                  sinks=[billing.ledger_guard],  # committed, or spooled, before the response's last byte
                  hooks=[p.reservations.settle,  # admission's holds become the real usage
                         billing.nudge_outbox,  # credits: the row's charge is sent now
                         access.count_unbudgeted_spend,  # a user's budgets count their unbudgeted keys too
                         functools.partial(observe_record, label=p.labels),  # tokens, cost, time to first token
                         *([count_saving] if cache.enabled else [])],  # a cache hit's saving, for /metrics
                  cache_hit_price_ratio=settings.cache_hit_price_ratio)  # what a response-cache hit is charged

    # What a chat or embeddings request passes before the upstream is called; a step refuses by
    # raising, and what earlier steps reserved is given back (reservations middleware).
    admission = Admission([
        access.identify,  # the key's user is the billed user
        billing.refuse_while_ledger_down,  # LEDGER_FAIL_POLICY=closed: 503 while rows cannot be recorded
        access.rate_limit,  # concurrent streams, requests and tokens per minute (429)
        access.reserve_budget,  # daily and monthly USD budgets (429 insufficient_quota)
        billing.reserve_credits,  # the credits service's balance (402)
        p.media.fetch_remote_media,  # media size (413), remote images inlined: only once admitted
    ])

    # The TRUSTED_PROXIES guard is not installed without trusted proxies, where it has nothing to
    # do: every layer costs every request a coroutine. (The ops split stays: the server may bind
    # an ops port the settings did not name, e.g. serve(..., ops_port=0).)
    forwarded_guard = [forwarded_client_middleware(forwarded)] if settings.trusted_networks else []
    app = web.Application(
        middlewares=[  # outermost first
            ops_split_middleware(ports),  # OPS_PORT: only ops paths there, and no /metrics on the client port
            *forwarded_guard,  # TRUSTED_PROXIES: in-flight cap per X-Forwarded-For client
            metrics_middleware(access_log(settings), p.labels),  # sees every final status; JSON access log
            request_boundary_middleware,  # the server's request id, then any exception as OpenAI error JSON
            metering_middleware(meter, p.reservations),  # bills a request that reached the upstream, however
            # it ends; then ends the admission holds the meter did not settle
            access.middleware,  # the client key (401/403); frees its stream slot afterwards
            hardening_middleware(settings),  # body size and JSON shape, parsed once
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS_KEY] = settings
    app[MODELS_KEY] = p.models
    app[PROVIDERS_KEY] = p.providers
    app[METER_KEY] = meter
    app[ADMISSION_KEY] = admission
    app[RESERVATIONS_KEY] = p.reservations
    app[LEDGER_KEY] = billing.ledger
    app[LEDGER_GUARD_KEY] = billing.ledger_guard
    app[CREDITS_KEY] = billing.credits
    app[ACCESS_KEY] = access
    app[STATE_KEY] = {}
    app[LIFECYCLE_KEY] = Lifecycle()
    ready_checks: dict[str, ReadyCheck] = {"ledger": billing.ledger_guard.readiness}  # + "redis" while it runs
    ready_details: dict[str, Callable[[], object]] = {"spool": billing.ledger_guard.details}
    app[READY_CHECKS_KEY] = ready_checks
    app[READY_DETAILS_KEY] = ready_details
    app[QUEUE_PROBE_KEY] = [ledger_queue_probe(billing)]
    app[LISTEN_PORTS_KEY] = ports
    app[RESPONSE_CACHE_KEY] = cache

    # Response headers, in this order.
    app.on_response_prepare.append(add_request_id_header)
    cors = _cors(app, settings)  # aiohttp-cors appends its own callback (Access-Control-*) here
    app.on_response_prepare.extend([add_security_headers, access.add_rate_limit_headers, add_upstream_model_header,
                                     *([cache.add_header] if cache.enabled else [])])  # X-Cache: HIT | MISS | BYPASS

    # The OpenAI-compatible API, open to CORS_ALLOWED_ORIGINS.
    for method, path, handler in [
        ("POST", "/v1/chat/completions", chat_completions),
        ("POST", "/chat/completions", chat_completions),
        ("POST", "/v1/embeddings", embeddings),
        ("POST", "/embeddings", embeddings),
        ("POST", "/v1/responses", create_response),
        ("POST", "/responses", create_response),
        ("GET", "/v1/responses/{response_id}", get_response),
        ("DELETE", "/v1/responses/{response_id}", delete_response),
        ("GET", "/v1/models", list_models),
        ("GET", "/models", list_models),
        ("GET", "/v1/models/{model_id}", get_model),
        ("GET", "/models/{model_id}", get_model),
        ("GET", "/health", health),
        ("GET", "/v1/usage", usage_handler),
    ]:
        cors.add(app.router.add_route(method, path, handler))
    # Operator endpoints (GET and HEAD, same origin only).
    for path, operator_handler in [
        ("/openapi.json", openapi_json),
        ("/health/ready", readiness),
        ("/metrics", metrics_handler),
    ]:
        app.router.add_get(path, operator_handler)
    for method, path, dashboard_handler in dashboard_routes():  # the admin dashboard: same origin only, no CORS
        app.router.add_route(method, path, dashboard_handler)

    # Resources that live as long as the app: started in this order, closed in reverse.
    app.cleanup_ctx.extend([
        p.providers.sessions,  # each provider's HTTP session
        billing.lifecycle,  # ledger opened, spool replayed, outbox started; all flushed at the end
        p.media.lifecycle,  # the media fetcher's pooled session
        access.lifecycle,  # key store opened, keys loaded, the open-proxy check
        cache.lifecycle,  # the response cache's store, closed at the end
    ])
    if settings.redis_url:
        app.cleanup_ctx.append(redis_ping(settings.redis_url))  # readiness's own Redis client
    return app


def _providers(settings: Settings, models: ModelMap, fallbacks: dict[str, tuple[str, ...]],
               labels: ModelLabels, prices: PriceTable) -> Providers:
    providers = load_providers(settings, models)
    providers.configure(retry_policy(settings), fallbacks, MetricsEvents(labels))
    providers.router.prices = prices  # `cheapest` routes compare candidates by the price table
    providers.router.circuits.events = RouterMetrics(p.name for p in providers)
    return providers


def _cors(app: web.Application, settings: Settings) -> aiohttp_cors.CorsConfig:
    return aiohttp_cors.setup(app, defaults={
        origin: aiohttp_cors.ResourceOptions(allow_credentials=settings.cors_allow_credentials,
                                             expose_headers=(CLIENT_ID_HEADER, SERVER_ID_HEADER),
                                             allow_headers="*", allow_methods=["GET", "POST", "OPTIONS"])
        for origin in settings.cors_origins
    })
