"""The charge outbox worker: sends each request's charge to the credits service exactly once.

Charges are rows in the ledger (enqueued in the same transaction as their usage row), so none is
lost to a crash, a restart or an outage. The worker leases due rows, posts each with its request
id as `Idempotency-Key`, and records the outcome: acknowledged -> `sent` (never posted again);
402/404 -> `unpaid` (an operator's matter, not retried); any other 4xx but 401/403/408/409/425/429 ->
`rejected` (final: logged and counted in `aiproxy_credits_charges_rejected_total`); timeouts,
connection errors, 5xx, transient 4xx and other surprises -> retried with capped exponential
backoff. A charge whose acknowledgement was lost (crash after the post) is posted again after
its lease; the service's idempotency makes that a no-op, not a second charge.

Each claim stamps a lease token on the charges it takes, and an outcome is stored only while the
token is still the row's: a worker that outlived its lease (a stalled post, a paused process)
finds the charge claimed again by another and writes nothing, instead of overwriting the newer
worker's outcome.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from aiproxy.backoff import backoff_delay
from aiproxy.billing.credits import CreditsClient, CreditsRejected, CreditsUnavailable
from aiproxy.billing.ledger import PENDING, REJECTED, SENT, UNPAID, Charge, Ledger
from aiproxy.observability.metrics import CHARGES_REJECTED

log = logging.getLogger("aiproxy.credits")


class OutboxWorker:
    def __init__(
        self,
        ledger: Ledger,
        client: CreditsClient,
        *,
        poll_interval: float = 1.0,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 50,
        concurrency: int = 8,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.poll_interval = poll_interval
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = lease
        self.batch = batch
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Run in the background; charges left pending by an earlier run are due at once."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="credits-outbox")

    def nudge(self) -> None:
        """A charge was just enqueued: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop sending; what is still pending stays in the outbox for the next start. A pass
        under way may finish (its posts are bounded by the client timeout), so no leased charge
        is left waiting out its lease; only past `timeout` is it cancelled."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:  # a ledger hiccup must not end billing for good (logged with its traceback)
                log.exception("credits outbox pass failed; retrying")
                handled = 0
            if handled >= self.batch or self._stopping:
                continue  # more may be due right away (or: stop now)
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Send every charge due now (one leased batch); return how many were attempted."""
        due = await self.ledger.claim_charges(datetime.now(UTC), self.lease, self.batch)
        await asyncio.gather(*(self._send(c) for c in due))
        return len(due)

    async def _send(self, charge: Charge) -> None:
        async with self._sem:
            attempts = charge.attempts + 1
            try:
                outcome = await self.client.bill(
                    charge.user, charge.amount, charge.description, idempotency_key=charge.request_id
                )
            except CreditsUnavailable as exc:
                # equal jitter: [50%, 100%] of the step, so instances recovering together spread out
                delay = backoff_delay(attempts - 1, self.base_delay, self.max_delay, jitter="equal")
                log.warning("charge %s not sent (%s); retry %d in %.1fs", charge.request_id, exc, attempts, delay)
                await self._store(charge, PENDING, attempts, datetime.now(UTC) + timedelta(seconds=delay), str(exc))
                return
            except CreditsRejected as exc:
                log.error("charge %s of $%s for %s is REJECTED by the credits service (%s); not retried",
                          charge.request_id, charge.amount, charge.user, exc)
                CHARGES_REJECTED.labels(str(exc.status)).inc()
                await self._store(charge, REJECTED, attempts, None, str(exc))
                return
            if outcome == "charged":
                await self._store(charge, SENT, attempts, None, None)
                return
            reason = "insufficient balance (402)" if outcome == "insufficient" else "unknown user (404)"
            log.warning("charge %s of $%s for %s is UNPAID: %s", charge.request_id, charge.amount, charge.user, reason)
            await self._store(charge, UNPAID, attempts, None, reason)

    async def _store(self, charge: Charge, state: str, attempts: int, next_attempt_at: datetime | None,
                     error: str | None) -> None:
        """Record an outcome, unless the lease was lost: then the newer claim's outcome stands."""
        stored = await self.ledger.update_charge(
            charge, state=state, attempts=attempts, next_attempt_at=next_attempt_at, error=error)
        if not stored:
            log.warning("charge %s: lease lost to another worker; outcome %r not stored", charge.request_id, state)
