"""Lotti's credits service: the HTTP client, and the pre-flight balance check before Gemini.

API (Bearer key): `POST /api/v1/balance {user_id}` -> `{user_id, balance}` (404 unknown user);
`POST /api/v1/bill {user_id, amount, description}` -> 200, 402 insufficient balance, 404 unknown.
Amounts travel as exact JSON numbers written from the Decimal (never via float).

The pre-flight refuses (402 `insufficient_quota`) a request whose worst case the balance cannot
cover, before anything is spent upstream. Balances are cached for a few seconds (one fetch per
user at a time) and lowered locally by each charge, so the check costs no round trip per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from decimal import Decimal
from typing import Any, Callable, Literal

import aiohttp
import orjson
from aiohttp import web

from aiproxy.billing.estimate import metering_prompt_estimate
from aiproxy.billing.pricing import PriceTable, worst_case_cost
from aiproxy.billing.record import Metering
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.credits")

BillOutcome = Literal["charged", "insufficient", "unknown_user"]


class CreditsUnavailable(Exception):
    """The service could not give an answer (timeout, connection, 5xx, or an unexpected status):
    worth retrying later."""


def money(amount: Decimal) -> orjson.Fragment:
    """An exact JSON number for `amount` (0.00075, never 7.5E-4 or a float's 0.000750000001)."""
    return orjson.Fragment(format(amount.normalize(), "f").encode())


class CreditsClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        await self.start()
        assert self._session is not None
        try:
            async with self._session.post(
                self.base_url + path, data=orjson.dumps(body), headers={**self._headers, **(headers or {})}
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise CreditsUnavailable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if status >= 500:
            raise CreditsUnavailable(f"HTTP {status}")
        try:
            data = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            data = None
        return status, data

    async def balance(self, user: str) -> Decimal | None:
        """The user's balance in USD, or None when the service does not know the user."""
        status, data = await self._post("/api/v1/balance", {"user_id": user})
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict) or "balance" not in data:
            raise CreditsUnavailable(f"HTTP {status} from balance")
        return Decimal(str(data["balance"]))

    async def bill(self, user: str, amount: Decimal, description: str, *, idempotency_key: str) -> BillOutcome:
        """Charge once per `idempotency_key` (the request id): a retry of an acknowledged charge
        is answered from the service's memory, not charged again."""
        body = {"user_id": user, "amount": money(amount), "description": description}
        status, _ = await self._post("/api/v1/bill", body, {"Idempotency-Key": idempotency_key})
        if status == 200:
            return "charged"
        if status == 402:
            return "insufficient"
        if status == 404:
            return "unknown_user"
        raise CreditsUnavailable(f"HTTP {status} from bill")


class CreditGate:
    """The pre-flight check, with a short-lived balance cache and the fail-open/closed policy."""

    def __init__(
        self,
        client: CreditsClient,
        *,
        ttl: float = 5.0,
        fail_policy: Literal["open", "closed"] = "open",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.fail_policy = fail_policy
        self._clock = clock
        self._cache: dict[str, tuple[Decimal | None, float]] = {}
        self._inflight: dict[str, asyncio.Task[Decimal | None]] = {}

    async def _balance(self, user: str) -> Decimal | None:
        hit = self._cache.get(user)
        if hit is not None and self._clock() - hit[1] < self.ttl:
            return hit[0]
        task = self._inflight.get(user)
        if task is None:  # one fetch per user however many requests wait for it
            task = asyncio.create_task(self.client.balance(user))
            self._inflight[user] = task
            task.add_done_callback(lambda _: self._inflight.pop(user, None))
        value = await asyncio.shield(task)
        self._cache[user] = (value, self._clock())
        return value

    async def preflight(self, user: str, worst_case_cost: Decimal) -> None:
        """Return when `user` can cover `worst_case_cost`; raise ProxyError 402 when not, and per
        the policy (open: allow, closed: 503) when the service cannot be asked."""
        try:
            balance = await self._balance(user)
        except CreditsUnavailable as exc:
            if self.fail_policy == "open":
                log.warning("credits service unreachable (%s); allowing %s (fail-open)", exc, user)
                return
            log.error("credits service unreachable (%s); refusing %s (fail-closed)", exc, user)
            raise ProxyError(503, "The billing service is unavailable; try again shortly.", type="api_error",
                             code="billing_unavailable") from None  # fmt: skip
        if balance is None:
            raise ProxyError(402, f"No credit account exists for user {user!r}.", code="insufficient_quota",
                             type="insufficient_quota")  # fmt: skip
        if balance < worst_case_cost:
            raise ProxyError(
                402,
                f"Insufficient credits: this request may cost up to ${format(worst_case_cost.normalize(), 'f')} "
                f"and the balance is ${format(balance.normalize(), 'f')}.",
                code="insufficient_quota",
                type="insufficient_quota",
            )

    def note_charge(self, user: str, amount: Decimal) -> None:
        """Lower the cached balance by a charge just incurred, so a burst cannot overspend the TTL."""
        hit = self._cache.get(user)
        if hit is not None and hit[0] is not None:
            self._cache[user] = (hit[0] - amount, hit[1])


def preflight_hook(gate: CreditGate, prices: PriceTable, default_max_tokens: int) -> Any:
    """Adapter to the app's PREFLIGHT_KEY signature. Worst case = the prompt estimate
    (billing.estimate: text, media, tools) plus the client's output limit, or
    `default_max_tokens` when it set none."""

    async def check(request: web.Request, m: Metering, max_output_tokens: int | None) -> None:
        prompt = metering_prompt_estimate(m)
        limit = max_output_tokens if max_output_tokens is not None else default_max_tokens
        await gate.preflight(m.user, worst_case_cost(prices, m.upstream_model, prompt, limit))

    return check
