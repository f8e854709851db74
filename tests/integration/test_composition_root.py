"""create_app is the one place that orders what runs; the orders are pinned here by name, and the
app built from swapped parts shows the root is where a test replaces a piece."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy.app import build_parts, create_app
from aiproxy.appkeys import ADMISSION_KEY, LEDGER_KEY, METER_KEY
from aiproxy.billing.record import UsageRecord
from aiproxy.errors import ProxyError
from tests.conftest import emulator_url, make_settings


def name(fn: Any) -> str:
    """A callable's name as written in its module (`metering_middleware`, `Access.lifecycle`)."""
    if isinstance(fn, functools.partial):
        return name(fn.func)
    qualname = getattr(fn, "__qualname__", None) or type(fn).__name__
    return qualname.split(".<locals>.")[0]


@pytest.fixture
def app() -> web.Application:
    return create_app(make_settings("http://127.0.0.1:9", redis_url="redis://127.0.0.1:6379/0",
                                    response_cache="memory"))


def test_the_cache_off_adds_nothing_to_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """RESPONSE_CACHE=off (the default): no header callback, no meter hook; and serve_chat builds
    no key (answer_shape is never called, checked in tests/integration/test_response_cache.py)."""
    off = create_app(make_settings("http://127.0.0.1:9"))
    assert "ResponseCache.add_header" not in [name(f) for f in off.on_response_prepare]
    assert "count_saving" not in [name(h) for h in off[METER_KEY].hooks]


CORE_MIDDLEWARES = [
    "metrics_middleware",  # outermost of the core: sees every final status, writes the JSON access log
    "request_boundary_middleware",  # the server's request id, then the error boundary
    "metering_middleware",  # bills, then ends the holds the meter did not settle
    "Access.middleware",
    "hardening_middleware",
]


def test_middlewares_run_in_the_order_create_app_lists(app: web.Application) -> None:
    # No TRUSTED_PROXIES: the forwarded-client guard would do nothing, so it is not installed.
    assert [name(m) for m in app.middlewares] == ["ops_split_middleware", *CORE_MIDDLEWARES]


def test_the_listener_guards_come_first_when_configured() -> None:
    app = create_app(make_settings("http://127.0.0.1:9", trusted_proxies="10.0.0.0/8"))
    assert [name(m) for m in app.middlewares] == [
        "ops_split_middleware",  # a refusal by the listener guards costs nothing further
        "forwarded_client_middleware",
        *CORE_MIDDLEWARES,
    ]


def test_admission_steps_run_in_order_and_media_is_fetched_last(app: web.Application) -> None:
    assert app[ADMISSION_KEY].names == [
        "identify", "refuse_while_ledger_down", "rate_limit", "reserve_budget", "reserve_credits",
        "fetch_remote_media",
    ]


def test_the_meter_records_the_row_then_runs_its_hooks_in_order(app: web.Application) -> None:
    meter = app[METER_KEY]
    assert [name(s) for s in meter.sinks] == ["LedgerGuard"]
    assert [name(h) for h in meter.hooks] == [
        "Reservations.settle", "Billing.nudge_outbox", "Access.count_unbudgeted_spend", "observe_record",
        "count_saving",
    ]


def test_response_callbacks_and_lifecycles_are_listed_once(app: web.Application) -> None:
    assert [name(f) for f in app.on_response_prepare] == [
        "add_request_id_header", "_CorsConfigImpl._on_response_prepare", "add_security_headers",
        "Access.add_rate_limit_headers", "add_upstream_model_header", "ResponseCache.add_header",
    ]
    assert [name(c) for c in app.cleanup_ctx] == [
        "Providers.sessions", "Billing.lifecycle", "RemoteImageFetcher.lifecycle", "Access.lifecycle",
        "ResponseCache.lifecycle", "redis_ping",
    ]
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    assert {("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/models/{model_id}"),
            ("GET", "/openapi.json"), ("GET", "/health/ready"), ("GET", "/metrics")} <= routes


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def _chat(stream: bool = False) -> dict[str, Any]:
    return {"model": "gemini-2.5-flash", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_swapped_admission_step_refuses_before_the_later_steps_and_the_upstream(
        emulator: TestServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(emulator_url(emulator))
    parts = build_parts(settings)
    later: list[str] = []

    async def refuse(request: web.Request, metering: Any, max_out: int | None) -> None:
        raise ProxyError(429, "budget step swapped by the test", code="test_refusal")

    async def later_step(request: web.Request, metering: Any, max_out: int | None) -> None:
        later.append(metering.request_id)

    monkeypatch.setattr(parts.access, "reserve_budget", refuse)
    monkeypatch.setattr(parts.billing, "reserve_credits", later_step)
    proxy = await _serve(create_app(settings, parts))
    try:
        async with http.post(proxy.make_url("/v1/chat/completions"), json=_chat()) as resp:
            assert resp.status == 429
            assert (await resp.json())["error"]["code"] == "test_refusal"
        assert later == []  # the steps after it never ran
        assert await proxy.app[LEDGER_KEY].rows() == []  # nothing reached Gemini, nothing billed
    finally:
        await proxy.close()


class RecordingSink:
    """The meter's ledger sink, swapped: keeps the rows; anything else goes to the real guard."""

    def __init__(self, guard: Any) -> None:
        self.guard = guard
        self.rows: list[UsageRecord] = []

    async def record(self, rec: UsageRecord) -> None:
        self.rows.append(rec)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.guard, attr)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_swapped_ledger_sink_gets_each_metered_row(emulator: TestServer, http: aiohttp.ClientSession,
                                                           stream: bool) -> None:
    settings = make_settings(emulator_url(emulator))
    parts = build_parts(settings)
    sink = parts.billing.ledger_guard = RecordingSink(parts.billing.ledger_guard)  # type: ignore[assignment]  # a stand-in
    proxy = await _serve(create_app(settings, parts))
    try:
        body = {**_chat(stream), "stream_options": {"include_usage": True}} if stream else _chat()
        async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
            assert resp.status == 200
            text = await resp.text()
        [row] = sink.rows
        assert (row.requested_model, row.streamed, row.status) == ("gemini-2.5-flash", stream, "ok")
        assert row.prompt_tokens > 0 and row.completion_tokens > 0 and not row.estimated
        assert f'"prompt_tokens":{row.prompt_tokens}' in text.replace(" ", "")
        assert await proxy.app[LEDGER_KEY].rows() == []  # the real ledger was swapped out
    finally:
        await proxy.close()
