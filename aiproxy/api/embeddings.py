"""POST /v1/embeddings: OpenAI's embeddings API on the provider the model name resolves to.

The provider embeds the inputs in slices (for Gemini: embedContent for one input,
batchEmbedContents for several, aiproxy/providers/gemini/embeddings.py). Embed responses carry
no token counts, so usage comes from the provider's own token count (Gemini's `countTokens`; one
extra small call) and only if that fails is it estimated (billing.estimate: ceil(chars / 4)),
flagged `"estimated": true` in `usage` and as unreported in the ledger. The request is metered
exactly once, like chat, and billed to the identity every endpoint uses (`access.identity`): the
preflight checks (keys, limits, budgets, credits) run first, and the metering is handed to the
middleware as soon as the upstream has embedded a first slice, carrying an estimate of the slices
done so far, so a client that hangs up later (or during the count) is still billed for them. When
a later slice fails, the slices the upstream did are billed (counted tokens, status
`upstream_error`) and the client gets the error; a proxy fault after the upstream's work bills
the estimate with status `internal_error`, never $0.
"""

from __future__ import annotations

import asyncio
import struct
from base64 import b64encode
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.access.identity import billing_user
from aiproxy.api.chat import read_json
from aiproxy.appkeys import (
    ADMISSION_KEY,
    CLIENT_REQUEST_ID_KEY,
    METER_KEY,
    METERING_KEY,
    PROVIDERS_KEY,
    REQUEST_ID_KEY,
    RESPONSE_CACHE_KEY,
)
from aiproxy.billing.estimate import estimate_text_tokens
from aiproxy.billing.record import CLIENT_DISCONNECTED, INTERNAL_ERROR, UPSTREAM_ERROR, Metering
from aiproxy.cache.hit import record_hit
from aiproxy.openai.types import parse_embeddings_request
from aiproxy.providers.base import Provider


def encode_vector(values: list[float], fmt: str) -> list[float] | str:
    """OpenAI's base64 form: the little-endian float32 bytes of the vector."""
    if fmt == "float":
        return values
    return b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


async def measure_usage(provider: Provider, model: str, texts: list[str], m: Metering) -> None:
    """Tokens of the texts the upstream embedded: its own count, else the flagged estimate."""
    counted = await provider.count_tokens(model, texts)
    m.prompt_tokens = m.total_tokens = counted if counted is not None else estimate_text_tokens(sum(map(len, texts)))
    m.reported = counted is not None


async def embeddings(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request)
    req = parse_embeddings_request(body)  # every field type-checked: a 400 naming it otherwise
    model, texts, dims, fmt = req.model, req.texts, req.dimensions, req.format
    provider, upstream_model = app[PROVIDERS_KEY].resolve_embedding(model)
    user = billing_user(body.get("user_id"), body.get("user"))
    chars = sum(len(t) for t in texts)
    m = Metering(request_id=request[REQUEST_ID_KEY], client_request_id=request.get(CLIENT_REQUEST_ID_KEY), user=user,
                 requested_model=model, upstream_model=upstream_model, endpoint="embeddings", prompt_chars=chars,
                 provider=provider.name, prompt_estimate=estimate_text_tokens(chars))
    await app[ADMISSION_KEY].admit(request, m, 0)
    cache = app[RESPONSE_CACHE_KEY]  # RESPONSE_CACHE: the same texts, model and dimensions give the same vectors
    plan = await cache.lookup(request, {"input": texts, "dimensions": dims}, provider.name, upstream_model, m.user)
    if plan is not None and plan.hit is not None:
        m.prompt_tokens = m.total_tokens = int(plan.hit["prompt_tokens"])
        m.reported = bool(plan.hit["reported"])
        await record_hit(request, m)
        return embeddings_response(plan.hit["vectors"], fmt, model, m)

    done: list[str] = []  # texts of the slices the upstream embedded (and will bill)
    vectors: list[list[float]] = []
    try:
        async for slice_texts, slice_vectors in provider.embed(upstream_model, texts, dims):
            done += slice_texts
            vectors += slice_vectors
            # The upstream did this work: billed however the request ends from here, an estimate until counted
            m.prompt_tokens = m.total_tokens = estimate_text_tokens(sum(map(len, done)))
            request[METERING_KEY] = m
    except asyncio.CancelledError:
        m.status = CLIENT_DISCONNECTED
        raise
    except Exception:
        if done:  # a later slice failed: bill the ones the upstream did, then answer the error
            m.status = UPSTREAM_ERROR
            await measure_usage(provider, upstream_model, done, m)
            await app[METER_KEY].finish(m)
        raise
    try:
        await measure_usage(provider, upstream_model, texts, m)
        answer = embeddings_response(vectors, fmt, model, m)
    except BaseException as exc:  # gone during the count, or a proxy fault: bill the estimate, never $0
        m.status = CLIENT_DISCONNECTED if isinstance(exc, asyncio.CancelledError) else INTERNAL_ERROR
        if not m.reported:
            m.prompt_tokens = m.total_tokens = m.prompt_estimate
        raise
    await app[METER_KEY].finish(m)
    await cache.remember_embeddings(request, m, {"vectors": vectors, "prompt_tokens": m.prompt_tokens,
                                                 "reported": m.reported})
    return answer


def embeddings_response(vectors: list[list[float]], fmt: str, model: str, m: Metering) -> web.Response:
    usage: dict[str, Any] = {"prompt_tokens": m.prompt_tokens, "total_tokens": m.total_tokens}
    if not m.reported:
        usage["estimated"] = True
    body = jsonutil.dumps({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode_vector(v, fmt)}
                 for i, v in enumerate(vectors)],
        "model": model,
        "usage": usage,
    })
    return web.Response(body=body, content_type="application/json")

