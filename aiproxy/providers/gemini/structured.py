"""`response_format` -> Gemini's responseMimeType / responseJsonSchema.

Gemini's `responseJsonSchema` takes JSON Schema as a free JSON value (not the OpenAPI-subset
proto of `responseSchema`), so `additionalProperties`, `$ref`/`$defs`, `anyOf`, type lists and
`title` pass as they are. The one key dropped is `$schema` (schema.gemini_json_schema, shared
with tool parameters): zod's `zodResponseFormat` and many
generators emit it, it is a pure annotation, and Gemini's schema fields have been seen rejecting
it ("Unknown name \"$schema\""). Everything else is sent as given: unsupported keywords are
ignored by Gemini, so stripping more would only lose constraints. `strict` needs no mapping:
Gemini always decodes against the schema it is given. Models older than 2.5 lack
`responseJsonSchema`; they get `responseSchema` through the tools sanitizer (OpenAPI subset).
"""

from __future__ import annotations

from typing import Any

from aiproxy.errors import bad_request
from aiproxy.openai.types import ChatRequest
from aiproxy.providers.gemini.schema import gemini_json_schema, sanitize_schema
from aiproxy.providers.gemini.tools import takes_json_schema


def _invalid(detail: str, param: str = "response_format") -> Exception:
    return bad_request(f"Invalid value for '{param}': {detail}", param=param)


def response_format_config(fmt: dict[str, Any] | None, model: str = "gemini-2.5-flash") -> dict[str, Any]:
    """generationConfig fields for an OpenAI `response_format` (empty for text / absent)."""
    if fmt is None:
        return {}
    kind = fmt.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind != "json_schema":
        raise _invalid("`type` must be one of 'text', 'json_object' or 'json_schema'.", "response_format.type")
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise _invalid("`json_schema` must be an object with `name` and `schema`.", "response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid("`name` is required (a string).", "response_format.json_schema.name")
    schema = spec.get("schema")
    if schema is None:
        return {"responseMimeType": "application/json"}  # OpenAI allows a schema-less json_schema
    if not isinstance(schema, dict):
        raise _invalid("`schema` must be a JSON Schema object.", "response_format.json_schema.schema")
    if "strict" in spec and not isinstance(spec["strict"], bool):
        raise _invalid("`strict` must be a boolean.", "response_format.json_schema.strict")
    if not takes_json_schema(model):
        return {"responseMimeType": "application/json",
                "responseSchema": sanitize_schema(schema, "response_format.json_schema.schema")}
    return {"responseMimeType": "application/json", "responseJsonSchema": gemini_json_schema(schema)}


def extend_with_response_format(req: ChatRequest, model: str, body: dict[str, Any]) -> None:
    fields = response_format_config(req.response_format, model)
    if fields:
        body.setdefault("generationConfig", {}).update(fields)
