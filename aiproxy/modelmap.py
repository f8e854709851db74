"""Client model names -> Gemini model ids, loaded from data so operators can change it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from aiproxy.config import DATA_DIR
from aiproxy.errors import ProxyError

DEFAULT_MODELS_FILE = DATA_DIR / "models.toml"


@dataclass(frozen=True)
class ModelMap:
    chat: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, str] = field(default_factory=dict)

    def resolve_chat(self, name: str) -> str:
        return self._resolve(name, self.chat)

    def resolve_embedding(self, name: str) -> str:
        return self._resolve(name, self.embeddings)

    @staticmethod
    def _resolve(name: str, table: dict[str, str]) -> str:
        target = table.get(name)
        if target is not None:
            return target
        bare = name.removeprefix("models/")
        if bare.startswith(("gemini-", "gemma-", "learnlm-")) and "/" not in bare and "?" not in bare:
            return bare
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
    return ModelMap(chat=chat, embeddings=emb)
