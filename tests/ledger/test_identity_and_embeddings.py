"""One billing identity for every endpoint, and every embedded slice billed (issue 10, item 12).

Run through the real app against the Gemini emulator, on both ledger backends: the same body
bills the same user on chat and embeddings (open mode and under a key), and a multi-slice
embeddings request whose later slice fails bills the slices Gemini did.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.emulator import directive_text
from aiproxy.emulator.tokens import count_tokens
from tests.access.conftest import add_key, bearer

EMBEDDING_INPUT_PRICE = Decimal("0.15") / 1_000_000  # gemini-embedding-001, per token

IDENTITY_BODIES = [
    {"user_id": "u-7", "user": "label-9"},
    {"user_id": "u-7"},
    {"user": "label-9"},
    {"user_id": "", "user": "label-9"},
    {},
]


async def post(http: aiohttp.ClientSession, url: Any, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body, headers=headers or {}) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("who", IDENTITY_BODIES, ids=lambda b: "+".join(f"{k}={v}" for k, v in b.items()) or "none")
@pytest.mark.parametrize("with_key", [False, True], ids=["open", "key"])
async def test_chat_and_embeddings_bill_the_same_user_for_the_same_body(
        proxy_factory: Any, http: aiohttp.ClientSession, ledger_url: str, who: dict[str, str],
        with_key: bool) -> None:
    proxy = await proxy_factory(usage_db_url=ledger_url)
    headers = None
    if with_key:
        key, _ = await add_key(proxy, user="alice")
        headers = bearer(key)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **who}
    embed = {"model": "text-embedding-3-small", "input": "hi", **who}
    assert (await post(http, proxy.make_url("/v1/chat/completions"), chat, headers))[0] == 200
    assert (await post(http, proxy.make_url("/v1/embeddings"), embed, headers))[0] == 200
    rows = await proxy.app[LEDGER_KEY].rows()
    assert [r["endpoint"] for r in rows] == ["chat", "embeddings"]
    claim = who.get("user_id") or who.get("user")
    expected = ("alice", claim) if with_key else (claim or "anonymous", None)
    assert [(r["user_id"], r["end_user"]) for r in rows] == [expected, expected]


async def test_failed_later_slice_bills_the_slices_gemini_did(proxy_factory: Any, http: aiohttp.ClientSession,
                                                               ledger_url: str) -> None:
    proxy = await proxy_factory(usage_db_url=ledger_url, upstream_retries=0)
    texts = [f"text number {i}" for i in range(150)]
    texts[120] += " " + directive_text(error=503)  # the second batchEmbedContents call fails
    status, body = await post(http, proxy.make_url("/v1/embeddings"),
                              {"model": "text-embedding-3-small", "input": texts, "user": "bob"})
    assert status == 503
    assert set(body["error"]) == {"message", "type", "param", "code"}
    [row] = await proxy.app[LEDGER_KEY].rows()
    done_tokens = sum(count_tokens(t) for t in texts[:100])  # the first slice of 100, counted by Gemini
    assert (row["user_id"], row["endpoint"], row["status"]) == ("bob", "embeddings", "upstream_error")
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (done_tokens, 0, done_tokens)
    assert not row["estimated"]
    assert Decimal(str(row["cost_usd"])) == done_tokens * EMBEDDING_INPUT_PRICE


async def test_all_slices_done_bill_every_input(proxy_factory: Any, http: aiohttp.ClientSession,
                                                ledger_url: str) -> None:
    proxy = await proxy_factory(usage_db_url=ledger_url)
    texts = [f"text number {i}" for i in range(150)]
    status, body = await post(http, proxy.make_url("/v1/embeddings"),
                              {"model": "text-embedding-3-small", "input": texts})
    assert status == 200 and len(body["data"]) == 150
    tokens = sum(count_tokens(t) for t in texts)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    [row] = await proxy.app[LEDGER_KEY].rows()
    assert (row["status"], row["prompt_tokens"]) == ("ok", tokens)
