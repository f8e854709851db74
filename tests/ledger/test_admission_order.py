"""The admission order create_app lists, seen from a client: the cheap local refusals (rate
limits, budgets) come before the credits service is asked."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.access.conftest import add_key, bearer
from tests.ledger.factories import CREDITS_API_KEY
from tests.ledger.test_billing_in_app import chat, start_proxy, stub_upstream  # noqa: F401 - registers the `upstream` fixture in this module


async def test_client_over_its_rate_limit_gets_429_without_asking_the_credits_service(
        upstream: Any, credits_service: Any, ledger_url: str) -> None:
    proxy = await start_proxy(upstream, ledger_url, CREDITS_SERVICE_URL=str(credits_service.make_url("")),
                              CREDITS_SERVICE_API_KEY=CREDITS_API_KEY)
    try:  # alice has no credit account: asking the credits service means 402
        key, _ = await add_key(proxy, user="alice", rpm=1)
        answers = []
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(proxy.make_url("/v1/chat/completions"), json=chat(),
                                     headers=bearer(key)) as resp:
                    answers.append((resp.status, (await resp.json())["error"]["code"]))
        # The first request passes the rate limit and is refused by the credits service; the
        # second is over its one request per minute and refused before credits are looked at.
        assert answers == [(402, "insufficient_quota"), (429, "rate_limit_exceeded")]
    finally:
        await proxy.close()
