"""build_billing(settings, prices, reservations) -> Billing: the ledger and the credits service.

- the ledger sits behind its guard (`Billing.ledger_guard`, the meter's sink): a row is
  committed (or, while the ledger fails, fsynced in the local spool) before the response's last
  byte;
- `lifecycle` opens it at startup (then the spool left by an earlier run is replayed) and, at
  cleanup (graceful shutdown), commits whatever is still pending;
- with LEDGER_FAIL_POLICY=closed, `refuse_while_ledger_down` refuses requests with 503 while the
  ledger is down;
- with CREDITS_SERVICE_URL and CREDITS_SERVICE_API_KEY set: `reserve_credits` reserves the
  worst case against the balance before the upstream is called, every priced row enqueues its
  charge in the same transaction, and the outbox worker sends the charges in the background
  (`nudge_outbox`, a meter hook) and resumes pending ones at start.

Steps and hooks for a feature that is off do nothing, so `create_app` lists them unconditionally.
Nothing here adds itself to an app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from aiproxy.appkeys import AdmissionStep
from aiproxy.billing.credits import CreditGate, CreditsClient, reserve_credits
from aiproxy.billing.credits_outbox import OutboxWorker
from aiproxy.billing.ledger import Ledger, open_ledger
from aiproxy.billing.ledger_guard import LedgerGuard
from aiproxy.billing.pricing import PriceTable
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.reservations import Reservations
from aiproxy.billing.spool import Spool
from aiproxy.config import Settings

log = logging.getLogger("aiproxy.billing")


@dataclass
class Billing:
    settings: Settings
    ledger: Ledger
    ledger_guard: LedgerGuard
    credits: CreditGate | None = None  # None: no credits service configured
    credits_client: CreditsClient | None = None
    outbox: OutboxWorker | None = None
    _reserve_credits: AdmissionStep | None = None  # credits.reserve_credits, when credits are on

    # -- admission steps -----------------------------------------------------------------------
    async def refuse_while_ledger_down(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        """LEDGER_FAIL_POLICY=closed: 503 before any upstream call while usage cannot be recorded."""
        if self.settings.ledger_fail_policy == "closed":
            await self.ledger_guard.refuse_while_down(request, metering, max_out)

    async def reserve_credits(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        """The worst case reserved against the user's credits balance (402 when it is short)."""
        if self._reserve_credits is not None:
            await self._reserve_credits(request, metering, max_out)

    # -- the meter hook ------------------------------------------------------------------------
    def nudge_outbox(self, rec: UsageRecord) -> None:
        """A priced row enqueued its charge: wake the outbox worker to send it now."""
        if self.outbox is not None and rec.cost_usd > 0:  # the request's CreditHold lowered the cached balance
            self.outbox.nudge()

    # -- cleanup_ctx ---------------------------------------------------------------------------
    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        await self.ledger.open()
        log.info("usage ledger open: %s", _redact(self.settings.usage_db_url))
        await self.ledger_guard.start()
        if self.outbox is not None:
            self.outbox.start()
        yield
        if self.outbox is not None:
            await self.outbox.stop()
        await self.ledger_guard.stop()
        await self.ledger.close()  # commits rows still pending: nothing metered is dropped on shutdown
        if self.credits_client is not None:
            await self.credits_client.close()


def build_billing(settings: Settings, prices: PriceTable, reservations: Reservations) -> Billing:
    """Credits holds are filed in `reservations`, priced with `prices`."""
    ledger = open_ledger(settings.usage_db_url, outbox=settings.credits_enabled)
    guard = LedgerGuard(ledger, Spool(settings.spool_dir), policy=settings.ledger_fail_policy)
    billing = Billing(settings, ledger, guard)
    if settings.credits_enabled:
        assert settings.credits_service_url and settings.credits_service_api_key
        client = CreditsClient(
            settings.credits_service_url,
            settings.credits_service_api_key.get_secret_value(),
            timeout=settings.credits_timeout,
        )
        gate = CreditGate(client, ttl=settings.credits_balance_ttl, fail_policy=settings.credits_fail_policy)
        billing.credits, billing.credits_client = gate, client
        billing.outbox = OutboxWorker(ledger, client, max_delay=settings.credits_retry_max_delay)
        billing._reserve_credits = reserve_credits(gate, prices, settings.credits_preflight_max_tokens, reservations)
    return billing


def _redact(url: str) -> str:
    """The URL without a password, for the log."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
