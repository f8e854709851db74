"""The models the OpenAI emulator serves (a few real ids, and `llama3.2` for the
OpenAI-compatible-server tests), each chat or embedding."""

from __future__ import annotations

CREATED = 1_715_367_049

CHAT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini",
               "o3", "o4-mini", "llama3.2")
REASONING_MODELS = frozenset({"gpt-5", "gpt-5-mini", "o3", "o4-mini"})
EMBEDDING_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def model_object(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "system"}


def all_models() -> list[dict[str, object]]:
    return [model_object(m) for m in (*CHAT_MODELS, *EMBEDDING_MODELS)]
