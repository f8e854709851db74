"""A deterministic example instance for a schema, so structured-output replies validate.

Accepts both dialects Gemini takes: the OpenAPI subset of ``responseSchema``/``parameters``
(``type: "OBJECT"``, ``nullable``, ``propertyOrdering``) and the JSON Schema of
``responseJsonSchema``/``parametersJsonSchema`` (``type: ["string", "null"]``, ``$ref``/``$defs``,
``const``, ``oneOf``/``allOf``). Output depends only on the schema, never on chance.
"""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 12


class InvalidSchema(ValueError):
    """The schema is not one: a sub-schema or keyword of the wrong JSON type. Gemini answers
    such a request with 400 INVALID_ARGUMENT, and so does the emulator."""


def example_for(schema: Any) -> Any:
    """An instance that validates against ``schema`` (best effort for exotic keywords)."""
    root = schema if isinstance(schema, dict) else {}
    try:
        return _example(root, root, "value", 0)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise InvalidSchema(f"not a valid schema ({exc})") from None


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    while isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for key in ref[2:].split("/"):
            node = node.get(key, {}) if isinstance(node, dict) else {}
        schema = node if isinstance(node, dict) else {}
        ref = schema.get("$ref")
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    items = t if isinstance(t, list) else [t]
    return [str(x).lower() for x in items]


def _example(schema: dict[str, Any], root: dict[str, Any], name: str, depth: int) -> Any:
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and depth > 0:
        return schema["default"]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            non_null = [o for o in options if "null" not in _types(_resolve(o, root))] or options
            return _example(non_null[0], root, name, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            sub = _resolve(sub, root)
            for k, v in sub.items():
                if k in ("properties",) and k in merged:
                    merged[k] = {**merged[k], **v}
                elif k == "required" and k in merged:
                    merged[k] = [*merged[k], *v]
                else:
                    merged[k] = v
        return _example(merged, root, name, depth + 1)
    types = [t for t in _types(schema) if t != "null"]
    if not types:
        if "properties" in schema:
            types = ["object"]
        elif "items" in schema:
            types = ["array"]
        else:
            types = ["null" if "null" in _types(schema) else "string"]
    kind = types[0]
    if depth >= _MAX_DEPTH and kind in ("object", "array"):
        return {} if kind == "object" else []
    if kind == "object":
        props: dict[str, Any] = schema.get("properties") or {}
        ordered = list(schema.get("propertyOrdering") or ())
        order = ordered + [k for k in props if k not in ordered]
        return {k: _example(props[k], root, k, depth + 1) for k in order if k in props}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        max_items = schema.get("maxItems")
        if max_items is not None:
            count = min(count, int(max_items))
        items = schema.get("items") or {}
        if isinstance(schema.get("prefixItems"), list):
            return [_example(s, root, name, depth + 1) for s in schema["prefixItems"]]
        return [_example(items, root, name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1
    if low is not None:
        value = float(low) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if high is not None and value > float(high):
        value = float(high) - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return int(value) if integer else float(value)


_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt]
    text = f"example {name}"
    min_len = int(schema.get("minLength", 0))
    if len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    max_len = schema.get("maxLength")
    if max_len is not None:
        text = text[: int(max_len)]
    return text
