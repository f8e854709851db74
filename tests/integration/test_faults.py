"""The fault suite: the real server against every emulator fault. For each one the client gets a
clear error or a complete answer, nothing hangs (asyncio timeouts guard, never assert), no
upstream stream stays open, and whatever Gemini spent is recorded exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.appkeys import METER_KEY
from aiproxy.billing.record import CLIENT_DISCONNECTED, OK, UPSTREAM_ERROR, UsageRecord
from aiproxy.openai.sse import DONE
from tests.integration.opshelp import Answer, chat, chat_body, wait_streams_closed

GUARD = 20.0  # seconds; a hang fails the test here instead of stalling the suite
SETTINGS = {"upstream_retries": 3, "upstream_retry_base_delay": 0.01, "upstream_retry_max_delay": 0.05,
            "upstream_idle_timeout": 0.4}


@pytest.fixture
async def faulty(proxy_factory: Any, emulator: TestServer, http: aiohttp.ClientSession) -> Any:
    """A proxy with fast retries and a short idle timeout; yields (base url, records) and checks
    after the test that no upstream stream was left open."""
    proxy = await proxy_factory(**SETTINGS)
    records: list[UsageRecord] = []
    proxy.app[METER_KEY].hooks.append(records.append)
    yield str(proxy.make_url("")).rstrip("/"), records
    assert await wait_streams_closed(http, emulator) == 0


async def guarded(coro: Any) -> Any:
    return await asyncio.wait_for(coro, GUARD)


def error_event(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200 and answer.events[-1] == "[DONE]"
    return jsonutil.loads(answer.events[-2])["error"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize("directive", [
    pytest.param({"error": 429, "error_times": 3}, id="429-storm"),
    pytest.param({"error": 503, "error_times": 2}, id="503-burst"),
    pytest.param({"error": 500, "error_times": 1}, id="500-once"),
    pytest.param({"chunks": 12, "chunk_delay_ms": 40}, id="slow-trickle"),
])
async def test_recovered_faults_give_a_complete_answer_billed_once(
        faulty: Any, http: aiohttp.ClientSession, billing_lines: Any, stream: bool, directive: dict[str, Any]) -> None:
    base, records = faulty
    answer = await guarded(chat(http, base, stream=stream, words=24, key=f"k-{stream}", **directive))
    assert answer.status == 200
    if stream:
        assert answer.body.endswith(DONE) and len(answer.text.split()) == 24
    else:
        assert len(answer.json()["choices"][0]["message"]["content"].split()) == 24
    (rec,) = records
    assert rec.status == OK and not rec.estimated
    if not stream:
        usage = answer.json()["usage"]
        assert (rec.prompt_tokens, rec.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert len(billing_lines()) == 1


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize(("directive", "status", "code"), [
    pytest.param({"error": 429}, 429, "rate_limit_exceeded", id="429-never-clears"),
    pytest.param({"error": 503}, 503, "upstream_unavailable", id="503-never-clears"),
])
async def test_faults_that_never_clear_give_a_clear_error_and_no_bill(
        faulty: Any, http: aiohttp.ClientSession, billing_lines: Any, stream: bool, directive: dict[str, Any],
        status: int, code: str) -> None:
    base, records = faulty
    answer = await guarded(chat(http, base, stream=stream, **directive))
    assert answer.status == status
    assert answer.json()["error"]["code"] == code
    assert records == [] and billing_lines() == []


MID_STREAM = [
    pytest.param("reset", 502, "upstream_error", id="reset"),
    pytest.param("truncate", 502, "upstream_error", id="truncated-sse"),
    pytest.param("malformed", 502, "upstream_error", id="malformed-json"),
    pytest.param("error_event", 502, "upstream_error", id="error-event"),
    pytest.param("stall", 504, "upstream_timeout", id="stall"),
]


@pytest.mark.parametrize(("mode", "status", "code"), MID_STREAM)
async def test_mid_stream_faults_end_the_stream_with_an_error_event(
        faulty: Any, http: aiohttp.ClientSession, billing_lines: Any, mode: str, status: int, code: str) -> None:
    base, records = faulty
    answer = await guarded(chat(http, base, words=40, chunks=8, fail_after=3, fail_mode=mode))
    assert len(answer.text) > 0  # what arrived before the fault was passed on
    err = error_event(answer)
    assert err["code"] == code and err["message"]
    (rec,) = records
    assert rec.status == UPSTREAM_ERROR and rec.prompt_tokens > 0 and rec.completion_tokens > 0
    assert len(billing_lines()) == 1


@pytest.mark.parametrize(("mode", "status", "code"), MID_STREAM)
async def test_mid_stream_faults_in_buffered_mode_are_http_errors(
        faulty: Any, http: aiohttp.ClientSession, billing_lines: Any, mode: str, status: int, code: str) -> None:
    base, records = faulty
    answer = await guarded(chat(http, base, stream=False, words=40, chunks=8, fail_after=3, fail_mode=mode))
    assert answer.status == status
    assert answer.json()["error"]["code"] == code
    (rec,) = records
    assert rec.status == UPSTREAM_ERROR
    assert len(billing_lines()) == 1


async def test_a_client_that_vanishes_frees_everything_and_is_billed_once(
        faulty: Any, emulator: TestServer, http: aiohttp.ClientSession, billing_lines: Any) -> None:
    base, records = faulty
    await guarded(chat(http, base, words=3))  # warm up: the session, pools and caches exist
    records.clear()
    billed_before = len(billing_lines())
    loop = asyncio.get_running_loop()
    baseline = len(asyncio.all_tasks())
    async with aiohttp.ClientSession() as client:
        resp = await client.post(f"{base}/v1/chat/completions",
                                 json=chat_body(words=400, chunks=200, chunk_delay_ms=50))
        first = await guarded(resp.content.readuntil(b"\n\n"))
        assert first.startswith(b"data: {")
        resp.close()  # the client walks away mid-stream
    assert await wait_streams_closed(http, emulator, within=GUARD) == 0  # upstream request cancelled
    deadline = loop.time() + GUARD
    while (len(records) != 1 or len(asyncio.all_tasks()) > baseline) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert len(asyncio.all_tasks()) <= baseline, [t.get_coro() for t in asyncio.all_tasks()]
    (rec,) = records
    assert rec.status == CLIENT_DISCONNECTED and rec.prompt_tokens > 0 and rec.completion_tokens > 0
    assert len(billing_lines()) - billed_before == 1
