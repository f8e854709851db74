"""aiohttp handlers for the Gemini routes: parse, script, reply. No state beyond the app's."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.emulator import errors
from aiproxy.emulator.config import EmulatorConfig
from aiproxy.emulator.directive import find_directive, scripted_status
from aiproxy.emulator.embeddings import embed_batch, embed_one, embed_texts
from aiproxy.emulator.models import MODELS, ModelInfo
from aiproxy.emulator.render import render_events, render_full
from aiproxy.emulator.reply import build_plan
from aiproxy.emulator.request import GenRequest, parse_generate
from aiproxy.emulator.streaming import JSON_TYPE, StreamStats, write_body, write_stream

CONFIG = web.AppKey("emulator_config", EmulatorConfig)
STATS = web.AppKey("emulator_stats", StreamStats)
ERROR_COUNTS = web.AppKey("emulator_error_counts", dict)

_JSON = {"Content-Type": JSON_TYPE}
_MAX_PAGE = 1000
_DEFAULT_PAGE = 50


def _json(obj: Any) -> web.Response:
    return web.Response(body=jsonutil.dumps(obj), headers=_JSON)


def _version(request: web.Request) -> str:
    return "v1" if request.path.startswith("/v1/") else "v1beta"


def _model(request: web.Request, model_id: str, method: str) -> ModelInfo:
    info = MODELS.get(model_id)
    if info is None or method not in info.methods:
        err = errors.not_found(model_id, method)
        err.message = err.message.replace("v1beta", _version(request))
        raise err
    return info


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return jsonutil.loads(raw or b"{}")
    except jsonutil.JSONDecodeError:
        snippet = raw[:40].decode(errors="replace")
        raise errors.invalid(f"Invalid JSON payload received. Unexpected token.\n{snippet}\n^") from None


def _scripted_error(app: web.Application, d: dict[str, Any]) -> None:
    code = scripted_status(app[ERROR_COUNTS], d)
    if code is not None:
        raise errors.scripted(code, d.get("retry_after"), d.get("message"))


async def _delay(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def model_action(request: web.Request) -> web.StreamResponse:
    """``POST models/{model}:{method}`` for every method."""
    model_id, _, method = request.match_info["action"].partition(":")
    sse = request.query.get("alt") == "sse"
    array = method == "streamGenerateContent" and not sse
    try:
        if method in ("generateContent", "streamGenerateContent"):
            return await _generate(request, model_id, method, sse)
        if method == "countTokens":
            return await _count(request, model_id)
        if method == "embedContent":
            _model(request, model_id, method)
            body = await _body(request)
            _scripted_error(request.app, find_directive(embed_texts(body)))
            return _json({"embedding": embed_one(body)})
        if method == "batchEmbedContents":
            _model(request, model_id, "embedContent")
            body = await _body(request)
            _scripted_error(request.app, find_directive(embed_texts(body)))
            return _json(embed_batch(body, model_id))
        raise errors.GoogleError(404, f"Method not found: {method}")
    except errors.GoogleError as exc:
        return exc.response(array=array)


async def _generate(request: web.Request, model_id: str, method: str, sse: bool) -> web.StreamResponse:
    model = _model(request, model_id, "generateContent")
    req: GenRequest = parse_generate(await _body(request), model)
    d = req.directive
    cfg = request.app[CONFIG]
    _scripted_error(request.app, d)
    plan = build_plan(req, model, cfg)
    await _delay(float(d.get("delay_ms", cfg.delay_ms)) / 1000)
    chunk_delay = float(d.get("chunk_delay_ms", cfg.chunk_delay_ms)) / 1000
    if method == "generateContent":
        # Gemini sends generateContent's status line once the whole answer is generated: as late
        # as the same request's stream would send its last chunk.
        if chunk_delay > 0:
            await _delay(chunk_delay * (len(render_events(plan)) - 1))
        return await write_body(request, render_full(plan), stats=request.app[STATS], directive=d)
    return await write_stream(
        request, render_events(plan), sse=sse, stats=request.app[STATS], chunk_delay=chunk_delay, directive=d)


async def _count(request: web.Request, model_id: str) -> web.Response:
    model = _model(request, model_id, "countTokens")
    body = await _body(request)
    if isinstance(body, dict) and "generateContentRequest" in body:
        unknown = [k for k in body if k != "generateContentRequest"]
        if unknown:
            raise errors.unknown_fields(unknown, None)
        body = body["generateContentRequest"]
    elif isinstance(body, dict):
        unknown = [k for k in body if k != "contents"]
        if unknown:
            raise errors.unknown_fields(unknown, None)
    req = parse_generate(body, model, counting=True)
    return _json({"totalTokens": req.prompt_tokens, "promptTokensDetails": req.prompt_details})


async def list_models(request: web.Request) -> web.Response:
    try:
        size = int(request.query.get("pageSize") or _DEFAULT_PAGE)
        token = request.query.get("pageToken")
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    except ValueError:
        return errors.invalid("Invalid page token.").response()
    size = min(max(size, 1), _MAX_PAGE) if size > 0 else _DEFAULT_PAGE
    models = list(MODELS.values())
    page = models[start : start + size]
    out: dict[str, Any] = {"models": [m.resource for m in page]}
    if start + size < len(models):
        out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return _json(out)


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model"]
    info = MODELS.get(model_id)
    if info is None:
        return errors.not_found(model_id, "GET").response()
    return _json(info.resource)
