"""Structured output and logprobs through the official openai SDK against the emulator."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import recorded_requests


class Tag(BaseModel):
    label: str
    weight: float


class Person(BaseModel):
    name: str
    age: int
    tags: list[Tag]
    nickname: str | None


async def test_json_schema_answer_parses_into_a_pydantic_model(openai_client: Any, http: Any, emulator: Any) -> None:
    done = await openai_client.chat.completions.parse(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Describe a person"}], response_format=Person)
    person = done.choices[0].message.parsed
    assert isinstance(person, Person)
    cfg = (await recorded_requests(http, emulator))[-1]["body"]["generationConfig"]
    assert cfg["responseMimeType"] == "application/json"
    schema = cfg["responseJsonSchema"]
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"name", "age", "tags", "nickname"}
    assert "$defs" in schema and "Tag" in schema["$defs"]


async def test_json_object_mode_returns_json(openai_client: Any, http: Any, emulator: Any) -> None:
    import json

    reply = await openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Give JSON"}],
        response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    cfg = (await recorded_requests(http, emulator))[-1]["body"]["generationConfig"]
    assert cfg == {"responseMimeType": "application/json"}


async def test_invalid_response_format_is_a_400_naming_it(openai_client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}], response_format={"type": "xml"})
    assert info.value.body["param"] == "response_format.type"


async def test_logprobs_on_gemini_25_flash_buffered(openai_client: Any, http: Any, emulator: Any) -> None:
    reply = await openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Say something"}], logprobs=True,
        top_logprobs=2)
    content = reply.choices[0].logprobs.content
    words = reply.choices[0].message.content.split()
    assert [t.token for t in content] == words
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in content)
    assert all(t.bytes == list(t.token.encode()) and t.logprob < 0 for t in content)
    cfg = (await recorded_requests(http, emulator))[-1]["body"]["generationConfig"]
    assert (cfg["responseLogprobs"], cfg["logprobs"]) == (True, 2)


async def test_logprobs_on_gemini_25_flash_streamed(openai_client: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Say something"}], logprobs=True, stream=True)
    text, tokens = "", []
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs:
                tokens += [t.token for t in choice.logprobs.content]
    assert tokens and tokens == text.split()


async def test_logprobs_on_a_model_without_them_pass_geminis_400_on(openai_client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.chat.completions.create(
            model="gemini-2.5-pro", messages=[{"role": "user", "content": "x"}], logprobs=True)
    assert "Logprobs is not enabled for models/gemini-2.5-pro" in info.value.body["message"]
