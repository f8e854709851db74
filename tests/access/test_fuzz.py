"""Fuzzing the live server: schemathesis against /openapi.json, hypothesis-made OpenAI bodies.

Both run against a real loopback proxy (emulator upstream, a key required) on its own event loop
thread, so the synchronous fuzzers drive it over real sockets. The promise checked: no 5xx other
than the documented upstream ones, no hang (every call has a timeout), no traceback text.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aiproxy import jsonutil
from aiproxy.app import create_app
from aiproxy.http.hardening import server_limits
from aiproxy.openai.openapi import SPEC
from tests.access.conftest import add_key
from tests.conftest import EMULATOR_KEY, emulator_url, make_settings

UPSTREAM_STATUSES = {502, 503, 504}
FUZZ = settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))


class LiveStack:
    """Emulator + proxy on a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[TestServer] = []

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def start(self) -> tuple[str, str]:
        from aiproxy.emulator import EmulatorConfig, create_emulator_app

        emu = TestServer(create_emulator_app(EmulatorConfig(api_key=EMULATOR_KEY)), host="127.0.0.1")
        await emu.start_server()
        conf = make_settings(emulator_url(emu), upstream_timeout=10.0, upstream_idle_timeout=5.0)
        proxy = TestServer(create_app(conf), host="127.0.0.1")
        await proxy.start_server(**server_limits(conf))
        self.servers += [proxy, emu]
        key, _ = await add_key(proxy, user="fuzzer", admin=True)
        return str(proxy.make_url("")).rstrip("/"), key

    async def stop(self) -> None:
        for server in self.servers:
            await server.close()


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, dict[str, str]]]:
    stack = LiveStack()
    base, key = stack.run(stack.start())
    yield base, {"Authorization": f"Bearer {key}"}
    stack.run(stack.stop())
    stack.loop.call_soon_threadsafe(stack.loop.stop)
    stack.thread.join(timeout=10)


def assert_sane(status: int, text: str) -> None:
    assert status < 500 or status in UPSTREAM_STATUSES, (status, text[:500])
    assert "Traceback" not in text and 'File "' not in text


schema = schemathesis.openapi.from_dict(SPEC)


@schema.parametrize()
@FUZZ
def test_openapi_fuzz(case: Any, live: tuple[str, dict[str, str]]) -> None:
    base, auth = live
    response = case.call(base_url=base, headers={**(case.headers or {}), **auth}, timeout=15)
    assert_sane(response.status_code, response.text)


text = st.text(max_size=60)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                   st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(text, inner, max_size=3)), max_leaves=8)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries(
        {"url": st.one_of(text, st.just("data:image/jpeg;base64,/9j/4AAQ"), st.just("data:image/png;base64,@@"))})}),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": st.fixed_dictionaries(
        {"data": text, "format": st.sampled_from(["mp3", "wav", "x"])})}),
    st.dictionaries(text, json_value, max_size=3),
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "bogus"])},
    optional={"content": st.one_of(st.none(), text, st.lists(part, max_size=3)), "name": text,
              "tool_call_id": text, "tool_calls": st.lists(st.dictionaries(text, json_value, max_size=3), max_size=2)},
)
tool = st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.from_regex(r"[a-z_]{1,10}", fullmatch=True)},
    optional={"parameters": st.dictionaries(text, json_value, max_size=3), "description": text})})
hostile_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "gemini-flash", "gemini-2.5-pro", "nope", ""]),
     "messages": st.lists(message, max_size=4)},
    optional={
        "stream": st.booleans(), "stream_options": st.dictionaries(st.just("include_usage"), scalar),
        "max_tokens": st.integers(-5, 5000), "max_completion_tokens": scalar, "temperature": scalar, "top_p": scalar,
        "n": st.integers(-1, 10), "stop": st.one_of(text, st.lists(text, max_size=7)), "user": scalar,
        "user_id": text, "tools": st.lists(tool, max_size=2),
        "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), st.dictionaries(text, json_value)),
        "response_format": st.dictionaries(text, json_value, max_size=2), "reasoning_effort": scalar,
        "seed": scalar, "logprobs": scalar, "extra": json_value,
    },
)  # fmt: skip


words = st.text(min_size=1, max_size=60).filter(str.strip)
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": words})
plausible_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "gemini-flash", "gemini-2.5-pro"]),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]),
                                                 "content": st.one_of(words, st.lists(text_part, min_size=1,
                                                                                      max_size=3))}),
                          min_size=1, max_size=4)},
    optional={"stream": st.booleans(), "max_tokens": st.integers(1, 200), "temperature": st.floats(0, 2),
              "top_p": st.floats(0, 1), "user": text, "stop": st.lists(text, max_size=5),
              "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
              "tools": st.lists(tool, max_size=2), "reasoning_effort": st.sampled_from(["minimal", "low", "high"])},
)  # fmt: skip


