"""GET /v1/models and /v1/models/{id} in OpenAI's list format.

The list is the configured aliases plus the upstream's own Gemini models (fetched once and
cached), so Lotti's connection check (`GET /v1/models`, counting `data`) sees everything usable.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.appkeys import MODELS_KEY, STATE_KEY, UPSTREAM_KEY
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy.models")
CACHE_SECONDS = 600.0
CREATED = 1_700_000_000  # a fixed timestamp: Gemini does not publish creation dates


def _model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": owner}


async def upstream_model_ids(request: web.Request) -> list[str]:
    """Gemini's generateContent/embedContent models, cached; empty when Gemini is unreachable."""
    state = request.app[STATE_KEY]
    cached = state.get("upstream_models")
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    ids: list[str] = []
    try:
        token = ""
        for _ in range(10):
            page = await request.app[UPSTREAM_KEY].call_json("GET", "models?pageSize=1000" + (f"&pageToken={token}" if token else ""))
            for m in page.get("models", ()):
                methods = m.get("supportedGenerationMethods") or ()
                if "generateContent" in methods or "embedContent" in methods:
                    ids.append(m["name"].removeprefix("models/"))
            token = page.get("nextPageToken") or ""
            if not token:
                break
    except ProxyError as exc:
        log.warning("could not list upstream models: %s", exc.message)
        return cached[1] if cached else []
    state["upstream_models"] = (time.monotonic(), ids)
    return ids


async def list_models(request: web.Request) -> web.Response:
    mm = request.app[MODELS_KEY]
    seen: set[str] = set()
    data = []
    for name in [*mm.chat, *mm.embeddings]:
        if name not in seen:
            seen.add(name)
            data.append(_model(name, "aiproxy"))
    for name in await upstream_model_ids(request):
        if name not in seen:
            seen.add(name)
            data.append(_model(name, "google"))
    return web.Response(body=jsonutil.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    mm = request.app[MODELS_KEY]
    if model_id in mm.chat or model_id in mm.embeddings:
        return web.Response(body=jsonutil.dumps(_model(model_id, "aiproxy")), content_type="application/json")
    if model_id in await upstream_model_ids(request):
        return web.Response(body=jsonutil.dumps(_model(model_id, "google")), content_type="application/json")
    raise ProxyError(404, f"The model `{model_id}` does not exist or you do not have access to it.",
                     param="model", code="model_not_found")
