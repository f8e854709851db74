"""GET /metrics as Prometheus text, and LOG_FORMAT=json lines with the request's context."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from aiproxy import jsonutil
from aiproxy.observability.jsonlog import JsonFormatter, RequestContextFilter
from aiproxy.observability.logsetup import TEXT_FORMAT
from tests.conftest import emulator_url, make_settings
from tests.integration.opshelp import chat, metric

ROUTE = "/v1/chat/completions"


async def scrape(http: aiohttp.ClientSession, proxy: TestServer) -> dict[str, Any]:
    async with http.get(proxy.make_url("/metrics")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_count_requests_tokens_cost_and_latency(proxy: TestServer, http: aiohttp.ClientSession) -> None:
    base = str(proxy.make_url(""))
    labels = {"route": ROUTE, "model": "gemini-2.5-pro", "status": "200"}
    before = {
        "ok": metric("aiproxy_requests_total", **labels),
        "bad": metric("aiproxy_requests_total", route=ROUTE, model="-", status="404"),
        "prompt": metric("aiproxy_tokens_total", model="gemini-2.5-pro", kind="prompt"),
        "completion": metric("aiproxy_tokens_total", model="gemini-2.5-pro", kind="completion"),
        "ttft": metric("aiproxy_time_to_first_token_seconds_count", model="gemini-2.5-pro"),
        "latency": metric("aiproxy_request_duration_seconds_count", route=ROUTE),
        "cost": metric("aiproxy_cost_usd_total", model="gemini-2.5-pro"),
    }
    ok = await chat(http, base, stream=False, words=10, usage={"promptTokenCount": 100, "candidatesTokenCount": 50})
    assert ok.status == 200
    usage = ok.json()["usage"]
    assert (await chat(http, base, model="no-such-model")).status == 404
    families = await scrape(http, proxy)
    assert {"aiproxy_requests", "aiproxy_request_duration_seconds", "aiproxy_time_to_first_token_seconds",
            "aiproxy_upstream_latency_seconds", "aiproxy_tokens", "aiproxy_cost_usd", "aiproxy_inflight_requests",
            "aiproxy_upstream_retries", "aiproxy_model_fallbacks", "aiproxy_rate_limit_rejections",
            "aiproxy_ledger_queue_depth", "aiproxy_outbox_pending"} <= set(families)
    assert metric("aiproxy_requests_total", **labels) - before["ok"] == 1
    assert metric("aiproxy_requests_total", route=ROUTE, model="-", status="404") - before["bad"] == 1
    assert (metric("aiproxy_tokens_total", model="gemini-2.5-pro", kind="prompt") - before["prompt"]
            == usage["prompt_tokens"])
    assert (metric("aiproxy_tokens_total", model="gemini-2.5-pro", kind="completion") - before["completion"]
            == usage["completion_tokens"])
    assert metric("aiproxy_time_to_first_token_seconds_count", model="gemini-2.5-pro") - before["ttft"] == 1
    assert metric("aiproxy_request_duration_seconds_count", route=ROUTE) - before["latency"] == 2
    assert metric("aiproxy_cost_usd_total", model="gemini-2.5-pro") > before["cost"]
    assert metric("aiproxy_inflight_requests") == 0


async def test_proxy_429_counts_as_rate_limit_rejection_but_gemini_429_does_not(
        emulator: TestServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiproxy.app import build_parts, create_app
    from aiproxy.errors import ProxyError

    limiting = False

    async def rate_limit(request: Any, metering: Any, limit: Any) -> None:
        if limiting:
            raise ProxyError(429, "slow down", code="rate_limit_exceeded")

    settings = make_settings(emulator_url(emulator), upstream_retries=0)
    parts = build_parts(settings)
    monkeypatch.setattr(parts.access, "rate_limit", rate_limit)  # the app's rate-limit step, swapped
    proxy = TestServer(create_app(settings, parts), host="127.0.0.1")
    await proxy.start_server()
    try:
        before = metric("aiproxy_rate_limit_rejections_total", route=ROUTE)
        upstream = await chat(http, str(proxy.make_url("")), error=429)
        assert upstream.status == 429
        assert metric("aiproxy_rate_limit_rejections_total", route=ROUTE) == before

        limiting = True
        assert (await chat(http, str(proxy.make_url("")))).status == 429
        assert metric("aiproxy_rate_limit_rejections_total", route=ROUTE) - before == 1
    finally:
        await proxy.close()


@pytest.fixture
def json_records(caplog: pytest.LogCaptureFixture) -> Any:
    """Log records of the run, rendered by the JSON formatter as LOG_FORMAT=json would."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestContextFilter())  # as setup_logging does in JSON mode
    formatter = JsonFormatter()

    def lines() -> list[dict[str, Any]]:
        return [jsonutil.loads(formatter.format(r)) for r in caplog.records if r.name.startswith("aiproxy")]

    return lines