@given(body=st.one_of(plausible_bodies, plausible_bodies, hostile_bodies, json_value))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_chat_endpoint_survives_generated_bodies(body: Any, live: tuple[str, dict[str, str]]) -> None:
    base, auth = live
    response = requests.post(base + "/v1/chat/completions", json=body, headers=auth, timeout=15)
    assert_sane(response.status_code, response.text)
    if response.status_code >= 400:
        err = response.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}


# ---- every JSON type at every position of valid bodies (issue 11 item 1) ----------------------
# Exhaustive rather than sampled: each body's every value (containers and the body itself
# included) is replaced by each value below, on every POST endpoint. The promise: no 5xx,
# always OpenAI's error JSON, and a 400 caused by a value of another JSON type names a field.

ODD_VALUES: list[Any] = [
    None, True, -1, 2**64, 1e308, "", "\u0000🙂", "x" * 100_000, [], [[None]], list(range(1000)), {"type": "text"},
]


# Free JSON the proxy passes on as it is (a JSON Schema, ignored metadata): replaced whole, not
# entered; what is inside a schema is Gemini's to judge (its own 400s are passed on).
FREE_JSON = frozenset({"parameters", "schema", "metadata"})


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if path and path[-1] in FREE_JSON:
        return
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*path, key))


def _replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _json_type(value: Any) -> str:
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def _media(raw: bytes, label: str) -> str:
    return f"data:{label};base64," + base64.b64encode(raw).decode()


_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\": \"UTC\"}"}}
VALID_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {
        "model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": "hi", "name": "ann"}],
        "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.5, "top_p": 1, "n": 1,
        "max_tokens": 20, "max_completion_tokens": 20, "stop": ["END"], "seed": 1, "user": "u",
        "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "reasoning_effort": "low",
        "parallel_tool_calls": True, "metadata": {"ignored": True}}),
    ("/v1/chat/completions", {
        "model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": _media(b"\x89PNG\r\n\x1a\n" + bytes(32), "image/jpeg"),
                                                "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"ID3" + bytes(32)).decode(),
                                                    "format": "mp3"}},
            {"type": "file", "file": {"file_data": _media(b"%PDF-1.4\n" + bytes(32), "application/pdf"),
                                      "filename": "a.pdf"}}]}]}),
    ("/v1/chat/completions", {
        "model": "gemini-2.5-flash", "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "tools": [{"type": "function", "function": {"name": "get_time", "description": "Now", "strict": True,
                                                    "parameters": {"type": "object", "properties": {
                                                        "tz": {"type": "string"}}, "required": ["tz"]}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "strict": True, "schema": {
            "type": "object", "properties": {"t": {"type": "string"}}}}},
        "messages": [{"role": "user", "content": "time?"},
                     {"role": "assistant", "content": None, "tool_calls": [_CALL]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]}),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 8,
                        "encoding_format": "base64", "user": "u"}),
]
MUTATIONS = [(endpoint, body, path, value) for endpoint, body in VALID_BODIES for path in _paths(body)
             for value in ODD_VALUES]


async def test_every_json_type_at_every_position_of_valid_bodies(proxy_url: str) -> None:
    failures: list[str] = []
    limit = asyncio.Semaphore(8)

    async def check(session: aiohttp.ClientSession, endpoint: str, body: Any, path: tuple[Any, ...],
                    value: Any) -> None:
        original = body
        for key in path:
            original = original[key]
        async with limit, session.post(proxy_url + endpoint, data=json.dumps(_replaced(body, path, value)),
                                       headers={"Content-Type": "application/json"}) as resp:
            text = await resp.text()
        where = f"{endpoint} {'.'.join(map(str, path)) or '<body>'} = {str(value)[:40]!r}: {resp.status} {text[:300]}"
        if resp.status >= 500 or "Traceback" in text:
            failures.append(where)
        elif resp.status >= 400:
            err = jsonutil.loads(text).get("error") if text.startswith("{") else None
            if not isinstance(err, dict) or set(err) != {"message", "type", "param", "code"}:
                failures.append("error shape: " + where)
            elif resp.status == 400 and path and _json_type(value) != _json_type(original) and not err["param"]:
                failures.append("no param: " + where)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(check(session, *m) for m in MUTATIONS))
    assert not failures, f"{len(failures)} of {len(MUTATIONS)}:\n" + "\n".join(failures[:30])
