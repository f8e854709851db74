"""OpenAI-compatible servers an operator declares in the models file, as named providers.

    [providers.ollama]
    base_url = "http://127.0.0.1:11434/v1"
    api_key_env = "OLLAMA_API_KEY"   # optional: the environment variable holding its key
    dialect = "openai"               # the wire format it speaks

makes `ollama/llama3.2` a model name served by that server through OpenAIProvider. Tables come
from the shipped models file and MODELS_FILE (the latter wins per name); each is checked at
start so a typo fails the start, not a request. The key is read from the process environment
when the providers are built (a server without a key, like a local Ollama, gets no
Authorization header) and is registered with the log redactor at once.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiproxy.providers.modelnames import GEMINI_PREFIXES, MODEL_NAME

DIALECTS = frozenset({"openai"})
# Prefixes that name built-in providers; a declared provider cannot take them.
RESERVED = frozenset({*GEMINI_PREFIXES, "openai", "anthropic"})


@dataclass(frozen=True, slots=True)
class DeclaredProvider:
    name: str
    base_url: str
    api_key_env: str | None
    dialect: str

    def api_key(self, environ: Mapping[str, str]) -> str:
        return environ.get(self.api_key_env, "") if self.api_key_env else ""


def _declared(name: str, table: object) -> DeclaredProvider:
    where = f"models file [providers.{name}]"
    match = MODEL_NAME.fullmatch(f"{name}/x")
    if match is None or match["provider"] != name:
        raise ValueError(f"{where}: a provider name is lowercase letters, digits, _ and - (at most 32)")
    if name in RESERVED:
        raise ValueError(f"{where}: {name!r} is a built-in provider's name")
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    base_url, key_env, dialect = table.get("base_url"), table.get("api_key_env"), table.get("dialect", "openai")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"{where}: base_url must be an http:// or https:// URL")
    if key_env is not None and (not isinstance(key_env, str) or not key_env):
        raise ValueError(f"{where}: api_key_env must name an environment variable")
    if dialect not in DIALECTS:
        raise ValueError(f"{where}: dialect must be one of {sorted(DIALECTS)}, got {dialect!r}")
    return DeclaredProvider(name, base_url.rstrip("/"), key_env, str(dialect))


def load_declared_providers(*files: Path | None) -> list[DeclaredProvider]:
    """The `[providers.*]` tables of the given models files, later files winning per name."""
    found: dict[str, DeclaredProvider] = {}
    for path in files:
        if path is None:
            continue
        tables = tomllib.loads(Path(path).read_text()).get("providers", {})
        if not isinstance(tables, dict):
            raise ValueError("models file: [providers] must be a table of provider tables")
        for name, table in tables.items():
            found[str(name)] = _declared(str(name), table)
    return list(found.values())


def process_environment() -> Mapping[str, str]:
    return os.environ
