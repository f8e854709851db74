"""Tools: OpenAI `tools`/`tool_choice`/tool messages <-> Gemini function calling.

Thought signatures (Gemini 3 requires them back on the functionCall parts of the current turn)
must survive clients that only echo the tool call `id` (openai_dart), so the signature rides
inside the id itself: stateless, so any proxy instance can restore it. It is also exposed as
`extra_content.google.thought_signature`, as Google's own OpenAI endpoint does, and accepted back
from there.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from aiproxy import jsonutil
from aiproxy.errors import bad_request
from aiproxy.openai.types import ChatRequest, Message, ToolCall
from aiproxy.providers.gemini.parts import Part, content_parts
from aiproxy.providers.gemini.schema import gemini_json_schema, sanitize_schema

SIGNATURE_MARK = "__ts_"  # followed by the signature's bytes, base64url without padding
RAW_SIGNATURE_MARK = "__tr_"  # followed by the signature text itself, base64url (non-canonical input)


# ---- tool call ids that carry thought signatures -------------------------------------------

def encode_call_id(signature: str | None, seq: int) -> str:
    base = f"call_{os.urandom(6).hex()}{seq}"
    if not signature:
        return base
    mark = SIGNATURE_MARK
    try:
        raw = base64.b64decode(signature, validate=True)
        if base64.b64encode(raw).decode() != signature:
            raise ValueError("not canonical base64")
    except (binascii.Error, ValueError):
        mark, raw = RAW_SIGNATURE_MARK, signature.encode()
    return base + mark + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_call_signature(call_id: str) -> str | None:
    """The Gemini thoughtSignature carried by an id from `encode_call_id`, else None."""
    for mark in (SIGNATURE_MARK, RAW_SIGNATURE_MARK):
        _, found, tail = call_id.partition(mark)
        if found and tail:
            try:
                raw = base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
            except (binascii.Error, ValueError):
                return None
            return base64.b64encode(raw).decode() if mark == SIGNATURE_MARK else raw.decode(errors="replace")
    return None


def tool_call_id(part: dict[str, Any], call: dict[str, Any], seq: int, completion_id: str) -> str:
    return encode_call_id(part.get("thoughtSignature"), seq)


# ---- request side --------------------------------------------------------------------------

def takes_json_schema(model: str) -> bool:
    """2.5 and later accept `parametersJsonSchema` (plain JSON Schema, no sanitizing needed)."""
    return model.startswith(("gemini-2.5", "gemini-3"))


def function_declarations(req: ChatRequest, model: str) -> list[dict[str, Any]]:
    decls = []
    for i, tool in enumerate(req.tools or ()):
        param = f"tools[{i}]"
        if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise bad_request(f"Invalid value for '{param}.type': only function tools are supported.",
                              param=f"{param}.type")
        fn = tool["function"]
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"Missing required parameter: '{param}.function.name'.", param=f"{param}.function.name")
        decl: dict[str, Any] = {"name": name}
        if isinstance(fn.get("description"), str):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise bad_request(f"Invalid value for '{param}.function.parameters': expected an object.",
                                  param=f"{param}.function.parameters")
            if takes_json_schema(model):
                decl["parametersJsonSchema"] = gemini_json_schema(params)
            elif params.get("properties"):
                decl["parameters"] = sanitize_schema(params, f"{param}.function.parameters")
        decls.append(decl)
    return decls


def tool_config(req: ChatRequest, names: list[str]) -> dict[str, Any] | None:
    choice = req.tool_choice
    if choice is None:
        return None
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, dict):
        fn = found if isinstance(found := choice.get("function"), dict) else {}
        name = fn.get("name")
        if choice.get("type") == "function" and isinstance(name, str):
            if name not in names:
                raise bad_request(f"Invalid value for 'tool_choice': no tool named '{name}' in 'tools'.",
                                  param="tool_choice")
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise bad_request("Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
                      "{'type': 'function', 'function': {'name': ...}}.", param="tool_choice")


def extend_with_tools(req: ChatRequest, model: str, body: dict[str, Any]) -> None:
    if not req.tools:
        if req.tool_choice not in (None, "none", "auto"):
            raise bad_request("'tool_choice' needs 'tools'.", param="tool_choice")
        return
    decls = function_declarations(req, model)
    body["tools"] = [{"functionDeclarations": decls}]
    config = tool_config(req, [d["name"] for d in decls])
    if config:
        body["toolConfig"] = config


# ---- conversation turns --------------------------------------------------------------------

def _call_signature(call: ToolCall) -> str | None:
    google = call.extra_content.google if call.extra_content else None
    if google and google.thought_signature:
        return google.thought_signature
    return decode_call_signature(call.id)


def call_arguments(call: ToolCall, param: str) -> dict[str, Any]:
    """A tool call's `arguments` as the JSON object it must be (400 naming `param` otherwise)."""
    try:
        args = jsonutil.loads(call.function.arguments) if call.function.arguments.strip() else {}
    except jsonutil.JSONDecodeError:
        raise bad_request(f"Invalid value for '{param}': not valid JSON.", param=param) from None
    if not isinstance(args, dict):
        raise bad_request(f"Invalid value for '{param}': must be a JSON object.", param=param)
    return args


def assistant_parts(msg: Message, index: int, state: dict[str, Any]) -> list[Part]:
    parts = content_parts(msg.content, f"messages[{index}].content")
    names: dict[str, str] = state.setdefault("call_names", {})
    for j, call in enumerate(msg.tool_calls or ()):
        args = call_arguments(call, f"messages[{index}].tool_calls[{j}].function.arguments")
        part: Part = {"functionCall": {"name": call.function.name, "args": args}}
        signature = _call_signature(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
        names[call.id] = call.function.name
    return parts


def _response_payload(content: Any, index: int) -> dict[str, Any]:
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
    text = content or ""
    try:
        value = jsonutil.loads(text) if text[:1] in "{[" and text else None
    except jsonutil.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    return {"content": value if value is not None else text}


def tool_result_parts(msg: Message, index: int, state: dict[str, Any]) -> list[Part]:
    names: dict[str, str] = state.get("call_names", {})
    if msg.role == "function":  # the legacy form names the function itself
        name = msg.name
    else:
        if not msg.tool_call_id:
            raise bad_request(f"Missing required parameter: 'messages[{index}].tool_call_id'.",
                              param=f"messages[{index}].tool_call_id")
        name = names.get(msg.tool_call_id)
        if name is None:
            raise bad_request(f"Invalid value for 'messages[{index}].tool_call_id': no earlier assistant "
                              f"tool call has the id '{msg.tool_call_id}'.", param=f"messages[{index}].tool_call_id")
    if not name:
        raise bad_request(f"Missing required parameter: 'messages[{index}].name'.", param=f"messages[{index}].name")
    return [{"functionResponse": {"name": name, "response": _response_payload(msg.content, index)}}]
