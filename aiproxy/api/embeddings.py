"""POST /v1/embeddings: OpenAI's embeddings API on Gemini's embedContent / batchEmbedContents.

One input → embedContent, several → batchEmbedContents (in slices Gemini accepts). Gemini's
embed responses carry no token counts, so usage comes from the embedding model's own
`countTokens` (gemini-embedding-001 supports it; one extra small call) and only if that fails
is it estimated as ceil(chars / 4), flagged `"estimated": true` in `usage` and as unreported in
the ledger. The request is metered exactly once, like chat: the preflight checks (keys, limits,
budgets, credits) run first, and the metering is handed to the middleware as soon as Gemini has
done the work, so a client that hangs up during the count is still billed.
"""

from __future__ import annotations

import struct
from base64 import b64encode
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.api.chat import read_json
from aiproxy.appkeys import METERING_KEY, METER_KEY, MODELS_KEY, PREFLIGHT_KEY, REQUEST_ID_KEY, UPSTREAM_KEY
from aiproxy.billing.meter import estimate_tokens
from aiproxy.billing.record import Metering
from aiproxy.errors import ProxyError
from aiproxy.openai_types import parse_embeddings_request
from aiproxy.upstream import GeminiClient

BATCH_LIMIT = 100  # requests per batchEmbedContents call


def encode_vector(values: list[float], fmt: str) -> list[float] | str:
    """OpenAI's base64 form: the little-endian float32 bytes of the vector."""
    if fmt == "float":
        return values
    return b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def _embed_request(model: str, text: str, dims: int | None) -> dict[str, Any]:
    req: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
    if dims is not None:
        req["outputDimensionality"] = dims
    return req


async def embed_texts(upstream: GeminiClient, model: str, texts: list[str], dims: int | None) -> list[list[float]]:
    if len(texts) == 1:
        body = _embed_request(model, texts[0], dims)
        del body["model"]
        answer = await upstream.call_json("POST", f"models/{model}:embedContent", body)
        return [answer["embedding"]["values"]]
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH_LIMIT):
        requests = [_embed_request(model, t, dims) for t in texts[start:start + BATCH_LIMIT]]
        answer = await upstream.call_json("POST", f"models/{model}:batchEmbedContents", {"requests": requests})
        vectors.extend(e["values"] for e in answer["embeddings"])
    return vectors


async def count_prompt_tokens(upstream: GeminiClient, model: str, texts: list[str]) -> int | None:
    """Gemini's own count for the inputs, or None when countTokens is unavailable."""
    try:
        answer = await upstream.call_json(
            "POST", f"models/{model}:countTokens", {"contents": [{"parts": [{"text": t}]} for t in texts]})
        return int(answer["totalTokens"])
    except (ProxyError, KeyError, TypeError, ValueError):
        return None


async def embeddings(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request)
    req = parse_embeddings_request(body)  # every field type-checked: a 400 naming it otherwise
    model, texts, dims, fmt = req.model, req.texts, req.dimensions, req.format
    upstream_model = app[MODELS_KEY].resolve_embedding(model)
    user = body.get("user") if isinstance(body.get("user"), str) and body.get("user") else "anonymous"
    chars = sum(len(t) for t in texts)
    m = Metering(request_id=request[REQUEST_ID_KEY], user=user, requested_model=model,
                 upstream_model=upstream_model, endpoint="embeddings", prompt_chars=chars)
    for check in app[PREFLIGHT_KEY]:
        await check(request, m, 0)

    upstream = app[UPSTREAM_KEY]
    vectors = await embed_texts(upstream, upstream_model, texts, dims)
    request[METERING_KEY] = m  # Gemini did the work: billed however the request ends from here
    counted = await count_prompt_tokens(upstream, upstream_model, texts)
    m.prompt_tokens = m.total_tokens = counted if counted is not None else estimate_tokens(chars)
    m.reported = counted is not None
    usage: dict[str, Any] = {"prompt_tokens": m.prompt_tokens, "total_tokens": m.total_tokens}
    if counted is None:
        usage["estimated"] = True
    await app[METER_KEY].finish(m)
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode_vector(v, fmt)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": usage,
    }
    return web.Response(body=jsonutil.dumps(answer), content_type="application/json")
