"""Plugs the ledger and the credits service into the app, so app.py needs one call.

- the ledger is the meter's sink, behind its guard: a row is committed (or, while the ledger
  fails, fsynced in the local spool) before the response's last byte;
- it opens at startup (then the spool left by an earlier run is replayed) and, at cleanup
  (graceful shutdown), commits whatever is still pending;
- with LEDGER_FAIL_POLICY=closed, requests are refused with 503 while the ledger is down;
- with CREDITS_SERVICE_URL and CREDITS_SERVICE_API_KEY set: the worst case is reserved against
  the balance before Gemini is called, every priced row enqueues its charge in the same
  transaction, and the outbox worker sends the charges in the background (and resumes pending
  ones at start).
"""

from __future__ import annotations

import logging
from typing import AsyncIterator

from aiohttp import web

from aiproxy.appkeys import CREDITS_KEY, LEDGER_KEY, PREFLIGHT_KEY
from aiproxy.billing.credits import CreditGate, CreditsClient, reserve_credits
from aiproxy.billing.credits_outbox import OutboxWorker
from aiproxy.billing.ledger import open_ledger
from aiproxy.billing.ledger_guard import LEDGER_GUARD_KEY, LedgerGuard
from aiproxy.billing.meter import Meter
from aiproxy.billing.record import UsageRecord
from aiproxy.billing.reservations import RESERVATIONS_KEY
from aiproxy.billing.spool import Spool
from aiproxy.config import Settings

log = logging.getLogger("aiproxy.billing")


def install_billing(app: web.Application, settings: Settings, meter: Meter) -> None:
    ledger = open_ledger(settings.usage_db_url, outbox=settings.credits_enabled)
    app[LEDGER_KEY] = ledger
    guard = LedgerGuard(ledger, Spool(settings.spool_dir), policy=settings.ledger_fail_policy)
    app[LEDGER_GUARD_KEY] = guard
    meter.sinks.append(guard)
    if settings.ledger_fail_policy == "closed":
        app[PREFLIGHT_KEY].append(guard.refuse_while_down)  # before credits, limits and budgets
    app[CREDITS_KEY] = None
    worker: OutboxWorker | None = None
    client: CreditsClient | None = None
    if settings.credits_enabled:
        assert settings.credits_service_url and settings.credits_service_api_key
        client = CreditsClient(
            settings.credits_service_url,
            settings.credits_service_api_key.get_secret_value(),
            timeout=settings.credits_timeout,
        )
        gate = CreditGate(client, ttl=settings.credits_balance_ttl, fail_policy=settings.credits_fail_policy)
        worker = OutboxWorker(ledger, client, max_delay=settings.credits_retry_max_delay)
        app[CREDITS_KEY] = gate
        app[PREFLIGHT_KEY].append(reserve_credits(gate, meter.prices, settings.credits_preflight_max_tokens,
                                                  app[RESERVATIONS_KEY]))

        def after_record(rec: UsageRecord, worker: OutboxWorker = worker) -> None:
            if rec.cost_usd > 0:  # the request's CreditHold lowered the cached balance
                worker.nudge()

        meter.hooks.append(after_record)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await ledger.open()
        log.info("usage ledger open: %s", _redact(settings.usage_db_url))
        await guard.start()
        if worker is not None:
            worker.start()
        yield
        if worker is not None:
            await worker.stop()
        await guard.stop()
        await ledger.close()  # commits rows still pending: nothing metered is dropped on shutdown
        if client is not None:
            await client.close()

    app.cleanup_ctx.append(lifecycle)


def _redact(url: str) -> str:
    """The URL without a password, for the log."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
