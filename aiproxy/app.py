"""create_app(settings): routes, middlewares, and the resources that live as long as the app."""

from __future__ import annotations

import logging

import aiohttp_cors
from aiohttp import web

from aiproxy.access.setup import setup_access
from aiproxy.api.chat import chat_completions
from aiproxy.api.dashboard import dashboard_routes
from aiproxy.api.embeddings import embeddings
from aiproxy.api.health import health
from aiproxy.api.models import get_model, list_models
from aiproxy.api.usage import usage_handler
from aiproxy.appkeys import METER_KEY, MODELS_KEY, PREFLIGHT_KEY, SETTINGS_KEY, STATE_KEY, UPSTREAM_KEY
from aiproxy.billing.meter import Meter, metering_middleware
from aiproxy.billing.pricing import load_price_table
from aiproxy.billing.reservations import RESERVATIONS_KEY, Reservations
from aiproxy.billing.wiring import install_billing
from aiproxy.config import Settings
from aiproxy.media.fetch import setup_media
from aiproxy.http.middleware import (CLIENT_ID_HEADER, SERVER_ID_HEADER, add_request_id_header, error_middleware,
                                request_id_middleware)
from aiproxy.providers.modelmap import load_model_map
from aiproxy.observability.ops import setup_ops
from aiproxy.providers.gemini.client import GeminiClient

log = logging.getLogger("aiproxy")

def create_app(settings: Settings) -> web.Application:
    meter = Meter(load_price_table(settings.pricing_file))
    reservations = Reservations()  # admission's holds, ended after the meter (see reservations.py)
    meter.hooks.append(reservations.settle)
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, reservations.middleware(), metering_middleware(meter)],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS_KEY] = settings
    app[MODELS_KEY] = load_model_map(settings.models_file)
    app[METER_KEY] = meter
    app[RESERVATIONS_KEY] = reservations
    app[PREFLIGHT_KEY] = []
    app[STATE_KEY] = {}
    app[UPSTREAM_KEY] = GeminiClient(
        settings.gemini_base_url,
        settings.gemini_key or "demo",
        connect_timeout=settings.upstream_connect_timeout,
        first_byte_timeout=settings.upstream_timeout,
        idle_timeout=settings.upstream_idle_timeout,
    )
    app.on_response_prepare.append(add_request_id_header)
    app.cleanup_ctx.append(_upstream_session)
    install_billing(app, settings, meter)
    setup_media(app, settings)
    _add_routes(app, settings)
    setup_access(app, settings)
    setup_ops(app, settings)
    return app


async def _upstream_session(app: web.Application):  # type: ignore[no-untyped-def]
    client = app[UPSTREAM_KEY]
    await client.start()
    yield
    await client.close()


def _add_routes(app: web.Application, settings: Settings) -> None:
    cors = aiohttp_cors.setup(app, defaults={
        origin: aiohttp_cors.ResourceOptions(allow_credentials=settings.cors_allow_credentials,
                                             expose_headers=(CLIENT_ID_HEADER, SERVER_ID_HEADER),
                                             allow_headers="*", allow_methods=["GET", "POST", "OPTIONS"])
        for origin in settings.cors_origins
    })
    routes = [
        ("POST", "/v1/chat/completions", chat_completions),
        ("POST", "/chat/completions", chat_completions),
        ("POST", "/v1/embeddings", embeddings),
        ("POST", "/embeddings", embeddings),
        ("GET", "/v1/models", list_models),
        ("GET", "/models", list_models),
        ("GET", "/v1/models/{model_id}", get_model),
        ("GET", "/models/{model_id}", get_model),
        ("GET", "/health", health),
        ("GET", "/v1/usage", usage_handler),
    ]
    for method, path, handler in routes:
        cors.add(app.router.add_route(method, path, handler))
    for method, path, handler in dashboard_routes():  # same-origin only: no CORS
        app.router.add_route(method, path, handler)
