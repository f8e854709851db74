"""`POST /openai/v1/embeddings`: OpenAI's embeddings, vectors from the Gemini emulator's
deterministic generator (same text, same vector), float or base64 as the client asks (the
`openai` SDK asks base64 by default)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from aiproxy.emulator.embeddings import embedding_values
from aiproxy.emulator.openai import errors
from aiproxy.emulator.openai.models import EMBEDDING_MODELS
from aiproxy.emulator.tokens import count_tokens


def embedding_inputs(body: Any) -> list[str]:
    """The input texts, or the 400 OpenAI answers for a missing or malformed `input`."""
    value = body.get("input") if isinstance(body, dict) else None
    if value is None:
        raise errors.invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise errors.invalid("'$.input' is invalid. Please check the API reference: "
                             "https://platform.openai.com/docs/api-reference.", "input")
    return texts


def embed(body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or model not in EMBEDDING_MODELS:
        raise errors.model_not_found(str(model))
    dims = body.get("dimensions")
    if dims is not None:
        if model == "text-embedding-ada-002":
            raise errors.invalid("This model does not support specifying dimensions.", "dimensions")
        if not isinstance(dims, int) or not 1 <= dims <= EMBEDDING_MODELS[model]:
            raise errors.invalid(f"Invalid value for 'dimensions' = {dims}. Must be between 1 and "
                                 f"{EMBEDDING_MODELS[model]}.", "dimensions")
    size = dims or EMBEDDING_MODELS[model]
    fmt = body.get("encoding_format") or "float"
    data = []
    for i, text in enumerate(texts):
        values = embedding_values(text, size)
        vector: Any = list(values) if fmt == "float" else base64.b64encode(
            struct.pack(f"<{size}f", *values)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = sum(count_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
