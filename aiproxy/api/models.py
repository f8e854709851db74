"""GET /v1/models and /v1/models/{id} in OpenAI's list format.

The list is the configured aliases and routes plus every provider's own models (`provider/id`
for all but the default provider; each provider fetches its list once and caches it), so
Lotti's connection check (`GET /v1/models`, counting `data`) sees everything usable.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.appkeys import MODELS_KEY, PROVIDERS_KEY
from aiproxy.errors import ProxyError

CREATED = 1_700_000_000  # a fixed timestamp: upstreams do not publish creation dates


def _model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": owner}


async def upstream_models(request: web.Request) -> dict[str, str]:
    """Every provider's own models (id -> owner), in the providers' order; each caches its list."""
    found: dict[str, str] = {}
    for model_id, owner in await request.app[PROVIDERS_KEY].list_models():
        found.setdefault(model_id, owner)  # the first provider listing an id owns it
    return found


async def list_models(request: web.Request) -> web.Response:
    mm = request.app[MODELS_KEY]
    seen: set[str] = set()
    data = []
    for name in [*mm.chat, *request.app[PROVIDERS_KEY].routes, *mm.embeddings]:
        if name not in seen:
            seen.add(name)
            data.append(_model(name, "aiproxy"))
    for name, owner in (await upstream_models(request)).items():
        if name not in seen:
            seen.add(name)
            data.append(_model(name, owner))
    return web.Response(body=jsonutil.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    mm = request.app[MODELS_KEY]
    if model_id in mm.chat or model_id in mm.embeddings or model_id in request.app[PROVIDERS_KEY].routes:
        return web.Response(body=jsonutil.dumps(_model(model_id, "aiproxy")), content_type="application/json")
    owner = (await upstream_models(request)).get(model_id)
    if owner is not None:
        return web.Response(body=jsonutil.dumps(_model(model_id, owner)), content_type="application/json")
    raise ProxyError(404, f"The model `{model_id}` does not exist or you do not have access to it.",
                     param="model", code="model_not_found")