async def test_json_logs_carry_request_context_and_the_unchanged_billing_line(
        proxy_factory: Any, http: aiohttp.ClientSession, json_records: Any) -> None:
    proxy = await proxy_factory(log_format="json")
    async with http.post(proxy.make_url(ROUTE), headers={"X-Request-ID": "req-json-1"},
                         json={"model": "gpt-4", "user": "ann", "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200
        server_id = r.headers["X-Aiproxy-Request-ID"]
    records = json_records()
    (billing,) = [r for r in records if r["message"].startswith("💰 BILLING")]
    assert billing["message"].startswith("💰 BILLING | User: ann | Model: gpt-4 | Tokens: ")
    assert billing["message"].endswith(f"| Request ID: {server_id}")
    assert (billing["request_id"], billing["client_request_id"], billing["user"], billing["model"],
            billing["upstream_model"]) == (server_id, "req-json-1", "ann", "gpt-4", "gemini-2.5-pro")
    (access,) = [r for r in records if r["logger"] == "aiproxy.requests"]
    assert access["status"] == 200 and access["route"] == ROUTE and access["latency_ms"] >= 0
    assert (access["request_id"], access["client_request_id"], access["user"], access["model"]) == (
        server_id, "req-json-1", "ann", "gpt-4")
    assert {"ts", "level", "logger", "message"} <= set(access)


async def test_text_logs_stay_as_before(proxy: TestServer, http: aiohttp.ClientSession,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with http.post(proxy.make_url(ROUTE), json={"model": "gpt-4", "messages": [
            {"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200
    assert not [r for r in caplog.records if r.name == "aiproxy.requests"]  # no extra line per request
    (billing,) = [r for r in caplog.records if r.getMessage().startswith("💰 BILLING")]
    text = logging.Formatter(TEXT_FORMAT).format(billing)
    assert " - aiproxy.billing - INFO - 💰 BILLING | User: " in text


async def test_json_logs_from_a_real_process(tmp_path: Any, emulator: TestServer) -> None:
    import signal

    from tests.conftest import emulator_url
    from tests.integration.procs import spawn, wait_healthy

    p = spawn(tmp_path, emulator_url(emulator), LOG_FORMAT="json")
    try:
        await wait_healthy(p)
        async with aiohttp.ClientSession() as http:
            assert (await chat(http, p.url, words=3)).status == 200
        p.signal(signal.SIGTERM)
        assert await p.wait() == 0
    finally:
        p.kill()
    lines = [jsonutil.loads(line) for line in p.log.splitlines() if line.strip()]  # every line is JSON
    (billing,) = [r for r in lines if r["message"].startswith("💰 BILLING | User: ")]
    assert billing["request_id"].startswith("req-") and billing["model"] == "gpt-4"
    assert [r["status"] for r in lines if r["logger"] == "aiproxy.requests" and r["route"] == ROUTE] == [200]


async def test_client_chosen_model_names_never_become_labels(proxy: TestServer, http: aiohttp.ClientSession) -> None:
    bogus = "gemini-bogus-" + __import__("os").urandom(4).hex()
    answer = await chat(http, str(proxy.make_url("")), model=bogus)
    assert answer.status == 404
    async with http.get(proxy.make_url("/metrics")) as resp:
        assert bogus not in await resp.text()
