"""The provider seam holds: the OpenAI side never reaches into a provider's package.

aiproxy/api (handlers), aiproxy/openai (request types, chunk folding, SSE) and aiproxy/billing
(the meter) talk to providers only through aiproxy.providers.base and the registry; one import
of aiproxy.providers.gemini there would make the next provider a rewrite instead of a folder.
The Gemini translation pipeline is a list written in request.py, not hooks registered on import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_NEUTRAL = ("aiproxy/api", "aiproxy/openai", "aiproxy/billing")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (function-local imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def provider_neutral_files() -> list[Path]:
    files = sorted(p for d in PROVIDER_NEUTRAL for p in (ROOT / d).rglob("*.py"))
    assert files, "the provider-neutral packages moved: update PROVIDER_NEUTRAL"
    return files


@pytest.mark.parametrize("path", provider_neutral_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_openai_side_never_imports_a_provider_package(path: Path) -> None:
    bad = sorted(m for m in imported_modules(path)
                 if m == "aiproxy.providers.gemini" or m.startswith("aiproxy.providers.gemini."))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: go through aiproxy.providers.base instead"


def test_gemini_package_import_registers_nothing() -> None:
    assert imported_modules(ROOT / "aiproxy/providers/gemini/__init__.py") == set()


def test_gemini_pipeline_is_one_ordered_list() -> None:
    from aiproxy.providers.gemini.parts import PART_TRANSLATORS
    from aiproxy.providers.gemini.request import MESSAGE_TRANSLATORS, REQUEST_EXTENDERS

    assert [f.__name__ for f in REQUEST_EXTENDERS] == [
        "extend_with_thinking", "extend_with_tools", "extend_with_response_format", "extend_with_logprobs"]
    assert sorted(MESSAGE_TRANSLATORS) == ["assistant", "function", "tool"]
    assert sorted(PART_TRANSLATORS) == ["file", "image_url", "input_audio", "refusal", "text"]
