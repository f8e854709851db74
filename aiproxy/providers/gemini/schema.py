"""JSON Schema for Gemini: as is for newer models, or the OpenAPI subset older ones accept.

`gemini_json_schema` serves models with `parametersJsonSchema`/`responseJsonSchema`: JSON Schema
as given, minus `$schema` (the one place it is stripped, for tool parameters and response formats
alike). `sanitize_schema` serves older models only. Their OpenAPI subset has no $ref, no const,
no type lists, no additionalProperties, so the
sanitizer inlines references, turns `anyOf [X, null]` / `type: [X, "null"]` into X + nullable,
and drops what Gemini would reject with a 400.
"""

from __future__ import annotations

from typing import Any

from aiproxy.errors import bad_request

# Keywords Gemini's Schema object knows (ai.google.dev/api/caching#Schema).
_KEEP = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})
_MAX_DEPTH = 32
DROPPED_SCHEMA_KEYS = frozenset({"$schema"})


def gemini_json_schema(schema: Any) -> Any:
    """JSON Schema for `parametersJsonSchema` / `responseJsonSchema`: as given, minus the keys Gemini
    refuses (`$schema`, an annotation zod and other generators emit), at every depth; property
    names are kept, so a property called `$schema` survives."""
    if isinstance(schema, list):
        return [gemini_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED_SCHEMA_KEYS:
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: gemini_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = gemini_json_schema(value)
    return out


def sanitize_schema(schema: Any, param: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise bad_request(f"Invalid schema for '{param}': expected a JSON object.", param=param)
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _clean(schema, defs, param, 0)


def _resolve(ref: str, defs: dict[str, Any], param: str) -> dict[str, Any]:
    name = ref.rsplit("/", 1)[-1]
    if not ref.startswith(("#/$defs/", "#/definitions/")) or name not in defs:
        raise bad_request(f"Invalid schema for '{param}': unresolvable $ref '{ref}'.", param=param)
    return defs[name]


def _clean(node: Any, defs: dict[str, Any], param: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise bad_request(f"Invalid schema for '{param}': too deeply nested or recursive.", param=param)
    if not isinstance(node, dict):
        return {}
    if "$ref" in node:
        merged = {**_resolve(node["$ref"], defs, param), **{k: v for k, v in node.items() if k != "$ref"}}
        return _clean(merged, defs, param, depth + 1)
    out: dict[str, Any] = {}
    nullable = False
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        nullable = len(kinds) < len(kind)
        kind = kinds[0] if len(kinds) == 1 else None
        if kind is None and kinds:
            out["anyOf"] = [{"type": k} for k in kinds]
    if kind is not None:
        out["type"] = kind
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list):
            kept = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            nullable = nullable or len(kept) < len(options)
            cleaned = [_clean(o, defs, param, depth + 1) for o in kept]
            if len(cleaned) == 1:
                out.update({k: v for k, v in cleaned[0].items() if k not in out})
            elif cleaned:
                out["anyOf"] = cleaned
    if "const" in node:
        out["enum"] = [node["const"]]
    for key, value in node.items():
        if key not in _KEEP or key in out or key in ("anyOf", "type"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean(sub, defs, param, depth + 1) for name, sub in value.items()}
        elif key == "items":
            out[key] = _clean(value, defs, param, depth + 1)
        elif key == "enum" and isinstance(value, list):
            out[key] = [str(v) if not isinstance(v, str) else v for v in value]
        else:
            out[key] = value
    if "enum" in out:
        if "type" not in out:
            out["type"] = "string"
        elif out["type"] != "string":
            del out["enum"]  # Gemini's enum is for strings only; the type is worth more
    if nullable or node.get("nullable"):
        out["nullable"] = True
    return out
