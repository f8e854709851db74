"""End to end with the official `openai` SDK: real proxy, real emulator, loopback sockets.

Checks what a client sees (content, chunk order, usage, finish reasons), what Gemini was sent
(validated against google-genai's own types), and the billing line against Gemini's own counts.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.billing.pricing import format_usd, load_price_table
from aiproxy.emulator import directive_text
from tests.conftest import EMULATOR_KEY, emulator_url, generation_requests

BILLING_RE = re.compile(
    r"💰 BILLING \| User: (?P<user>.+) \| Model: (?P<model>.+) \| Tokens: (?P<inp>\d+) input \+ (?P<out>\d+) output = "
    r"(?P<total>\d+) total \| Cost: \$(?P<cost>[0-9.]+) USD \| Request ID: (?P<rid>\S+)$"
)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def last_upstream_request(http: aiohttp.ClientSession, emulator: TestServer) -> dict[str, Any]:
    """The proxy's last generation call: streamGenerateContent, or generateContent for a buffered request."""
    generate = await generation_requests(http, emulator)
    assert generate, "the proxy never called Gemini"
    return generate[-1]


async def gemini_usage(http: aiohttp.ClientSession, emulator: TestServer, model: str,
                       body: dict[str, Any]) -> dict[str, Any]:
    """Ask the emulator the same question directly: its usageMetadata is what Gemini would bill."""
    url = f"{emulator_url(emulator)}/v1beta/models/{model}:generateContent"
    async with http.post(url, data=jsonutil.dumps(body), headers={"x-goog-api-key": EMULATOR_KEY}) as resp:
        assert resp.status == 200
        return (await resp.json())["usageMetadata"]


def validate_with_google_genai(body: dict[str, Any]) -> None:
    """Every outgoing field must be one google-genai knows (its models forbid extra fields)."""
    from google.genai import types

    assert set(body) <= {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig",
                         "safetySettings", "cachedContent"}
    for content in body["contents"]:
        types.Content.model_validate(content)
    if "systemInstruction" in body:
        types.Content.model_validate(body["systemInstruction"])
    if "generationConfig" in body:
        types.GenerateContentConfig.model_validate(body["generationConfig"])


async def test_buffered_text(openai_client: Any, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    resp = await openai_client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "system", "content": "Be brief."},
                  *user("Hello " + directive_text(reply="Hi there, friend."))],
        temperature=0.3, max_completion_tokens=50, stop=["END"],
    )
    assert resp.object == "chat.completion" and resp.model == "gpt-4"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "Hi there, friend."
    assert resp.choices[0].finish_reason == "stop"
    sent = await last_upstream_request(http, emulator)
    # Buffered: one generateContent body, not a stream to fold.
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent" and sent["query"] == {}
    body = sent["body"]
    validate_with_google_genai(body)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 50, "stopSequences": ["END"]}
    meta = await gemini_usage(http, emulator, "gemini-2.5-pro", body)
    assert resp.usage.prompt_tokens == meta["promptTokenCount"]
    assert resp.usage.completion_tokens == meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0)
    assert resp.usage.total_tokens == meta["totalTokenCount"]


async def test_streaming_text_without_include_usage_carries_usage_on_the_final_chunk(openai_client: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=user("Tell me " + directive_text(reply="one two three four five six", chunks=3)),
        stream=True,
    )
    chunks = [c async for c in stream]
    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None, None, None]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three four five six"
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]
    assert [c.usage is not None for c in chunks] == [False, False, False, True]
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.model == "gemini-2.5-flash" for c in chunks)


