"""Usage counts Gemini should never send still make one sane, flagged row, never a credit.

A negative count once billed a negative cost (a credit) and `1e30` overflowed the BIGINT and lost
the row. The emulator is scripted to send such usageMetadata; both ledger backends.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiohttp.test_utils import TestServer

from aiproxy.billing.pricing import ModelPrice
from tests.ledger.test_unexpected_endings import body, only_row, post, proxy_on_ledger  # noqa: F401 - registers the `proxy` fixture in this module

CEILING = 100_000_000  # aiproxy.providers.gemini.usage.MAX_TOKENS_PER_FIELD


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_negative_counts_bill_an_estimate_never_a_credit(proxy: TestServer, stream: bool) -> None:
    status, _ = await post(proxy, body(stream, words=8, usage={"promptTokenCount": -5000,
                                                                "candidatesTokenCount": -80, "totalTokenCount": -5080}))
    assert status == 200
    row = await only_row(proxy)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0  # the estimates, not the negatives
    assert bool(row["estimated"]) and row["status"] == "ok"
    assert Decimal(str(row["cost_usd"])) > 0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_absurd_counts_are_clamped_and_the_row_is_kept(proxy: TestServer, stream: bool) -> None:
    status, _ = await post(proxy, body(stream, words=8, usage={"candidatesTokenCount": 1e30, "totalTokenCount": 1e30}))
    assert status == 200
    row = await only_row(proxy)
    assert row["completion_tokens"] == CEILING + row["reasoning_tokens"] and bool(row["estimated"])
    assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
    # gemini-2.5-flash: $0.30 in / $2.50 out per 1M, exactly.
    expected = (row["prompt_tokens"] * Decimal("0.30") + row["completion_tokens"] * Decimal("2.50")) / 1_000_000
    assert Decimal(str(row["cost_usd"])) == expected


@pytest.mark.parametrize("counts", [(-1, 0, 0, 0), (0, -1, 0, 0), (10, 10, -5, 0), (10, 10, 0, -5), (-9, -9, -9, -9)])
def test_price_cost_is_never_negative(counts: tuple[int, int, int, int]) -> None:
    price = ModelPrice(input=Decimal("0.30"), output=Decimal("2.50"), cached_input=Decimal("0.03"),
                       audio_input=Decimal("1.00"))
    assert price.cost(*counts) >= 0


