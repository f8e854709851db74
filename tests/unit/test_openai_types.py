"""Client request validation: unknown fields ignored, wrong types a 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.openai_types import parse_chat_request

OK_MSG = [{"role": "user", "content": "hi"}]

BAD = [
    pytest.param({"messages": OK_MSG}, "model", "missing_required_parameter", id="missing-model"),
    pytest.param({"model": "gpt-4"}, "messages", "missing_required_parameter", id="missing-messages"),
    pytest.param({"model": "", "messages": OK_MSG}, "model", "invalid_value", id="empty-model"),
    pytest.param({"model": 5, "messages": OK_MSG}, "model", "invalid_value", id="model-not-string"),
    pytest.param({"model": "m", "messages": "hi"}, "messages", "invalid_value", id="messages-not-list"),
    pytest.param({"model": "m", "messages": []}, "messages", "invalid_value", id="messages-empty"),
    pytest.param({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter",
                 id="role-missing"),
    pytest.param({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value",
                 id="role-unknown"),
    pytest.param({"model": "m", "messages": [OK_MSG[0], {"role": "user", "content": 5}]}, "messages[1].content",
                 "invalid_value", id="content-number"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content",
                 "invalid_value", id="part-without-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "temperature": "hot"}, "temperature", "invalid_value",
                 id="temperature-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "temperature": 3}, "temperature", "invalid_value",
                 id="temperature-range"),
    pytest.param({"model": "m", "messages": OK_MSG, "top_p": 1.5}, "top_p", "invalid_value", id="top_p-range"),
    pytest.param({"model": "m", "messages": OK_MSG, "max_tokens": 0}, "max_tokens", "invalid_value", id="max_tokens-0"),
    pytest.param({"model": "m", "messages": OK_MSG, "max_completion_tokens": "lots"}, "max_completion_tokens",
                 "invalid_value", id="max_completion_tokens-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "stop": 5}, "stop", "invalid_value", id="stop-number"),
    pytest.param({"model": "m", "messages": OK_MSG, "stop": list("abcdef")}, "stop", "invalid_value", id="stop-too-many"),
    pytest.param({"model": "m", "messages": OK_MSG, "stream": "maybe"}, "stream", "invalid_value", id="stream-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "stream_options": {"include_usage": "x"}},
                 "stream_options.include_usage", "invalid_value", id="include_usage-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "n": 0}, "n", "invalid_value", id="n-0"),
    pytest.param({"model": "m", "messages": OK_MSG, "presence_penalty": 9}, "presence_penalty", "invalid_value",
                 id="presence_penalty-range"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD)
def test_bad_requests_name_the_parameter(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(body)
    err = info.value
    assert err.status == 400
    assert err.body()["error"] == {"message": err.message, "type": "invalid_request_error", "param": param, "code": code}
    assert f"'{param}'" in err.message


@pytest.mark.parametrize("body", [[], "text", 5, None], ids=["list", "string", "number", "null"])
def test_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(body)
    assert (info.value.status, info.value.code) == (400, "invalid_json")


def test_unknown_fields_are_ignored_and_known_ones_read() -> None:
    req = parse_chat_request({
        "model": "gpt-4", "messages": OK_MSG, "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": 10, "max_completion_tokens": 20, "user": "u", "user_id": "billing-7",
        "logit_bias": {"50256": -100}, "store": False, "metadata": {"a": "b"}, "service_tier": "auto",
    })
    assert (req.stream, req.include_usage, req.output_limit, req.billing_user) == (True, True, 20, "billing-7")


@pytest.mark.parametrize(("extra", "who"), [({}, "anonymous"), ({"user": "u1"}, "u1"), ({"user": "u1", "user_id": "b2"}, "b2")])
def test_billing_user_prefers_user_id_then_user(extra: dict[str, str], who: str) -> None:
    assert parse_chat_request({"model": "m", "messages": OK_MSG, **extra}).billing_user == who


def test_include_usage_defaults_off() -> None:
    req = parse_chat_request({"model": "m", "messages": OK_MSG, "stream": True})
    assert (req.include_usage, req.output_limit) == (False, None)
