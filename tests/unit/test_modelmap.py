"""Model names: the seed's aliases, OpenAI names, native Gemini ids, and 404 for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiproxy.errors import ProxyError
from aiproxy.providers.modelmap import load_model_map

FLASH, PRO = "gemini-3.5-flash", "gemini-2.5-pro"


@pytest.mark.parametrize(("name", "target"), [
    ("gpt-3.5-turbo", FLASH), ("gemini-flash", FLASH), ("gpt-4", PRO), ("gemini-pro", PRO),
    ("gpt-4o", PRO), ("gpt-4o-mini", FLASH), ("gpt-4.1", PRO), ("o3-mini", FLASH),
    ("gemini-2.5-flash", "gemini-2.5-flash"), ("gemini-3-pro-preview", "gemini-3-pro-preview"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"), ("gemma-3-27b-it", "gemma-3-27b-it"),
])
def test_chat_names(name: str, target: str) -> None:
    assert load_model_map().resolve_chat(name) == target


@pytest.mark.parametrize("name", ["gpt-2", "claude-3", "text-embedding-3-small"])
def test_unknown_chat_names_are_404_model_not_found(name: str) -> None:
    with pytest.raises(ProxyError) as info:
        load_model_map().resolve_chat(name)
    assert (info.value.status, info.value.code, info.value.param) == (404, "model_not_found", "model")


def test_embedding_names() -> None:
    assert load_model_map().resolve_embedding("text-embedding-3-small") == "gemini-embedding-001"


def test_override_file_wins_by_name(tmp_path: Path) -> None:
    f = tmp_path / "models.toml"
    f.write_text('[chat]\n"gpt-4" = "gemini-2.5-flash"\n"house-model" = "gemini-2.5-flash-lite"\n')
    mm = load_model_map(f)
    assert (mm.resolve_chat("gpt-4"), mm.resolve_chat("house-model"), mm.resolve_chat("gemini-pro")) == (
        "gemini-2.5-flash", "gemini-2.5-flash-lite", PRO)
