"""Stored Responses API responses on both ledger backends: scoped to the key's user, bounded, and
one usage row per response with endpoint `responses`."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.emulator import directive_text
from tests.access.conftest import add_key, bearer


async def create(http: aiohttp.ClientSession, proxy: TestServer, key: str, **body: Any) -> dict[str, Any]:
    async with http.post(proxy.make_url("/v1/responses"), headers=bearer(key),
                         json={"model": "gemini-2.5-flash", **body}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def fetch(http: aiohttp.ClientSession, proxy: TestServer, key: str, response_id: str,
                method: str = "GET") -> tuple[int, dict[str, Any]]:
    async with http.request(method, proxy.make_url(f"/v1/responses/{response_id}"), headers=bearer(key)) as resp:
        return resp.status, await resp.json()


async def stored_ids(proxy: TestServer) -> list[str]:
    ledger: Any = proxy.app[LEDGER_KEY]
    return [row[0] for row in await ledger.select("SELECT response_id FROM responses ORDER BY created_at", [])]


async def test_stored_responses_scoped_bounded_and_metered(proxy_factory: Any, http: aiohttp.ClientSession,
                                                           ledger_url: str) -> None:
    proxy = await proxy_factory(usage_db_url=ledger_url, responses_store_max_per_user=2)
    alice, _ = await add_key(proxy, "alice")
    bob, _ = await add_key(proxy, "bob")

    first = await create(http, proxy, alice, input="I am Ada. " + directive_text(reply="Hello Ada"))
    assert await fetch(http, proxy, bob, first["id"]) == (404, {"error": {
        "message": f"Response with id '{first['id']}' not found.", "type": "invalid_request_error",
        "param": "response_id", "code": "not_found"}})
    assert (await fetch(http, proxy, bob, first["id"], "DELETE"))[0] == 404
    async with http.post(proxy.make_url("/v1/responses"), headers=bearer(bob),
                         json={"model": "gemini-2.5-flash", "input": "x", "previous_response_id": first["id"]}) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["param"] == "previous_response_id"
    status, body = await fetch(http, proxy, alice, first["id"])
    assert status == 200 and body == first

    second = await create(http, proxy, alice, input="Who am I?", previous_response_id=first["id"])
    assert second["previous_response_id"] == first["id"]
    unstored = await create(http, proxy, alice, input="forget me", store=False)
    third = await create(http, proxy, alice, input="more")
    assert unstored["id"] not in await stored_ids(proxy)
    assert await stored_ids(proxy) == [second["id"], third["id"]]  # at most 2 per user: the oldest went

    assert await fetch(http, proxy, alice, third["id"], "DELETE") == (
        200, {"id": third["id"], "object": "response.deleted", "deleted": True})
    assert await stored_ids(proxy) == [second["id"]]

    rows = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert [(r["endpoint"], r["user_id"]) for r in rows] == [("responses", "alice")] * 4
    assert [r["prompt_tokens"] for r in rows] == [
        r["usage"]["input_tokens"] for r in (first, second, unstored, third)]


async def test_stored_responses_expire_after_their_age(proxy_factory: Any, http: aiohttp.ClientSession,
                                                       ledger_url: str) -> None:
    proxy = await proxy_factory(usage_db_url=ledger_url, responses_store_days=0.1 / 86400)  # 0.1 s
    alice, _ = await add_key(proxy, "alice")
    first = await create(http, proxy, alice, input="hi")
    await asyncio.sleep(0.2)
    assert (await fetch(http, proxy, alice, first["id"]))[0] == 404
    await create(http, proxy, alice, input="again")  # saving drops the expired rows
    assert first["id"] not in await stored_ids(proxy)
