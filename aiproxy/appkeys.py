"""Typed keys for what the app shares with its handlers (aiohttp AppKey: no string typos).

Every app-wide key is set in one place, `aiproxy.app.create_app`; handlers and middlewares only
read them. The per-request keys at the bottom are filled while a request is handled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from aiproxy.access.setup import Access
    from aiproxy.api.admission import Admission
    from aiproxy.billing.credits import CreditGate
    from aiproxy.billing.ledger import Ledger
    from aiproxy.billing.ledger_guard import LedgerGuard
    from aiproxy.billing.meter import Meter
    from aiproxy.billing.record import Metering
    from aiproxy.billing.reservations import Reservations
    from aiproxy.cache.policy import ResponseCache
    from aiproxy.config import Settings
    from aiproxy.providers.modelmap import ModelMap
    from aiproxy.providers.registry import Providers
    from aiproxy.server.client_guard import ListenPorts
    from aiproxy.server.lifecycle import Lifecycle

# One admission step, run after validation and before the upstream is called (identity, limits,
# budgets, credits, media); it raises ProxyError to refuse. Arguments: the request, its metering,
# the worst-case output tokens (None: the client set no limit).
AdmissionStep = Callable[[web.Request, "Metering", "int | None"], Awaitable[None]]
# A readiness check answers True (ok), False (unreachable), or a state of its own (see server.lifecycle).
ReadyCheck = Callable[[], Awaitable["bool | str"]]
# Called at scrape time: returns (ledger queue depth, outbox pending), None where unknown.
QueueProbe = Callable[[], Awaitable["tuple[int | None, int | None]"]]

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings")
PROVIDERS_KEY: web.AppKey[Providers] = web.AppKey("providers")  # the upstreams, resolved per model name
MODELS_KEY: web.AppKey[ModelMap] = web.AppKey("models")
METER_KEY: web.AppKey[Meter] = web.AppKey("meter")
ADMISSION_KEY: web.AppKey[Admission] = web.AppKey("admission")  # the ordered admission steps
STATE_KEY: web.AppKey[dict[str, Any]] = web.AppKey("state")  # small mutable app state (caches)
LEDGER_KEY: web.AppKey[Ledger] = web.AppKey("ledger")  # usage rows and the charge outbox
LEDGER_GUARD_KEY: web.AppKey[LedgerGuard] = web.AppKey("ledger_guard")  # the ledger's retry/spool guard
CREDITS_KEY: web.AppKey[CreditGate | None] = web.AppKey("credits")  # None: billing off
RESERVATIONS_KEY: web.AppKey[Reservations] = web.AppKey("reservations")  # admission's holds in flight
ACCESS_KEY: web.AppKey[Access] = web.AppKey("access")  # keys, rate limits, budgets
LIFECYCLE_KEY: web.AppKey[Lifecycle] = web.AppKey("lifecycle")  # draining or not
READY_CHECKS_KEY: web.AppKey[dict[str, ReadyCheck]] = web.AppKey("ready_checks")  # /health/ready, by name
READY_DETAILS_KEY: web.AppKey[dict[str, Callable[[], object]]] = web.AppKey("ready_details")  # extra body fields
QUEUE_PROBE_KEY: web.AppKey[list[QueueProbe]] = web.AppKey("queue_probe")  # /metrics gauges read at scrape
LISTEN_PORTS_KEY: web.AppKey[ListenPorts] = web.AppKey("listen_ports")  # filled once the sockets are bound
RESPONSE_CACHE_KEY: web.AppKey[ResponseCache] = web.AppKey("response_cache")  # RESPONSE_CACHE (aiproxy/cache)

# Per-request slots (aiohttp RequestKey: typed, and no clash between modules' names).
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)  # the server's id: keys ledger and charge
CLIENT_REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("client_request_id", str)  # a plain X-Request-ID, if sent
METERING_KEY: web.RequestKey[Metering] = web.RequestKey("metering")  # set once Gemini may spend tokens
CHAT_REQUEST_KEY: web.RequestKey[Any] = web.RequestKey("chat_request")  # the validated ChatRequest
