"""OpenAI embeddings -> Gemini's embedContent / batchEmbedContents, and countTokens for usage.

One input -> embedContent, several -> batchEmbedContents in slices Gemini accepts. Gemini's embed
responses carry no token counts, so usage comes from the embedding model's own `countTokens`
(gemini-embedding-001 supports it; one extra small call); the handler estimates when it fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiproxy.errors import ProxyError
from aiproxy.providers.gemini.client import GeminiClient, model_path

BATCH_LIMIT = 100  # requests per batchEmbedContents call


def _embed_request(model: str, text: str, dims: int | None) -> dict[str, Any]:
    req: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
    if dims is not None:
        req["outputDimensionality"] = dims
    return req


async def embed_slices(upstream: GeminiClient, model: str, texts: list[str],
                       dims: int | None) -> AsyncIterator[tuple[list[str], list[list[float]]]]:
    """Each upstream call's texts and vectors, in order, as Gemini answers them."""
    if len(texts) == 1:
        body = _embed_request(model, texts[0], dims)
        del body["model"]
        answer = await upstream.call_json("POST", model_path(model, "embedContent"), body)
        yield texts, [answer["embedding"]["values"]]
        return
    for start in range(0, len(texts), BATCH_LIMIT):
        chunk = texts[start:start + BATCH_LIMIT]
        requests = [_embed_request(model, t, dims) for t in chunk]
        answer = await upstream.call_json("POST", model_path(model, "batchEmbedContents"), {"requests": requests})
        yield chunk, [e["values"] for e in answer["embeddings"]]


async def count_prompt_tokens(upstream: GeminiClient, model: str, texts: list[str]) -> int | None:
    """Gemini's own count for the inputs, or None when countTokens is unavailable."""
    try:
        answer = await upstream.call_json(
            "POST", model_path(model, "countTokens"), {"contents": [{"parts": [{"text": t}]} for t in texts]})
        return int(answer["totalTokens"])
    except (ProxyError, KeyError, TypeError, ValueError):
        return None
