"""Client model names -> Gemini model ids, loaded from data so operators can change it.

Every name is first checked against the one documented pattern (aiproxy/providers/modelnames.py), and
every id it resolves to against Gemini's id pattern, so only a plain model id ever reaches the
upstream URL.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from aiproxy.config import DATA_DIR
from aiproxy.errors import ProxyError
from aiproxy.providers.modelnames import GEMINI_MODEL_ID, GEMINI_PREFIXES, check_gemini_model_id, parse_model_name

DEFAULT_MODELS_FILE = DATA_DIR / "models.toml"


@dataclass(frozen=True)
class ModelMap:
    chat: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, str] = field(default_factory=dict)

    def resolve_chat(self, name: str) -> str:
        return self._resolve(name, self.chat)

    def resolve_embedding(self, name: str) -> str:
        return self._resolve(name, self.embeddings)

    def names(self) -> frozenset[str]:
        """Every alias and target the map knows (bounded by configuration: safe as metric labels)."""
        return frozenset(self.chat) | frozenset(self.chat.values()) | frozenset(self.embeddings) | frozenset(
            self.embeddings.values())

    @staticmethod
    def _resolve(name: str, table: dict[str, str]) -> str:
        parsed = parse_model_name(name)  # 400 for anything outside the pattern, before any lookup
        target = table.get(name)
        if target is None and parsed.provider == "gemini":  # gemini/<alias>; models/ is for Gemini ids only
            target = table.get(parsed.name)
        if target is None and parsed.provider in (None, *GEMINI_PREFIXES):
            if parsed.name.startswith(("gemini-", "gemma-", "learnlm-")):
                target = parsed.name
        if target is not None:
            return check_gemini_model_id(target)
        raise ProxyError(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )


def load_model_map(override: Path | None = None) -> ModelMap:
    """The shipped map, with an operator's file layered on top (its names win)."""
    chat: dict[str, str] = {}
    emb: dict[str, str] = {}
    for path in (DEFAULT_MODELS_FILE, override):
        if path is None:
            continue
        data = tomllib.loads(Path(path).read_text())
        chat.update({str(k): str(v) for k, v in data.get("chat", {}).items()})
        emb.update({str(k): str(v) for k, v in data.get("embeddings", {}).items()})
    for alias, target in (*chat.items(), *emb.items()):
        if not GEMINI_MODEL_ID.fullmatch(target):
            raise ValueError(f"models file: {alias!r} maps to {target!r}, which is not a Gemini model id")
    return ModelMap(chat=chat, embeddings=emb)
