"""The three providers' error mappings answer the shared cases the same way (upstream_errors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.providers.anthropic.client import map_anthropic_error
from aiproxy.providers.gemini.client import map_upstream_error
from aiproxy.providers.openai.client import map_openai_error

SECRET = "sk-proxy-secret-key"

MAPPERS = [
    pytest.param("Gemini", lambda s, b, h: map_upstream_error(s, b, h, SECRET), id="gemini"),
    pytest.param("Anthropic", lambda s, b, h: map_anthropic_error(s, b, h, SECRET), id="anthropic"),
    pytest.param("OpenAI", lambda s, b, h: map_openai_error(s, b, h, "OpenAI", SECRET), id="openai"),
]


def body(message: str) -> dict[str, Any]:
    return {"error": {"message": message}}


@pytest.mark.parametrize(("upstream", "mapper"), MAPPERS)
@pytest.mark.parametrize(("status", "message", "headers", "expected"), [
    (401, "bad key", {}, (502, "upstream_auth_error", None,
                          "The proxy's {u} API key was rejected by {u}; the operator must fix the server "
                          "configuration (this is not a problem with your request).")),
    (429, "slow down", {"Retry-After": "2.1"}, (429, "rate_limit_exceeded", {"Retry-After": "3"}, "slow down")),
    (429, "slow down", {"Retry-After": "0"}, (429, "rate_limit_exceeded", {"Retry-After": "1"}, "slow down")),
    (429, "slow down", {}, (429, "rate_limit_exceeded", None, "slow down")),
    (504, "deadline", {}, (504, "upstream_timeout", None, "{u} timed out. deadline")),
    (500, "boom", {}, (502, "upstream_error", None, "{u} failed (HTTP 500): boom")),
    (500, f"key {SECRET} leaked", {}, (502, "upstream_error", None, "{u} failed (HTTP 500): key [redacted] leaked")),
    (500, "", {}, (502, "upstream_error", None, "{u} failed (HTTP 500): {u} answered HTTP 500")),
])
def test_shared_cases_are_answered_alike(upstream: str, mapper: Any, status: int, message: str,
                                         headers: dict[str, str], expected: tuple[Any, ...]) -> None:
    err = mapper(status, body(message), headers)
    want_status, want_code, want_headers, want_message = expected
    assert (err.status, err.code, err.headers or None) == (want_status, want_code, want_headers)
    assert err.message == want_message.format(u=upstream)
    assert SECRET not in err.message
