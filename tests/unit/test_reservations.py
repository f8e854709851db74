"""Each reservation ends exactly once: settled by the meter, else released or kept by how far
the request got."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from aiproxy.appkeys import METERING_KEY, REQUEST_ID_KEY
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.reservations import Reservations
from tests.ledger.factories import make_record


class Recorder:
    def __init__(self) -> None:
        self.ends: list[Any] = []

    async def settle(self, rec: UsageRecord) -> None:
        self.ends.append(("settle", rec.total_tokens))

    async def release(self) -> None:
        self.ends.append("release")

    async def keep(self) -> None:
        self.ends.append("keep")


def request(rid: str) -> web.Request:
    req = make_mocked_request("POST", "/v1/chat/completions")
    req[REQUEST_ID_KEY] = rid
    return req


@pytest.mark.parametrize("reached,metered,expected", [
    (False, False, ["release"]),                 # refused before the upstream: all given back
    (True, False, ["keep"]),                     # upstream reached, the meter failed: counted in full
    (True, True, [("settle", 2000)]),            # metered: the real usage, and nothing after
])  # fmt: skip
async def test_each_hold_ends_once(reached: bool, metered: bool, expected: list[Any]) -> None:
    reservations = Reservations()
    req, holds = request("req-1"), [Recorder(), Recorder()]
    for hold in holds:
        reservations.add(req, hold)
    if reached:
        req[METERING_KEY] = Metering(request_id="req-1", user="u", requested_model="m", upstream_model="m")
    if metered:
        await reservations.settle(make_record(request_id="req-1", total_tokens=2000))
    await reservations.end_unmetered(req)
    await reservations.end_unmetered(req)
    await reservations.settle(make_record(request_id="req-1", total_tokens=9))  # a late duplicate: ignored
    assert [h.ends for h in holds] == [expected, expected]
    assert len(reservations) == 0
