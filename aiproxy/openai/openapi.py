"""GET /openapi.json: the OpenAPI 3.1 description of the client-facing API.

The request bodies are generated from the pydantic models that validate them (openai/types.py,
`model_json_schema`), so the document cannot drift from what the server accepts: a field added
to a model appears here. Routes, responses and the error shape are written out below (responses
are plain dicts, not models). The test suite fuzzes the live server against this document
(schemathesis), which keeps both honest.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from aiproxy import jsonutil
from aiproxy.openai.types import ChatRequest, EmbeddingsRequest
from aiproxy.responses.request import ResponsesRequest


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Invalid request"),
    "401": _json(_ref("Error"), "Missing or unknown API key"),
    "413": _json(_ref("Error"), "Request body too large"),
    "429": _json(_ref("Error"), "Rate limit, concurrent streams or budget exceeded"),
    "502": _json(_ref("Error"), "Upstream (Gemini) failed"),
    "503": _json(_ref("Error"), "Busy or upstream unavailable; retry"),
    "504": _json(_ref("Error"), "Upstream timed out"),
}


def _generation(operation_id: str, body: str, answer: str) -> dict[str, Any]:
    """A POST that generates: JSON, or SSE with `stream: true`."""
    return {"post": {
        "operationId": operation_id,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
        "responses": {
            "200": {"description": answer, "content": {"application/json": {"schema": {"type": "object"}},
                                                       "text/event-stream": {"schema": {"type": "string"}}}},
            "404": _json(_ref("Error"), "Unknown model"),
            **_ERRORS,
        },
    }}


def request_schemas() -> dict[str, Any]:
    """JSON Schemas of the request models and every model they use, keyed by model name."""
    _, top = models_json_schema([(ChatRequest, "validation"), (EmbeddingsRequest, "validation"),
                                 (ResponsesRequest, "validation")],
                                ref_template="#/components/schemas/{model}")
    return top["$defs"]


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "aiproxy", "version": "1", "description": "OpenAI-compatible API served by Google Gemini."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["message", "type"],
                "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                               "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
            }}},
            **request_schemas(),
            "Model": {"type": "object", "required": ["id", "object"], "properties": {
                "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                "owned_by": {"type": "string"},
            }},
        },
    },  # fmt: skip
    "security": [{"bearer": []}],
    "paths": {
        "/v1/chat/completions": _generation("createChatCompletion", "ChatRequest",
                                            "A chat completion, or an SSE stream of chunks with `stream: true`"),
        "/v1/responses": _generation("createResponse", "ResponsesRequest",
                                     "A response object, or an SSE stream of response events with `stream: true`"),
        "/v1/responses/{response_id}": {p: {
            "operationId": op,
            "parameters": [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object"}, "The stored response" if p == "get" else "Deleted"),
                          "404": _json(_ref("Error"), "Unknown, expired or another user's response"),
                          "401": _ERRORS["401"]},
        } for p, op in (("get", "getResponse"), ("delete", "deleteResponse"))},
        "/v1/models": {"get": {
            "operationId": "listModels",
            "responses": {"200": _json({"type": "object", "required": ["data"], "properties": {
                "object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}}}, "Models"),
                "401": _ERRORS["401"]},
        }},
        "/v1/models/{model_id}": {"get": {
            "operationId": "getModel",
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json(_ref("Model"), "The model"), "404": _json(_ref("Error"), "Unknown model"),
                          "401": _ERRORS["401"]},
        }},
        "/v1/embeddings": {"post": {
            "operationId": "createEmbedding",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("EmbeddingsRequest")}}},
            "responses": {"200": _json({"type": "object"}, "Embeddings"),
                          "404": _json(_ref("Error"), "Unknown model or route"), **_ERRORS},
        }},
        "/v1/usage": {"get": {
            "operationId": "getUsage",
            "description": "Usage totals from the ledger; admin keys (or ADMIN_TOKEN) only.",
            "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                           for n in ("user", "model", "since", "until", "group_by")],
            "responses": {"200": _json({"type": "object"}, "Usage report"), "400": _ERRORS["400"],
                          "401": _ERRORS["401"], "403": _json(_ref("Error"), "Not an admin key"),
                          "404": _json(_ref("Error"), "Reports not enabled")},
        }},
        "/health": {"get": {
            "operationId": "health", "security": [],
            "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "healthy"}}}, "Alive")},
        }},
    },  # fmt: skip
}

_BODY = jsonutil.dumps(SPEC)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")
