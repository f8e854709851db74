"""ANTHROPIC_* settings: defaults, validation, the key redacted, the provider enabled only with a key."""

from __future__ import annotations

import logging

import pytest

from aiproxy.config import ConfigError, load_settings
from aiproxy.observability.redact import install, secret_settings
from aiproxy.providers.modelmap import ModelMap
from aiproxy.providers.registry import load_providers

BASE = {"GEMINI_API_KEY": "g-key-123456"}


def test_defaults_and_enabling() -> None:
    off = load_settings(BASE)
    assert off.anthropic_key == "" and off.anthropic_base_url == "https://api.anthropic.com"
    assert off.anthropic_default_max_tokens == 4096
    assert [p.name for p in load_providers(off, ModelMap())] == ["gemini"]
    on = load_settings({**BASE, "ANTHROPIC_API_KEY": "sk-ant-secret-1", "ANTHROPIC_BASE_URL": "http://h:1/anthropic/"})
    assert on.anthropic_base_url == "http://h:1/anthropic"
    providers = load_providers(on, ModelMap())
    assert [p.name for p in providers] == ["gemini", "anthropic"]
    provider, model = providers.resolve_chat("anthropic/claude-sonnet-4-5")
    assert (provider.name, model) == ("anthropic", "claude-sonnet-4-5")


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_BASE_URL"):
        load_settings({**BASE, "ANTHROPIC_BASE_URL": "api.anthropic.com"})


def test_key_is_a_redacted_secret(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({**BASE, "ANTHROPIC_API_KEY": "sk-ant-secret-1"})
    assert "sk-ant-secret-1" in secret_settings(settings)
    assert "sk-ant-secret-1" not in repr(settings)
    install(secret_settings(settings))
    with caplog.at_level(logging.INFO):
        logging.getLogger("aiproxy.test").info("key is %s", "sk-ant-secret-1")
    assert "sk-ant-secret-1" not in caplog.text
