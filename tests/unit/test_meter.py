"""The seed's billing line: exact format, once per request, estimates when Gemini said nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from aiproxy.appkeys import METERING_KEY
from aiproxy.billing.estimate import estimate_text_tokens
from aiproxy.billing.meter import Meter, apply_usage, metering_middleware
from aiproxy.billing.pricing import parse_price_table
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.providers.gemini.usage import read_usage

SEED_PRICES = parse_price_table('[models."seed-model"]\ninput = "0.25"\noutput = "0.50"\n')


def metering(**kw: Any) -> Metering:
    base: dict[str, Any] = {"request_id": "req-1", "user": "alice", "requested_model": "gpt-4",
                            "upstream_model": "seed-model"}
    return Metering(**{**base, **kw})


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO, logger="aiproxy.billing")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "aiproxy.billing" and r.levelno == logging.INFO]


@pytest.mark.parametrize(("prompt", "completion", "line"), [
    (1000, 1000, "💰 BILLING | User: alice | Model: gpt-4 | Tokens: 1000 input + 1000 output = 2000 total | "
                 "Cost: $0.00075 USD | Request ID: req-1"),
    (100, 50, "💰 BILLING | User: alice | Model: gpt-4 | Tokens: 100 input + 50 output = 150 total | "
              "Cost: $0.00005 USD | Request ID: req-1"),
    (5000, 2000, "💰 BILLING | User: alice | Model: gpt-4 | Tokens: 5000 input + 2000 output = 7000 total | "
                 "Cost: $0.00225 USD | Request ID: req-1"),
])
async def test_billing_line_exact(lines: Any, prompt: int, completion: int, line: str) -> None:
    m = metering()
    apply_usage(m, read_usage({"promptTokenCount": prompt, "candidatesTokenCount": completion,
                               "totalTokenCount": prompt + completion}), complete=True)
    rec = await Meter(SEED_PRICES).finish(m)
    assert lines() == [line]
    assert rec is not None and not rec.estimated and not rec.price_fallback


async def test_thinking_tokens_are_billed_as_output(lines: Any) -> None:
    m = metering()
    apply_usage(m, read_usage({"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
                               "totalTokenCount": 150}), complete=True)
    rec = await Meter(SEED_PRICES).finish(m)
    assert rec is not None and (rec.completion_tokens, rec.reasoning_tokens) == (50, 30)
    assert "Tokens: 100 input + 50 output = 150 total | Cost: $0.00005 USD" in lines()[0]


async def test_logged_once_however_often_finish_is_called(lines: Any) -> None:
    meter, m = Meter(SEED_PRICES), metering()
    assert await meter.finish(m) is not None
    assert await meter.finish(m) is None
    assert len(lines()) == 1


async def test_sinks_and_hooks_receive_the_record(lines: Any) -> None:
    got: list[UsageRecord] = []

    class Sink:
        async def record(self, rec: UsageRecord) -> None:
            got.append(rec)

    meter = Meter(SEED_PRICES, [Sink()])
    meter.hooks.append(got.append)
    await meter.finish(metering())
    assert len(got) == 2 and got[0] is got[1]


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (400, 100)])
def test_estimate_is_ceil_of_chars_over_four(chars: int, tokens: int) -> None:
    assert estimate_text_tokens(chars) == tokens


def test_missing_usage_is_estimated_from_characters() -> None:
    m = metering(prompt_chars=40, output_chars=9)
    apply_usage(m, None, complete=True)
    assert (m.prompt_tokens, m.completion_tokens, m.total_tokens, m.reported) == (10, 3, 13, False)


def test_cut_off_stream_keeps_known_prompt_and_estimates_output() -> None:
    m = metering(prompt_chars=4000, output_chars=40)
    apply_usage(m, read_usage({"promptTokenCount": 12, "totalTokenCount": 12}), complete=False)
    assert (m.prompt_tokens, m.completion_tokens, m.total_tokens, m.reported) == (12, 10, 22, False)


def test_complete_usage_is_taken_verbatim() -> None:
    m = metering(prompt_chars=4000, output_chars=4000)
    apply_usage(m, read_usage({"promptTokenCount": 3, "candidatesTokenCount": 2, "cachedContentTokenCount": 1,
                               "totalTokenCount": 5}), complete=True)
    assert (m.prompt_tokens, m.completion_tokens, m.cached_tokens, m.reported) == (3, 2, 1, True)


async def test_unpriced_model_warns_and_uses_fallback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiproxy.billing")
    rec = await Meter(SEED_PRICES).finish(metering(upstream_model="gemini-unknown"))
    assert rec is not None and rec.price_fallback
    assert any(r.levelno == logging.WARNING and "gemini-unknown" in r.getMessage() for r in caplog.records)


async def test_middleware_finishes_a_request_the_handler_left_unfinished(lines: Any) -> None:
    meter = Meter(SEED_PRICES)
    middleware = metering_middleware(meter)
    request = make_mocked_request("POST", "/v1/chat/completions")

    async def failing_handler(req: web.Request) -> web.Response:
        req[METERING_KEY] = metering(request_id="req-failed")
        raise RuntimeError("upstream broke")

    with pytest.raises(RuntimeError):
        await middleware(request, failing_handler)
    assert len(lines()) == 1 and lines()[0].endswith("Request ID: req-failed")


async def test_middleware_logs_nothing_for_unmetered_requests(lines: Any) -> None:
    middleware = metering_middleware(Meter(SEED_PRICES))

    async def handler(req: web.Request) -> web.Response:
        return web.Response()

    await middleware(make_mocked_request("GET", "/health"), handler)
    assert lines() == []
