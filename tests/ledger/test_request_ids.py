"""The server's request id keys the ledger, the charge and the billing line; the client's
X-Request-ID is a label only (stored as client_request_id, echoed, never unique), on both backends."""

from __future__ import annotations

import asyncio
import logging
import re
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY, METER_KEY
from aiproxy.billing import ledger_pg, ledger_sqlite
from aiproxy.billing.ledger import open_ledger
from aiproxy.billing.pricing import worst_case_cost
from aiproxy.emulator.credits import STATE_KEY
from tests.access.conftest import add_key, bearer
from tests.ledger.factories import CREDITS_API_KEY, make_record
from tests.ledger.test_billing_in_app import ONE_REQUEST, chat, start_proxy, stub_upstream  # noqa: F401 - registers the `upstream` fixture in this module

BUDGET_DEFAULT_OUTPUT_TOKENS = 8192  # the shipped default of the setting of that name
SERVER_ID = re.compile(r"req-[0-9a-f]{24}")
URL = "/v1/chat/completions"


async def post(http: aiohttp.ClientSession, proxy: TestServer, body: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, str | None]:
    """Status and the server's request id header of one chat request."""
    async with http.post(proxy.make_url(URL), json=body, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Aiproxy-Request-ID")


async def test_reused_client_request_id_still_bills_each_request(upstream, ledger_url, caplog) -> None:
    caplog.set_level(logging.INFO, logger="aiproxy.billing")
    proxy = await start_proxy(upstream, ledger_url)
    try:
        async with aiohttp.ClientSession() as http:
            sent = []
            for user, stream in (("alice", False), ("bob", True), ("alice", True)):
                async with http.post(proxy.make_url(URL), json=chat(user=user, stream=stream),
                                     headers={"X-Request-ID": "same-id"}) as resp:
                    assert resp.status == 200
                    await resp.read()
                    assert resp.headers["X-Request-ID"] == "same-id"  # the client's id, echoed
                    sent.append((user, resp.headers["X-Aiproxy-Request-ID"]))
        ledger = proxy.app[LEDGER_KEY]
        rows = await ledger.rows()
        assert [(r["user_id"], r["request_id"]) for r in rows] == sent
        assert [r["client_request_id"] for r in rows] == ["same-id"] * 3
        assert all(SERVER_ID.fullmatch(rid) for _, rid in sent) and len({rid for _, rid in sent}) == 3
        assert [(r["requests"], r["cost_usd"]) for r in await ledger.report(user="alice")] == [(2, ONE_REQUEST * 2)]
        assert [(r["requests"], r["cost_usd"]) for r in await ledger.report(user="bob")] == [(1, ONE_REQUEST)]
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("💰 BILLING")]
        assert [line.rsplit("Request ID: ", 1)[1] for line in lines] == [rid for _, rid in sent]
    finally:
        await proxy.close()


async def test_a_budget_cannot_be_dodged_by_reusing_a_request_id(upstream, ledger_url) -> None:
    # BUDGET_CACHE_TTL=0: the budget re-reads the ledger before every request.
    proxy = await start_proxy(upstream, ledger_url, BUDGET_CACHE_TTL="0")
    try:
        # Admission reserves the worst case (prompt + default output); half a request of slack on
        # top of one request's cost + the worst case lets exactly two requests through.
        worst = worst_case_cost(proxy.app[METER_KEY].prices, "gemini-2.5-flash", 1, BUDGET_DEFAULT_OUTPUT_TOKENS)
        key, _ = await add_key(proxy, user="alice", daily_budget=ONE_REQUEST * Decimal("1.5") + worst)
        async with aiohttp.ClientSession() as http:
            statuses = [(await post(http, proxy, chat(), {**bearer(key), "X-Request-ID": "reused"}))[0]
                        for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        [total] = await proxy.app[LEDGER_KEY].report(user="alice")
        assert (total["requests"], total["cost_usd"]) == (2, ONE_REQUEST * 2)
    finally:
        await proxy.close()


async def test_credits_idempotency_key_is_the_server_id(upstream, credits_service, ledger_url) -> None:
    state = credits_service.app[STATE_KEY]
    state.balances.update(alice=Decimal("1"))
    proxy = await start_proxy(upstream, ledger_url, CREDITS_SERVICE_URL=str(credits_service.make_url("")),
                              CREDITS_SERVICE_API_KEY=CREDITS_API_KEY, CREDITS_BALANCE_TTL="0")
    try:
        async with aiohttp.ClientSession() as http:
            ids = [(await post(http, proxy, chat(), {"X-Request-ID": "retry-1"}))[1] for _ in range(2)]
        for _ in range(200):
            if len(state.charges) >= 2:
                break
            await asyncio.sleep(0.02)
        assert [c["key"] for c in state.charges] == ids  # both charged, each under its server id
        assert state.balances["alice"] == Decimal("1") - ONE_REQUEST * 2
        outbox = await proxy.app[LEDGER_KEY].charges()
        assert sorted(c.request_id for c in outbox) == sorted(ids)
        assert all(f"request {c.request_id}" in c.description for c in outbox)
    finally:
        await proxy.close()


async def test_a_version_2_ledger_gains_client_request_id(ledger_url, monkeypatch) -> None:
    real = ledger_sqlite.migrations
    for module in (ledger_sqlite, ledger_pg):
        monkeypatch.setattr(module, "migrations", lambda d: [m for m in real(d) if m[0] <= 2])
    old = open_ledger(ledger_url)
    await old.open()  # the schema as shipped before migration 3
    await old.close()
    monkeypatch.undo()
    led = open_ledger(ledger_url)
    await led.open()
    try:
        await led.record(make_record(request_id="req-a", client_request_id="mine"))
        await led.record(make_record(request_id="req-b", client_request_id="mine"))
        await led.record(make_record(request_id="req-c"))
        assert [(r["request_id"], r["client_request_id"]) for r in await led.rows()] == [
            ("req-a", "mine"), ("req-b", "mine"), ("req-c", None)]
    finally:
        await led.close()


async def test_embeddings_rows_keep_the_client_id_beside_the_server_id(proxy_factory: Any) -> None:
    proxy = await proxy_factory()
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/v1/embeddings"), headers={"X-Request-ID": "emb-1"},
                             json={"model": "text-embedding-3-small", "input": "hello"}) as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-ID"] == "emb-1"
            server_id = resp.headers["X-Aiproxy-Request-ID"]
    [row] = await proxy.app[LEDGER_KEY].rows()
    assert (row["request_id"], row["client_request_id"], row["endpoint"]) == (server_id, "emb-1", "embeddings")
    assert SERVER_ID.fullmatch(server_id)
