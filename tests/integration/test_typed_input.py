"""Wrong JSON types through a real proxy: a 400 naming the field, never a 500 (issue 11 item 1).

Each body here crashed a handler before the request models typed every field.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

MODEL = "gemini-2.5-flash"
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages), **extra}


def tool_turns(result: dict[str, Any], call: dict[str, Any] = CALL, **extra: Any) -> dict[str, Any]:
    return chat({"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", **result}, **extra)


CRASHERS = [
    pytest.param("/v1/chat/completions", chat({"role": "user", "content": [{"type": "text", "text": 123}]}),
                 "messages[0].content[0].text", id="text-number"),
    pytest.param("/v1/chat/completions", chat({"role": "user", "content": [{"type": "text", "text": True}]}),
                 "messages[0].content[0].text", id="text-true"),
    pytest.param("/v1/chat/completions", tool_turns({"content": [{"type": "text", "text": None}]}),
                 "messages[2].content[0].text", id="tool-result-part-null"),
    pytest.param("/v1/chat/completions", tool_turns({"content": [{"type": "text", "text": 5}]}),
                 "messages[2].content[0].text", id="tool-result-part-number"),
    pytest.param("/v1/chat/completions", tool_turns({"content": "ok"}, {**CALL, "extra_content": {"google": 5}}),
                 "messages[1].tool_calls[0].extra_content.google", id="extra-content-google-number"),
    pytest.param("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi", "encoding_format": False},
                 "encoding_format", id="embeddings-encoding-format-false"),
    pytest.param("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi", "user": 5}, "user",
                 id="embeddings-user-number"),
]


@pytest.mark.parametrize(("path", "body", "param"), CRASHERS)
async def test_wrong_types_are_a_400_naming_the_field(proxy_url: str, http: aiohttp.ClientSession, path: str,
                                                     body: dict[str, Any], param: str) -> None:
    async with http.post(proxy_url + path, json=body) as resp:
        assert resp.status == 400, await resp.text()
        err = (await resp.json())["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, "invalid_value")


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_result_with_null_content_is_answered(proxy_url: str, http: aiohttp.ClientSession,
                                                        stream: bool) -> None:
    async with http.post(f"{proxy_url}/v1/chat/completions", json=tool_turns({"content": None}, stream=stream)) as resp:
        assert resp.status == 200, await resp.text()
