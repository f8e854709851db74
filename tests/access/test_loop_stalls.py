"""One hostile body must not stall every other request (issue 11 item 2).

The bodies that held the event loop for seconds (740,000 tiny text parts in 20 MB; 2,048
messages of 360 parts; an ignored field holding a 10-million-element array) are sent to a real
proxy while another task asks GET /health every 50 ms. Each must be refused with OpenAI's error
JSON, and no /health answer may take longer than 250 ms. Wall-clock by design: the promise is
about time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from aiproxy.http.json_shape import ShapeViolation, check_json_shape

HEALTH_BUDGET_S = 0.25
POLL_EVERY_S = 0.05
PART = {"type": "text", "text": "a"}


def hostile_bodies() -> dict[str, bytes]:
    """Built once, before the clock starts: building them is the client's cost, not the proxy's."""
    model = "gemini-2.5-flash"
    return {
        "740k-tiny-parts-20MB": orjson.dumps({"model": model,
                                              "messages": [{"role": "user", "content": [PART] * 740_000}]}),
        "2048-messages-x-360-parts": orjson.dumps(
            {"model": model, "messages": [{"role": "user", "content": [PART] * 360}] * 2048}),
        "ignored-field-10M-array": orjson.dumps(
            {"model": model, "messages": [{"role": "user", "content": "hi"}], "x": [0] * 10_000_000}),
    }


async def test_hostile_bodies_are_refused_without_stalling_health(proxy_url: str) -> None:
    bodies = hostile_bodies()
    latencies: list[float] = []
    stop = asyncio.Event()

    async with aiohttp.ClientSession() as http:
        async def poll_health() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(f"{proxy_url}/health") as resp:
                    assert resp.status == 200
                    await resp.read()
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(POLL_EVERY_S)

        poller = asyncio.create_task(poll_health())
        await asyncio.sleep(3 * POLL_EVERY_S)  # the poller is warm before the first body
        answers: dict[str, tuple[int, Any]] = {}
        for name, raw in bodies.items():
            async with http.post(f"{proxy_url}/v1/chat/completions", data=raw,
                                 headers={"Content-Type": "application/json"}) as resp:
                answers[name] = (resp.status, await resp.json())
        await asyncio.sleep(3 * POLL_EVERY_S)
        stop.set()
        await poller

    for name, (status, body) in answers.items():
        assert status in (400, 413), (name, status, body)
        assert set(body["error"]) == {"message", "type", "param", "code"}, name
        assert body["error"]["type"] == "invalid_request_error", name
    assert len(latencies) >= 6
    assert max(latencies) <= HEALTH_BUDGET_S, f"slowest /health {max(latencies) * 1000:.0f} ms of {len(latencies)}"


@pytest.mark.parametrize(("status", "body"), [
    (400, {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [PART] * 5},
                                                     {"role": "user", "content": "x"}]}),
    (400, {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [PART] * 3}] * 3}),
])
async def test_content_part_limits_per_message_and_per_request(proxy_factory: Any, status: int,
                                                               body: dict[str, Any]) -> None:
    proxy = await proxy_factory(max_content_parts_per_message=4, max_content_parts=8)
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
            err = (await resp.json())["error"]
            assert resp.status == status and err["code"] == "too_many_content_parts"
    assert err["param"] == ("messages[0].content" if len(body["messages"][0]["content"]) > 4 else "messages")


async def test_bodies_at_the_part_limits_are_served(proxy_factory: Any) -> None:
    proxy = await proxy_factory(max_content_parts_per_message=4, max_content_parts=8)
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [PART] * 4}] * 2}
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
            assert resp.status == 200, await resp.text()


SHAPES = [
    pytest.param(b'{"a": 1}', 10, 1, None, id="small"),
    pytest.param(b'{"a": {}}', 10, 1, ShapeViolation("depth", 1), id="two-levels-over-one"),
    pytest.param(b"[[[]]]", 10, 3, None, id="three-levels"),
    pytest.param(b"[[[[]]]]", 10, 3, ShapeViolation("depth", 3), id="four-levels-over-three"),
    pytest.param(b'[[],[[]],{"a":[1,{"b":2}]}]', 20, 4, None, id="siblings-do-not-add-depth"),
    pytest.param(b'{"t": "[[[[[[[[,,,,,,,,,,:::::"}', 5, 1, None, id="brackets-and-commas-in-strings-do-not-count"),
    pytest.param(b'{"t": "a\\"[[[[[[\\\\", "u": 1}', 6, 1, None, id="escaped-quotes-and-backslashes"),
    pytest.param(b"[" + b"0," * 20 + b"0]", 20, 2, ShapeViolation("values", 20), id="too-many-numbers"),
    pytest.param(b"[" + b'"s",' * 20 + b'"s"]', 20, 2, ShapeViolation("values", 20), id="too-many-strings"),
    pytest.param(b"[" + b"0," * 18 + b"0]", 20, 2, None, id="just-under"),
    pytest.param(b"[[[[" + b" " * 100, 10, 2, None, id="unbalanced-is-for-the-parser"),
]


@pytest.mark.parametrize(("raw", "max_values", "max_depth", "expected"), SHAPES)
def test_json_shape_from_raw_bytes(raw: bytes, max_values: int, max_depth: int,
                                   expected: ShapeViolation | None) -> None:
    assert check_json_shape(raw, max_values, max_depth) == expected
