"""embedContent / batchEmbedContents: deterministic unit vectors derived from the text.

Same text, same vector; different texts, (practically) orthogonal vectors. ``outputDimensionality``
truncates as the real gemini-embedding-001 does (default 3072). A ``#emu`` directive in the
texts of one call scripts that call's ``error`` (see ``directive.py``), so a test can fail one
slice of a multi-call request, as a real quota or overload error would.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Any

from aiproxy.emulator import errors
from aiproxy.emulator.models import EMBEDDING_DIMENSIONS
from aiproxy.emulator.request import both_spellings, get

EMBED_FIELDS = both_spellings("model", "content", "taskType", "title", "outputDimensionality")


@lru_cache(maxsize=256)
def embedding_values(text: str, dims: int) -> tuple[float, ...]:
    raw = hashlib.shake_256(text.encode()).digest(dims * 2)
    ints = memoryview(raw).cast("h")
    norm = math.sqrt(sum(v * v for v in ints)) or 1.0
    return tuple(round(v / norm, 6) for v in ints)


def embed_one(body: Any, where: str | None = None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.invalid("Invalid JSON payload received. Expected an object.")
    unknown = [k for k in body if k not in EMBED_FIELDS]
    if unknown:
        raise errors.unknown_fields(unknown, where)
    content = body.get("content")
    if not content or not content.get("parts"):
        raise errors.invalid("* EmbedContentRequest.content: content is not specified\n")
    text = " ".join(p.get("text", "") for p in content["parts"])
    dims = int(get(body, "outputDimensionality") or EMBEDDING_DIMENSIONS)
    if not 1 <= dims <= EMBEDDING_DIMENSIONS:
        raise errors.invalid("* EmbedContentRequest.output_dimensionality: must be between 1 and "
                             f"{EMBEDDING_DIMENSIONS}\n")
    return {"values": list(embedding_values(text, dims))}


def embed_batch(body: Any, model_id: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.invalid("Invalid JSON payload received. Expected an object.")
    unknown = [k for k in body if k != "requests"]
    if unknown:
        raise errors.unknown_fields(unknown, None)
    requests = body.get("requests") or []
    if not requests:
        raise errors.invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
    out = []
    for i, item in enumerate(requests):
        name = item.get("model") if isinstance(item, dict) else None
        if name is not None and name.removeprefix("models/") != model_id:
            raise errors.invalid(
                f"Model name in request {i} ({name}) does not match the model in the URL (models/{model_id})."
            )
        out.append(embed_one(item, f"requests[{i}]"))
    return {"embeddings": out}


def embed_texts(body: Any) -> list[str]:
    """The text parts of an embedContent or batchEmbedContents body (for the directive scan)."""
    if not isinstance(body, dict):
        return []
    requests = body.get("requests")
    items = requests if isinstance(requests, list) else [body]
    texts: list[str] = []
    for item in items:
        content = item.get("content") if isinstance(item, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts
