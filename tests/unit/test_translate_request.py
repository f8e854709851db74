"""Golden tests: OpenAI chat request -> the exact Gemini generateContent body."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.gemini.request import build_gemini_request


def gemini(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    req = parse_chat_request({"model": "gpt-4o", "messages": messages, **params})
    return build_gemini_request(req, "gemini-2.5-pro")


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


CONVERSATIONS = [
    pytest.param(
        [user("Hi")],
        {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
        id="one-user-turn",
    ),
    pytest.param(
        [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Answer in German."},
         user("Hi"), {"role": "system", "content": "Never swear."}],
        {"systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in German."},
                                         {"text": "Never swear."}]},
         "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
        id="system-and-developer-in-order",
    ),
    pytest.param(
        [user("Hi"), {"role": "assistant", "content": "Hello!"}, user("How are you?")],
        {"contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                      {"role": "model", "parts": [{"text": "Hello!"}]},
                      {"role": "user", "parts": [{"text": "How are you?"}]}]},
        id="assistant-becomes-model",
    ),
    pytest.param(
        [user("one"), user([{"type": "text", "text": "two"}, {"type": "text", "text": "three"}]),
         {"role": "assistant", "content": "a"}, {"role": "assistant", "content": [{"type": "text", "text": "b"}]}],
        {"contents": [{"role": "user", "parts": [{"text": "one"}, {"text": "two"}, {"text": "three"}]},
                      {"role": "model", "parts": [{"text": "a"}, {"text": "b"}]}]},
        id="same-role-turns-merged",
    ),
    pytest.param(
        [user("Hi"), {"role": "assistant", "content": None}, {"role": "assistant", "content": ""}, user("again")],
        {"contents": [{"role": "user", "parts": [{"text": "Hi"}, {"text": "again"}]}]},
        id="empty-assistant-turns-dropped-then-merged",
    ),
    pytest.param(
        [{"role": "system", "content": "You are a poet."}, {"role": "developer", "content": "Rhyme."}],
        {"contents": [{"role": "user", "parts": [{"text": "You are a poet."}, {"text": "Rhyme."}]}]},
        id="system-only-becomes-the-user-turn",
    ),
    pytest.param(
        [{"role": "system", "content": [{"type": "text", "text": "Sys"}]}, user("Hi")],
        {"systemInstruction": {"parts": [{"text": "Sys"}]},
         "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
        id="system-as-text-parts",
    ),
    pytest.param(
        [user("Hi"), {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}],
        {"contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                      {"role": "model", "parts": [{"text": "I can't."}]}]},
        id="refusal-part-kept-as-text",
    ),
]


@pytest.mark.parametrize(("messages", "expected"), CONVERSATIONS)
def test_conversation_translation(messages: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert gemini(messages) == expected


GENERATION_CONFIGS = [
    pytest.param({}, None, id="none-when-nothing-set"),
    pytest.param({"temperature": 0.2}, {"temperature": 0.2}, id="temperature"),
    pytest.param({"temperature": 0}, {"temperature": 0}, id="temperature-zero-kept"),
    pytest.param({"top_p": 0.9}, {"topP": 0.9}, id="top_p"),
    pytest.param({"max_tokens": 100}, {"maxOutputTokens": 100}, id="max_tokens"),
    pytest.param({"max_completion_tokens": 50}, {"maxOutputTokens": 50}, id="max_completion_tokens"),
    pytest.param({"max_tokens": 100, "max_completion_tokens": 50}, {"maxOutputTokens": 50},
                 id="max_completion_tokens-wins"),
    pytest.param({"stop": "END"}, {"stopSequences": ["END"]}, id="stop-string"),
    pytest.param({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}, id="stop-list"),
    pytest.param({"stop": []}, None, id="stop-empty-list-omitted"),
    pytest.param({"seed": 42}, {"seed": 42}, id="seed"),
    pytest.param({"presence_penalty": 0.5, "frequency_penalty": -0.5},
                 {"presencePenalty": 0.5, "frequencyPenalty": -0.5}, id="penalties"),
    pytest.param({"n": 1}, None, id="n-1-omitted"),
    pytest.param({"n": 3}, {"candidateCount": 3}, id="n-3-candidates"),
    pytest.param(
        {"temperature": 1.5, "top_p": 0.5, "max_completion_tokens": 7, "stop": "x", "seed": 1,
         "presence_penalty": 1, "frequency_penalty": 2, "n": 2},
        {"temperature": 1.5, "topP": 0.5, "maxOutputTokens": 7, "stopSequences": ["x"], "seed": 1,
         "presencePenalty": 1, "frequencyPenalty": 2, "candidateCount": 2},
        id="all-together",
    ),
    pytest.param({"user": "u1", "user_id": "b1", "stream": True, "logit_bias": {"1": 2}, "store": True}, None,
                 id="identity-and-unknown-fields-not-sent-upstream"),
]


@pytest.mark.parametrize(("params", "expected"), GENERATION_CONFIGS)
def test_generation_config(params: dict[str, Any], expected: dict[str, Any] | None) -> None:
    body = gemini([user("Hi")], **params)
    assert body.get("generationConfig") == expected
    assert set(body) <= {"contents", "generationConfig"}


BAD_CONTENT = [
    pytest.param([user("")], "messages[0].content", id="empty-string"),
    pytest.param([user(None)], "messages[0].content", id="null"),
    pytest.param([user([])], "messages[0].content", id="empty-list"),
    pytest.param([{"role": "system", "content": "s"}, user([{"type": "text", "text": ""}])], "messages[1].content",
                 id="only-empty-text-part"),
    pytest.param([user([{"type": "text", "text": 5}])], "messages[0].content[0].text", id="text-not-a-string"),
    pytest.param([user([{"type": "hologram"}])], "messages[0].content[0].type", id="unknown-part-type"),
    # Gemini rejects a turn with no parts ("contents.parts must not be empty"): catch it here.
    pytest.param([{"role": "system", "content": ""}], "messages", id="only-empty-system"),
    pytest.param([{"role": "assistant", "content": ""}], "messages", id="only-empty-assistant"),
]


@pytest.mark.parametrize(("messages", "param"), BAD_CONTENT)
def test_bad_user_content_is_400_naming_the_param(messages: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(ProxyError) as info:
        gemini(messages)
    assert info.value.status == 400
    assert info.value.param == param
    assert param in info.value.message


def test_translated_bodies_validate_as_google_genai_types() -> None:
    """Field names are checked against google-genai's own models so they cannot drift."""
    from google.genai import types

    body = gemini(
        [{"role": "system", "content": "S"}, user("Hi"), {"role": "assistant", "content": "Yo"}, user("Bye")],
        **{"temperature": 1.5, "top_p": 0.5, "max_completion_tokens": 7, "stop": ["x"], "seed": 1,
           "presence_penalty": 1, "frequency_penalty": 2, "n": 2},
    )
    for content in body["contents"]:
        parsed = types.Content.model_validate(content)
        assert parsed.model_dump(by_alias=True, exclude_none=True) == content
    config = types.GenerateContentConfig.model_validate(body["generationConfig"])
    assert config.model_dump(by_alias=True, exclude_none=True) == body["generationConfig"]
    system = types.Content.model_validate(body["systemInstruction"])
    assert system.model_dump(by_alias=True, exclude_none=True) == body["systemInstruction"]
