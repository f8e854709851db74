"""A row with cached audio is priced per modality on both ledger backends (issue 10 item 11)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiohttp.test_utils import TestServer

from tests.ledger.test_unexpected_endings import body, only_row, post, proxy_on_ledger  # noqa: F401 - registers the `proxy` fixture in this module

MIXED_CACHED_AUDIO = {
    "promptTokenCount": 10_000, "cachedContentTokenCount": 5_000, "candidatesTokenCount": 500,
    "thoughtsTokenCount": 0, "totalTokenCount": 10_500,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4_000}, {"modality": "AUDIO", "tokenCount": 6_000}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1_000}, {"modality": "AUDIO", "tokenCount": 4_000}],
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_mixed_cached_audio_row_is_priced_per_modality(proxy: TestServer, stream: bool) -> None:
    status, _ = await post(proxy, body(stream, words=8, usage=MIXED_CACHED_AUDIO))
    assert status == 200
    row = await only_row(proxy)
    assert (row["prompt_tokens"], row["cached_tokens"], row["audio_tokens"]) == (10_000, 5_000, 6_000)
    # gemini-2.5-flash: 3,000 text x $0.30 + 1,000 cached text x $0.03 + 2,000 audio x $1.00
    # + 4,000 cached audio x $0.10 + 500 output x $2.50, per 1M tokens.
    assert Decimal(str(row["cost_usd"])) == Decimal("0.00458") and not row["estimated"]
