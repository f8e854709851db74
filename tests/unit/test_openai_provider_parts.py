"""The OpenAI provider's pure parts: declared providers checked at start, the request passed
through, and usage counts validated before they can reach a price."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.declared import load_declared_providers
from aiproxy.providers.openai.request import build_openai_request
from aiproxy.providers.openai.usage import read_openai_usage


def models_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_declared_provider_read_and_later_file_wins(tmp_path: Path) -> None:
    first = models_file(tmp_path, '[providers.local]\nbase_url = "http://a/v1/"\n')
    second = tmp_path / "second.toml"
    second.write_text('[providers.local]\nbase_url = "http://b/v1"\napi_key_env = "LOCAL_KEY"\n')
    [p] = load_declared_providers(first, second)
    assert (p.name, p.base_url, p.api_key_env, p.dialect) == ("local", "http://b/v1", "LOCAL_KEY", "openai")
    assert p.api_key({"LOCAL_KEY": "k"}) == "k" and p.api_key({}) == ""


@pytest.mark.parametrize(("table", "problem"), [
    ('[providers.openai]\nbase_url = "http://a"', "built-in provider"),
    ('[providers.gemini]\nbase_url = "http://a"', "built-in provider"),
    ('[providers.Bad]\nbase_url = "http://a"', "lowercase"),
    ('[providers.x]\nbase_url = "ftp://a"', "base_url"),
    ('[providers.x]\nbase_url = "http://a"\ndialect = "anthropic-ish"', "dialect"),
    ('[providers.x]\nbase_url = "http://a"\napi_key_env = ""', "api_key_env"),
])
def test_bad_declarations_fail_the_start(tmp_path: Path, table: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_declared_providers(models_file(tmp_path, table))


def test_request_passed_through_with_proxy_fields_dropped() -> None:
    req = parse_chat_request({
        "model": "openai/gpt-4o", "user_id": "alice", "unknown_field": 1, "parallel_tool_calls": False,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "assistant", "reasoning_content": "hmm", "tool_calls": [
                         {"id": "c1", "function": {"name": "f", "arguments": "{}"},
                          "extra_content": {"google": {"thought_signature": "sig"}}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "42"}],
        "stream": False, "stream_options": None})
    assert build_openai_request(req, "gpt-4o") == {
        "model": "gpt-4o", "parallel_tool_calls": False, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "assistant", "tool_calls": [
                         {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "42"}]}


def test_usage_read_as_billed_and_corrected_when_impossible() -> None:
    good = read_openai_usage({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                              "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0},
                              "completion_tokens_details": {"reasoning_tokens": 30}})
    assert (good.prompt, good.completion, good.total, good.cached, good.reasoning, good.problems) == (
        100, 50, 150, 40, 30, ())
    bad = read_openai_usage({"prompt_tokens": -5, "completion_tokens": "7", "total_tokens": 1e30,
                             "prompt_tokens_details": {"cached_tokens": 9},
                             "completion_tokens_details": {"reasoning_tokens": 3}})
    assert (bad.prompt, bad.completion, bad.cached, bad.reasoning, bad.total) == (0, 0, 0, 0, 0)
    assert set(bad.problems) >= {"prompt_tokens", "completion_tokens", "cached_tokens>prompt_tokens",
                                 "reasoning_tokens>completion_tokens", "total_tokens"}