async def test_streaming_include_usage_ends_with_a_choiceless_usage_chunk(openai_client: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=user("Hi " + directive_text(reply="abc def", chunks=2)), stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage.completion_tokens - usage.completion_tokens_details.reasoning_tokens == 2  # ceil(len("abc def")/4)


async def test_stream_and_buffered_agree(openai_client: Any) -> None:
    messages = user("Same question " + directive_text(words=30, chunks=5))
    buffered = await openai_client.chat.completions.create(model="gemini-2.5-flash", messages=messages)
    stream = await openai_client.chat.completions.create(model="gemini-2.5-flash", messages=messages, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == buffered.choices[0].message.content
    assert chunks[-1].usage.model_dump() == buffered.usage.model_dump()


async def test_streaming_wire_format_even_when_accept_is_json(proxy_url: str, http: aiohttp.ClientSession) -> None:
    """Lotti sends Accept: application/json while streaming; it must still get SSE."""
    body = {"model": "gpt-4", "stream": True, "messages": user("Hi " + directive_text(reply="a b", chunks=2))}
    async with http.post(f"{proxy_url}/v1/chat/completions", json=body,
                         headers={"Accept": "application/json", "Authorization": "Bearer lotti"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [jsonutil.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": "a"}
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop" and "usage" in payloads[-1]


@pytest.mark.parametrize(("native", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("LANGUAGE", "content_filter"), ("OTHER", "content_filter"),
])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
async def test_every_finish_reason(openai_client: Any, native: str, expected: str, stream: bool) -> None:
    messages = user("Go " + directive_text(finish=native, reply="partial answer"))
    if stream:
        chunks = [c async for c in await openai_client.chat.completions.create(model="gpt-4", messages=messages,
                                                                               stream=True)]
        last = chunks[-1].choices[0]
        assert last.finish_reason == expected
        assert last.model_extra["native_finish_reason"] == native
    else:
        resp = await openai_client.chat.completions.create(model="gpt-4", messages=messages)
        assert resp.choices[0].finish_reason == expected
        assert resp.choices[0].model_extra["native_finish_reason"] == native


async def test_max_tokens_cut_is_length(openai_client: Any) -> None:
    resp = await openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=user("Long " + directive_text(words=200)), max_tokens=5)
    assert resp.choices[0].finish_reason == "length"
    assert len(resp.choices[0].message.content) <= 20


async def test_blocked_prompt_is_a_content_filter_completion(openai_client: Any, billing_lines: Any) -> None:
    resp = await openai_client.chat.completions.create(model="gpt-4",
                                                       messages=user("bad " + directive_text(block="SAFETY")))
    choice = resp.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("content_filter", "")
    assert choice.model_extra["native_finish_reason"] == "SAFETY"
    assert resp.usage.completion_tokens == 0 and resp.usage.prompt_tokens > 0
    assert len(billing_lines()) == 1


async def test_n_candidates(openai_client: Any) -> None:
    resp = await openai_client.chat.completions.create(model="gemini-2.5-flash", messages=user("Pick"), n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content and c.finish_reason == "stop" for c in resp.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
async def test_billing_line_matches_geminis_usage(
    openai_client: Any, http: aiohttp.ClientSession, emulator: TestServer, billing_lines: Any, stream: bool
) -> None:
    messages = [{"role": "developer", "content": "You count."}, *user("Count to ten " + directive_text(words=40))]
    if stream:
        async for _ in await openai_client.chat.completions.create(model="gpt-4", messages=messages, stream=True,
                                                                   extra_body={"user_id": "acct-42"}):
            pass
    else:
        await openai_client.chat.completions.create(model="gpt-4", messages=messages, extra_body={"user_id": "acct-42"})
    (line,) = billing_lines()
    match = BILLING_RE.fullmatch(line)
    assert match, line
    meta = await gemini_usage(http, emulator, "gemini-2.5-pro", (await last_upstream_request(http, emulator))["body"])
    inp, out = meta["promptTokenCount"], meta["candidatesTokenCount"] + meta.get("thoughtsTokenCount", 0)
    assert (match["user"], match["model"]) == ("acct-42", "gpt-4")
    assert (int(match["inp"]), int(match["out"]), int(match["total"])) == (inp, out, meta["totalTokenCount"])
    price = load_price_table().price_for("gemini-2.5-pro")[0]
    assert match["cost"] == format_usd(price.cost(inp, out))
    assert Decimal(match["cost"]) > 0


async def test_billing_user_falls_back_to_user_then_anonymous(openai_client: Any, billing_lines: Any) -> None:
    await openai_client.chat.completions.create(model="gpt-4", messages=user("a"), user="end-user-7")
    await openai_client.chat.completions.create(model="gpt-4", messages=user("b"))
    assert [BILLING_RE.fullmatch(line)["user"] for line in billing_lines()] == ["end-user-7", "anonymous"]


async def test_usage_missing_upstream_is_estimated_and_still_billed(openai_client: Any, billing_lines: Any) -> None:
    resp = await openai_client.chat.completions.create(
        model="gpt-4", messages=user("x " + directive_text(no_usage=True, reply="12345678")))
    assert resp.usage is None
    (line,) = billing_lines()
    assert "+ 2 output" in line  # ceil(8 chars / 4)


async def test_thinking_tokens_are_billed_as_completion(openai_client: Any) -> None:
    """gemini-2.5-pro thinks by default; Gemini bills thoughts as output, so must the usage."""
    resp = await openai_client.chat.completions.create(model="gpt-4",
                                                       messages=user("Think " + directive_text(reply="Done.")))
    assert resp.choices[0].message.content == "Done."
    reasoning = resp.usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0 and resp.usage.completion_tokens == reasoning + 2  # "Done." is 2 tokens
