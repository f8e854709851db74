"""Lotti's credits service: the HTTP client, and the pre-flight balance check before Gemini.

API (Bearer key): `POST /api/v1/balance {user_id}` -> `{user_id, balance}` (404 unknown user);
`POST /api/v1/bill {user_id, amount, description}` -> 200, 402 insufficient balance, 404 unknown.
Amounts travel as exact JSON numbers written from the Decimal (never via float). Any other 4xx
to a bill, except the transient 408/409/425/429 and 401/403, is a permanent refusal
(`CreditsRejected`): sending the same charge again would get the same answer. 401/403 mean the
proxy's own CREDITS_SERVICE_API_KEY is wrong: the charge is fine and goes through once the
operator fixes the key, so those are retried (and logged as errors), never dropped.

The pre-flight refuses (402 `insufficient_quota`) a request whose worst case the balance cannot
cover, before anything is spent upstream, and reserves that worst case (`CreditHold`) until the
meter swaps it for the real charge: concurrent requests see each other's reservations, so a burst
cannot overdraw the balance. Balances are cached for a few seconds (one fetch per user at a time)
and lowered locally by each charge, so the check costs no round trip per request. Reservations
live in this process: several instances each see only their own, and a balance fetched again
while charges still wait in the outbox does not yet show them. The cache keeps at most
`max_users` balances (least recently used dropped first), so new users cannot grow it unbounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp import web

from aiproxy.billing.pricing import PriceTable, format_usd, usd_json
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.reservations import Reservations
from aiproxy.billing.worst_case import request_worst_case
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.credits")

BillOutcome = Literal["charged", "insufficient", "unknown_user"]


# 4xx answers that say "not now" (timeout, conflict, too early, rate limited): retried.
TRANSIENT_4XX = frozenset({401, 403, 408, 409, 425, 429})  # 401/403: our key, not the charge


class CreditsUnavailable(Exception):
    """The service could not give an answer (timeout, connection, 5xx, a transient 4xx, or an
    unexpected status): worth retrying later."""


class CreditsRejected(Exception):
    """The service refused a charge for good (a 4xx other than 402/404 and TRANSIENT_4XX)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} from bill")
        self.status = status


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
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
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
        body = {"user_id": user, "amount": usd_json(amount), "description": description}
        status, _ = await self._post("/api/v1/bill", body, {"Idempotency-Key": idempotency_key})
        if status == 200:
            return "charged"
        if status == 402:
            return "insufficient"
        if status == 404:
            return "unknown_user"
        if 400 <= status < 500 and status not in TRANSIENT_4XX:
            raise CreditsRejected(status)
        if status in (401, 403):
            log.error("the credits service refused CREDITS_SERVICE_API_KEY (HTTP %d); charges stay pending "
                      "and are retried until the key is fixed", status)
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
        max_users: int = 10_000,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.fail_policy = fail_policy
        self.max_users = max_users
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Decimal | None, float]] = OrderedDict()  # least recent first
        self._inflight: dict[str, asyncio.Task[Decimal | None]] = {}
        self._reserved: dict[str, Decimal] = {}  # worst cases of this user's requests in flight

    async def _balance(self, user: str) -> Decimal | None:
        hit = self._cache.get(user)
        if hit is not None and self._clock() - hit[1] < self.ttl:
            self._cache.move_to_end(user)
            return hit[0]
        task = self._inflight.get(user)
        if task is None:  # one fetch per user however many requests wait for it
            task = asyncio.create_task(self.client.balance(user))
            self._inflight[user] = task
            task.add_done_callback(lambda _: self._inflight.pop(user, None))
        value = await asyncio.shield(task)
        self._remember(user, value)
        return value

    def _remember(self, user: str, value: Decimal | None) -> None:
        self._cache[user] = (value, self._clock())
        self._cache.move_to_end(user)
        while len(self._cache) > self.max_users:
            self._cache.popitem(last=False)

    @property
    def cached_users(self) -> int:
        """Balances held right now (never more than `max_users`)."""
        return len(self._cache)

    async def preflight(self, user: str, worst_case_cost: Decimal) -> None:
        """Return when `user` can cover `worst_case_cost` besides what is reserved; raise ProxyError
        402 when not, and per the policy (open: allow, closed: 503) when the service cannot be asked."""
        await self._admit(user, worst_case_cost, reserve=False)

    async def reserve(self, user: str, worst_case_cost: Decimal) -> CreditHold | None:
        """Like `preflight`, and hold `worst_case_cost` until the request ends (None: the service
        could not be asked and the policy let the request through)."""
        return await self._admit(user, worst_case_cost, reserve=True)

    async def _admit(self, user: str, worst_case_cost: Decimal, *, reserve: bool) -> CreditHold | None:
        try:
            balance = await self._balance(user)
        except CreditsUnavailable as exc:
            if self.fail_policy == "open":
                log.warning("credits service unreachable (%s); allowing %s (fail-open)", exc, user)
                return None
            log.error("credits service unreachable (%s); refusing %s (fail-closed)", exc, user)
            raise ProxyError(503, "The billing service is unavailable; try again shortly.", type="api_error",
                             code="billing_unavailable") from None  # fmt: skip
        if balance is None:
            raise ProxyError(402, f"No credit account exists for user {user!r}.", code="insufficient_quota",
                             type="insufficient_quota")  # fmt: skip
        reserved = self._reserved.get(user, Decimal(0))  # no await from here: check and reserve are one step
        if balance - reserved < worst_case_cost:
            held = f" (${format_usd(reserved)} of it held by requests in progress)" if reserved else ""
            raise ProxyError(
                402,
                f"Insufficient credits: this request may cost up to ${format_usd(worst_case_cost)} "
                f"and the balance is ${format_usd(balance)}{held}.",
                code="insufficient_quota",
                type="insufficient_quota",
            )
        if not reserve:
            return None
        self._reserved[user] = reserved + worst_case_cost
        return CreditHold(self, user, worst_case_cost)

    def end_hold(self, user: str, amount: Decimal, charge: Decimal) -> None:
        """Drop a reservation and lower the cached balance by the real `charge`, in one step."""
        left = self._reserved.get(user, Decimal(0)) - amount
        if left > 0:
            self._reserved[user] = left
        else:
            self._reserved.pop(user, None)
        if charge > 0:
            self.note_charge(user, charge)

    def note_charge(self, user: str, amount: Decimal) -> None:
        """Lower the cached balance by a charge just incurred, so a burst cannot overspend the TTL."""
        hit = self._cache.get(user)
        if hit is not None and hit[0] is not None:
            self._cache[user] = (hit[0] - amount, hit[1])


@dataclass
class CreditHold:
    """One request's worst case, held against its user's balance until the request ends."""

    gate: CreditGate
    user: str
    amount: Decimal

    async def settle(self, rec: UsageRecord) -> None:
        self.gate.end_hold(self.user, self.amount, rec.cost_usd)

    async def release(self) -> None:
        self.gate.end_hold(self.user, self.amount, Decimal(0))

    async def keep(self) -> None:
        self.gate.end_hold(self.user, self.amount, self.amount)


def reserve_credits(gate: CreditGate, prices: PriceTable, default_max_tokens: int, reservations: Reservations) -> Any:
    """The admission step: reserve the request's worst case (billing/worst_case.py, with
    `default_max_tokens` when the client set no output limit) against the user's balance."""

    async def check(request: web.Request, m: Metering, max_output_tokens: int | None) -> None:
        hold = await gate.reserve(m.user, request_worst_case(prices, m, max_output_tokens, default_max_tokens))
        if hold is not None:
            reservations.add(request, hold)

    return check
