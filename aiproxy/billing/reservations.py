"""Per-request reservations taken at admission and ended exactly once, whatever finishes first.

Admission steps (tokens per minute, budgets, credits) reserve a request's estimate or worst case
before the upstream is called, so concurrent requests see each other. Each reservation is a
`Hold` filed under the request; it ends exactly once:

- the meter records the request → `settle(rec)`: the hold becomes the real usage (meter hook);
- the request never reached the upstream (refused by a later check, or refused by the upstream
  before any work) → `release()`: everything is given back;
- the upstream was reached but the meter did not record (it failed) → `keep()`: the reservation
  counts in full, never less than the request may have used.

The last two run in `end_unmetered`, which the metering middleware (billing/meter.py) calls only
after the meter has (or has not) recorded the request, so a client that hangs up can no longer
get its reservation back before its usage is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from aiproxy.appkeys import METERING_KEY, REQUEST_ID_KEY
from aiproxy.billing.record import UsageRecord

log = logging.getLogger("aiproxy.billing")


class Hold(Protocol):
    async def settle(self, rec: UsageRecord) -> None:
        """The request was metered: replace the reservation by `rec`'s real usage."""

    async def release(self) -> None:
        """The request never reached the upstream: give the whole reservation back."""

    async def keep(self) -> None:
        """The upstream was reached but nothing was metered: count the reservation in full."""


HOLDS_SLOT: web.RequestKey[list[Hold]] = web.RequestKey("reservation_holds")


class Reservations:
    """The open holds of requests in flight, by request id."""

    def __init__(self) -> None:
        self._open: dict[str, list[Hold]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, request: web.Request, hold: Hold) -> None:
        holds = request.get(HOLDS_SLOT)
        if holds is None:
            holds = request[HOLDS_SLOT] = []
            self._open[request[REQUEST_ID_KEY]] = holds
        holds.append(hold)

    async def settle(self, rec: UsageRecord) -> None:
        """Meter hook: end the request's holds with its real usage."""
        holds = self._open.pop(rec.request_id, None)
        if holds:
            await _end_all(holds, lambda hold: hold.settle(rec))

    @staticmethod
    def holds(request: web.Request) -> bool:
        """Whether admission filed any hold under this request (most requests: none to end)."""
        return request.get(HOLDS_SLOT) is not None

    async def end_unmetered(self, request: web.Request) -> None:
        """End the holds the meter did not settle: released, or kept when the upstream was reached."""
        holds = request.get(HOLDS_SLOT)
        rid = request.get(REQUEST_ID_KEY, "")
        if holds is None or rid not in self._open or self._open[rid] is not holds:
            return  # none taken, or already settled by the meter
        del self._open[rid]
        reached_upstream = request.get(METERING_KEY) is not None
        await _end_all(holds, lambda hold: hold.keep() if reached_upstream else hold.release())

async def _end_all(holds: list[Hold], end: Callable[[Hold], Awaitable[None]]) -> None:
    for hold in holds:
        try:
            await end(hold)
        except Exception:  # one failing store must not leave the others held
            log.exception("could not end a %s reservation", type(hold).__name__)
