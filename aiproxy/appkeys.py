"""Typed keys for what the app shares with its handlers (aiohttp AppKey: no string typos)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

if TYPE_CHECKING:
    from aiproxy.billing.credits import CreditGate
    from aiproxy.billing.ledger import Ledger
    from aiproxy.billing.meter import Meter
    from aiproxy.billing.record import Metering
    from aiproxy.config import Settings
    from aiproxy.providers.modelmap import ModelMap
    from aiproxy.providers.registry import Providers

# A check run after validation and before the upstream is called (credits, budgets, limits); it raises
# ProxyError to refuse. Arguments: the request, its metering, the worst-case output tokens.
Preflight = Callable[[web.Request, "Metering", "int | None"], Awaitable[None]]

SETTINGS_KEY: web.AppKey["Settings"] = web.AppKey("settings")
PROVIDERS_KEY: web.AppKey["Providers"] = web.AppKey("providers")  # the upstreams, resolved per model name
MODELS_KEY: web.AppKey["ModelMap"] = web.AppKey("models")
METER_KEY: web.AppKey["Meter"] = web.AppKey("meter")
PREFLIGHT_KEY: web.AppKey[list[Preflight]] = web.AppKey("preflight")
STATE_KEY: web.AppKey[dict[str, Any]] = web.AppKey("state")  # small mutable app state (caches)

# Per-request slots (aiohttp RequestKey: typed, and no clash between modules' names).
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)  # the server's id: keys ledger and charge
CLIENT_REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("client_request_id", str)  # a plain X-Request-ID, if sent
METERING_KEY: web.RequestKey["Metering"] = web.RequestKey("metering")  # set once Gemini may spend tokens
CHAT_REQUEST_KEY: web.RequestKey[Any] = web.RequestKey("chat_request")  # the validated ChatRequest
LEDGER_KEY: web.AppKey["Ledger"] = web.AppKey("ledger")  # usage rows and the charge outbox
CREDITS_KEY: web.AppKey["CreditGate | None"] = web.AppKey("credits")  # None: billing off
