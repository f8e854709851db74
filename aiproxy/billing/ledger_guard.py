"""Keeps billing exact while the ledger fails: retry, spool, replay, and tell operators.

The meter hands each row to `LedgerGuard.record`, which never raises: the row goes to the ledger
(whose group commit already retried and isolated bad rows), or, when the ledger cannot take it in
time, to the durable local spool. While the ledger is known down, rows go straight to the spool so
clients are not slowed by a dead database. A background task replays the spool through the same
write path (usage row and outbox charge in one transaction) as soon as the ledger answers again,
and at start for files left by an earlier run.

LEDGER_FAIL_POLICY: `open` (default) keeps serving and spooling; readiness stays 200 with the
ledger reported `degraded`, so one database blip does not pull every instance out of the load
balancer. `closed` refuses new requests with 503 (before any upstream call) while the ledger is
known down, and readiness answers 503 so balancers route elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from aiproxy.backoff import RetryPolicy
from aiproxy.billing.ledger import Ledger, is_row_fault
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.spool import Spool, dump_record
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.billing")

# Longest a request waits for its ledger commit before its row is spooled instead; the commit
# may still land later, which replay then skips as a duplicate.
WRITE_TIMEOUT = 5.0
# Pause between replay attempts while the ledger stays down: full jitter, capped.
REPLAY_BACKOFF = RetryPolicy(base_delay=0.5, max_delay=5.0)
PING_TIMEOUT = 1.5
RETRY_AFTER_SECONDS = 5


class LedgerGuard:
    def __init__(
        self,
        ledger: Ledger,
        spool: Spool,
        *,
        policy: str = "open",
        write_timeout: float = WRITE_TIMEOUT,
        replay_backoff: RetryPolicy = REPLAY_BACKOFF,
    ) -> None:
        self.ledger = ledger
        self.spool = spool
        self.policy = policy
        self.write_timeout = write_timeout
        self.replay_backoff = replay_backoff
        self.down = False  # the ledger failed a write or a ping, and has not taken one since
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Rows waiting in the spool."""
        return self.spool.depth

    # -- the meter's sink ----------------------------------------------------------------------
    async def record(self, rec: UsageRecord) -> None:
        """Return once `rec` is committed to the ledger or fsynced in the spool; never raises."""
        failure: Exception | None = None
        if not self.down:
            try:
                # A timeout withdraws only the wait: the ledger keeps the submitted row and may
                # still commit it, which replay then skips as a duplicate.
                async with asyncio.timeout(self.write_timeout):
                    await self.ledger.record(rec)
                return
            except Exception as exc:  # noqa: BLE001 - any failure: the row goes to the spool
                failure = exc
        try:
            await self.spool.append(rec)
        except Exception as exc:  # noqa: BLE001 - last resort: the row itself goes to the log
            log.critical("usage row of request %s could be written neither to the ledger nor to the spool "
                         "(%s: %s); the row: %s", rec.request_id, type(exc).__name__, exc,
                         dump_record(rec).decode().strip())
        # Only now (the row is in the spool) may the replayer look: its first successful replay
        # is what tells the ledger is back.
        if failure is not None and is_row_fault(failure):
            log.error("the ledger refused the row of request %s (%s: %s); spooled for review",
                      rec.request_id, type(failure).__name__, failure)
        elif failure is not None:
            self.mark_down(failure)
        self._wake.set()

    def mark_down(self, reason: object) -> None:
        if not self.down:
            log.error("usage ledger unavailable (%s); rows are spooled to %s and replayed when it is back",
                      _describe(reason), self.spool.directory)
        self.down = True
        self._wake.set()

    # -- admission (LEDGER_FAIL_POLICY=closed) -------------------------------------------------
    async def refuse_while_down(self, request: web.Request, metering: Metering, max_tokens: int | None) -> None:
        """Pre-flight check: 503 before any upstream call while usage cannot be recorded."""
        if self.down:
            raise ProxyError(503, "Usage cannot be recorded right now, so the request was not sent; "
                             "please retry shortly.", type="api_error", code="ledger_unavailable",
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    # -- readiness -----------------------------------------------------------------------------
    async def readiness(self) -> str:
        """`ok`; or, with the ledger down, `degraded` (policy open: still serving) / `down`."""
        if not self.down and not await self._ping():
            self.mark_down("ping failed")
        if not self.down:
            return "ok"
        return "degraded" if self.policy == "open" else "down"

    def details(self) -> dict[str, Any]:
        """For the readiness body: rows waiting in the spool, whether the ledger is down, the policy."""
        return {"rows": self.depth, "ledger": "down" if self.down else "up", "policy": self.policy}

    async def _ping(self) -> bool:
        try:
            return await asyncio.wait_for(self.ledger.ping(), PING_TIMEOUT)
        except Exception:  # noqa: BLE001 - unreachable is an answer
            return False

    # -- replay --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Count what earlier runs left in the spool and start replaying it (and what comes)."""
        if await self.spool.scan():
            log.warning("%d usage rows left in the spool by an earlier run; replaying them", self.depth)
        self._task = asyncio.create_task(self._replay_loop(), name="ledger-spool-replay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.spool.close()
        if self.depth:
            log.warning("%d usage rows stay in the spool %s; the next start replays them",
                        self.depth, self.spool.directory)

    async def replay_once(self) -> int:
        """One pass over the spool; clears `down` once the ledger takes rows (or answers a ping
        with nothing to replay). Returns the rows replayed."""
        try:
            replayed = await self.spool.replay(self._write_rows)
        except Exception as exc:  # noqa: BLE001 - still down: try again later
            self.mark_down(exc)
            return 0
        if self.down and (replayed or (not self.depth and await self._ping())):
            self.down = False
            log.warning("usage ledger is back; %d spooled rows replayed, %d still waiting", replayed, self.depth)
        elif replayed:
            log.info("%d spooled usage rows replayed into the ledger", replayed)
        return replayed

    async def _write_rows(self, recs: list[UsageRecord]) -> list[BaseException | None]:
        """The ledger's own write path (group commit, outbox charge), one outcome per row."""
        results = await asyncio.gather(*(self.ledger.record(r) for r in recs), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _replay_loop(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            if not self.down and not self.depth:
                await self._wake.wait()
                continue
            if await self.replay_once():
                failures = 0
                continue
            await asyncio.sleep(max(0.05, self.replay_backoff.delay(min(failures, 16), None)))
            failures += 1


def _describe(reason: object) -> str:
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)

