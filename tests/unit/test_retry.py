"""The retry policy, Retry-After parsing and fallback chains: pure functions, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aiproxy.providers.retry import (
    fallbacks_from_toml,
    merge_fallbacks,
    model_chain,
    parse_fallbacks,
    parse_retry_after,
    upstream_retry_after,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0), ("0.5", 0.5), (" 3 ", 3.0), ("-2", 0.0), (None, None), ("", None), ("soon", None),
    ("Thu, 01 Jan 2026 12:00:10 GMT", 10.0), ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def retry_info(delay: str) -> dict[str, Any]:
    return {"error": {"code": 429, "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                                               {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                "retryDelay": delay}]}}


@pytest.mark.parametrize(("body", "headers", "expected"), [
    pytest.param(retry_info("1.5s"), {}, 1.5, id="retry-info"),
    pytest.param(retry_info("31s"), {"Retry-After": "2"}, 2.0, id="header-wins"),
    pytest.param(retry_info("bad"), {}, None, id="unparseable-retry-info"),
    pytest.param({"error": {"code": 503}}, {}, None, id="nothing-given"),
    pytest.param({"error": "text"}, {}, None, id="error-not-an-object"),
])
def test_upstream_retry_after(body: dict[str, Any], headers: dict[str, str], expected: float | None) -> None:
    assert upstream_retry_after(body, headers) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ("", {}),
    ("gemini-2.5-pro=gemini-3.5-flash", {"gemini-2.5-pro": ("gemini-3.5-flash",)}),
    (" a = b , c ; d=e ;", {"a": ("b", "c"), "d": ("e",)}),
])
def test_parse_fallbacks(spec: str, expected: dict[str, tuple[str, ...]]) -> None:
    assert parse_fallbacks(spec) == expected


@pytest.mark.parametrize("spec", ["gemini-2.5-pro", "=b", "a=", "a=,"])
def test_parse_fallbacks_rejects_typos(spec: str) -> None:
    with pytest.raises(ValueError, match="expected model=fallback"):
        parse_fallbacks(spec)


def test_fallbacks_from_toml_and_merge(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[chat]\n"x" = "y"\n[fallbacks]\n"a" = "b"\n"c" = ["d", "e"]\n')
    from_file = fallbacks_from_toml(models)
    assert from_file == {"a": ("b",), "c": ("d", "e")}
    assert merge_fallbacks(from_file, {"a": ("z",)}) == {"a": ("z",), "c": ("d", "e")}


def test_fallbacks_from_toml_rejects_non_strings(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[fallbacks]\n"a" = [1]\n')
    with pytest.raises(ValueError, match="must be a model id"):
        fallbacks_from_toml(models)


@pytest.mark.parametrize(("model", "expected"), [
    ("a", ("a", "b", "c")), ("b", ("b",)), ("loop", ("loop", "x")),
])
def test_model_chain_tries_each_model_once(model: str, expected: tuple[str, ...]) -> None:
    assert model_chain(model, {"a": ("b", "c", "b"), "loop": ("loop", "x")}) == expected


def test_bad_fallback_setting_fails_at_start() -> None:
    from aiproxy.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="MODEL_FALLBACKS"):
        load_settings({"GEMINI_API_KEY": "k", "MODEL_FALLBACKS": "gemini-2.5-pro"})
