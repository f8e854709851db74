"""An in-memory stand-in for Lotti's credits service, for tests and demos.

Same API as the real one (Bearer key; `POST /api/v1/balance`, `POST /api/v1/bill`), honouring
`Idempotency-Key` (a repeated key gets the first answer again and is not charged twice), plus a
control endpoint to inject faults at runtime:

    POST /_control {"mode": "ok"|"down"|"slow"|"500"|"402"|"422"|"429", "delay": 2.0, "balances": {"alice": "5"}}
    GET  /_control  -> mode, balances, applied charges, and how many bill calls arrived

`down` drops the connection without an answer; `slow` waits `delay` seconds and then answers
normally (so a client with a shorter timeout gives up on a charge that *was* applied); `500`
answers 500 and applies nothing; `402` refuses every bill; `422` (a permanent refusal) and `429`
(rate limited, transient) answer every authenticated call with that status and apply nothing.

    python -m aiproxy.emulator.credits --port 8003 --api-key KEY --balance alice=10 --balance bob=0.5
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from aiproxy.billing.pricing import format_usd, usd_json

MODES = ("ok", "down", "slow", "500", "402", "422", "429")


@dataclass
class CreditsState:
    api_key: str = "test-credits-key"
    balances: dict[str, Decimal] = field(default_factory=dict)
    mode: str = "ok"
    delay: float = 1.0
    charges: list[dict[str, Any]] = field(default_factory=list)  # applied, in order
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # Idempotency-Key -> answer
    bill_calls: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "delay": self.delay,
            "balances": {u: format_usd(b) for u, b in self.balances.items()},
            "charges": [{**c, "amount": format_usd(c["amount"])} for c in self.charges],
            "bill_calls": self.bill_calls,
        }


STATE_KEY = web.AppKey("credits_state", CreditsState)


def _exact(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return usd_json(obj)
    raise TypeError(type(obj).__name__)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body, default=_exact), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.text(), parse_float=Decimal)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"detail": "body must be a JSON object"}', content_type="application/json")
    return data


async def _faults(request: web.Request, state: CreditsState) -> web.StreamResponse | None:
    """Apply the injected fault, if any; a returned response short-circuits the call."""
    if state.mode == "down":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing is answered on a dropped connection
    if state.mode == "slow":
        await asyncio.sleep(state.delay)
    if state.mode == "500":
        return _json(500, {"detail": "injected failure"})
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(token.encode(), state.api_key.encode()):
        return _json(401, {"detail": "invalid API key"})
    if state.mode in ("422", "429"):
        return _json(int(state.mode), {"detail": "injected refusal"})
    return None


async def balance(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    fault = await _faults(request, state)
    if fault is not None:
        return fault
    user = (await _body(request)).get("user_id")
    if user not in state.balances:
        return _json(404, {"detail": "unknown user"})
    return _json(200, {"user_id": user, "balance": state.balances[user]})


def _apply_bill(state: CreditsState, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
    user = body.get("user_id")
    try:
        amount = Decimal(str(body.get("amount")))
    except InvalidOperation:
        return 400, {"detail": "amount must be a number"}
    if not amount.is_finite() or amount <= 0:
        return 400, {"detail": "amount must be positive"}
    if user not in state.balances:
        return 404, {"detail": "unknown user"}
    if state.mode == "402" or state.balances[user] < amount:
        return 402, {"detail": "insufficient balance"}
    state.balances[user] -= amount
    state.charges.append({"user_id": user, "amount": amount, "description": body.get("description", ""), "key": key})
    return 200, {"user_id": user, "balance": state.balances[user]}


async def bill(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.bill_calls += 1
    fault = await _faults(request, state)
    if fault is not None:
        return fault
    key = request.headers.get("Idempotency-Key")
    if key is not None and key in state.answers:
        return _json(*state.answers[key])
    status, answer = _apply_bill(state, await _body(request), key)
    if key is not None and status in (200, 402, 404):
        state.answers[key] = (status, answer)
    return _json(status, answer)


async def control(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if request.method == "POST":
        body = await _body(request)
        if "mode" in body:
            if body["mode"] not in MODES:
                return _json(400, {"detail": f"mode must be one of {MODES}"})
            state.mode = body["mode"]
        if "delay" in body:
            state.delay = float(body["delay"])
        for user, amount in (body.get("balances") or {}).items():
            state.balances[user] = Decimal(str(amount))
    return _json(200, state.snapshot())


def create_credits_app(state: CreditsState | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state or CreditsState()
    app.router.add_post("/api/v1/balance", balance)
    app.router.add_post("/api/v1/bill", bill)
    app.router.add_route("*", "/_control", control)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aiproxy.emulator.credits", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8003)
    p.add_argument("--api-key", default="test-credits-key")
    p.add_argument("--balance", action="append", default=[], metavar="USER=USD", help="starting balance (repeatable)")
    ns = p.parse_args(argv)
    balances = {u: Decimal(a) for u, _, a in (b.partition("=") for b in ns.balance)}
    web.run_app(create_credits_app(CreditsState(api_key=ns.api_key, balances=balances)), host=ns.host, port=ns.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
