"""OpenAI chat request -> Anthropic Messages request body (a plain dict). Pure, no I/O.

Rules (table-tested in tests/unit/test_anthropic_translate.py):
- system and developer messages -> top-level `system` text blocks; the rest become strictly
  alternating user/assistant turns (same-role neighbours merged: consecutive `tool` results
  become one user turn, as the API requires).
- `max_tokens` is always sent: the client's max_completion_tokens/max_tokens, else
  DEFAULT_MAX_TOKENS (4096, the ANTHROPIC_DEFAULT_MAX_TOKENS setting). With extended thinking
  the budget is added on top, so the client's limit stays the limit of the visible answer.
- `reasoning_effort` -> `thinking: {type: enabled, budget_tokens}` (minimal 1024, low 2048,
  medium 8192, high 24576; none = off); thinking needs temperature 1, so temperature/top_p are
  not sent with it. Temperature above 1 (OpenAI allows 2) is capped at Anthropic's 1.
- images (data URLs; remote URLs were inlined by the media fetch) -> image blocks, type sniffed
  from the bytes; PDFs -> document blocks; text files -> text documents; audio -> 400.
- tools -> tools with `input_schema`; tool_choice auto/none/required/named -> auto/none/any/tool;
  `parallel_tool_calls: false` -> `disable_parallel_tool_use`.
- assistant tool_calls -> tool_use blocks; `tool` messages -> tool_result blocks. The tool call
  ids the proxy hands out carry the thinking signature (providers/gemini/tools.encode_call_id);
  the thinking text comes back as the assistant message's `reasoning_content` or its leading
  `<think>` block (think-tags mode), and together they are resent as the turn's thinking block,
  which Anthropic requires in a tool loop with thinking on. A client that keeps neither text
  loses that block.
- `stop` -> stop_sequences; `n` > 1 -> 400 (Anthropic answers once); seed and penalties have no
  Anthropic equivalent and are not sent.
- response_format json_schema -> a forced tool named after the schema whose input is the answer
  (response.py turns it back into content); json_object -> a system line asking for one JSON
  object. A forced tool (tool_choice required or named, or json_schema) excludes thinking on
  Anthropic, so it turns thinking off.
"""

from __future__ import annotations

import re
from typing import Any

from aiproxy.errors import bad_request
from aiproxy.media.sniff import SNIFF_BYTES, sniff_file, sniff_image, split_data_url
from aiproxy.openai.think_history import assistant_content_without_thoughts
from aiproxy.openai.types import ChatRequest, Message
from aiproxy.providers.gemini.media import decode_base64
from aiproxy.providers.gemini.tools import (
    RAW_SIGNATURE_MARK,
    SIGNATURE_MARK,
    call_arguments,
    decode_call_signature,
)

DEFAULT_MAX_TOKENS = 4096
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
EFFORTS = ("none", *THINKING_BUDGETS)
JSON_OBJECT_INSTRUCTION = "Answer with one JSON object only, without any other text."
_LEADING_THINK = re.compile(r"\s*<think>(.*?)(?:</think>|\Z)", re.DOTALL)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

Block = dict[str, Any]


def upstream_tool_id(call_id: str) -> str:
    """The tool_use id Anthropic sees for a client's tool call id: without the signature the proxy
    put there, only the characters Anthropic's id pattern allows."""
    for mark in (SIGNATURE_MARK, RAW_SIGNATURE_MARK):
        call_id = call_id.partition(mark)[0]
    return _ID_UNSAFE.sub("_", call_id) or "call"


def _text_blocks(content: Any) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [{"type": "text", "text": p["text"]} for p in content if p.get("type") == "text" and p.get("text")]


def _image_block(part: dict[str, Any], param: str) -> Block:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    parsed = split_data_url(url) if isinstance(url, str) else None
    if parsed is None:
        raise bad_request(f"Invalid value for '{param}.image_url': expected a base64 data URL or a fetchable "
                          "http(s) URL.", param=f"{param}.image_url")
    data, raw = decode_base64(parsed[1], f"{param}.image_url")
    mime = sniff_image(raw[:SNIFF_BYTES])
    if mime not in ("image/jpeg", "image/png", "image/gif", "image/webp"):
        raise bad_request(f"Invalid value for '{param}.image_url': Anthropic takes JPEG, PNG, GIF or WebP images.",
                          param=f"{param}.image_url", code="invalid_media_type")
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def _file_block(part: dict[str, Any], param: str) -> Block:
    spec = part.get("file") or {}
    payload = spec.get("file_data")
    if not isinstance(payload, str) or not payload:
        raise bad_request(f"Missing required parameter: '{param}.file.file_data'.", param=f"{param}.file.file_data")
    parsed = split_data_url(payload)
    data, raw = decode_base64(parsed[1] if parsed else payload, f"{param}.file.file_data")
    if sniff_file(raw[:SNIFF_BYTES]) == "application/pdf":
        return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"Invalid value for '{param}.file.file_data': Anthropic takes PDF or UTF-8 text documents.",
                          param=f"{param}.file.file_data", code="invalid_media_type") from None
    return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}


def _user_blocks(content: Any, param: str) -> list[Block]:
    if not isinstance(content, list):
        return _text_blocks(content)
    blocks: list[Block] = []
    for j, part in enumerate(content):
        kind, where = part.get("type"), f"{param}[{j}]"
        if kind == "text":
            blocks.extend(_text_blocks([part]))
        elif kind == "image_url":
            blocks.append(_image_block(part, where))
        elif kind == "file":
            blocks.append(_file_block(part, where))
        else:
            raise bad_request(f"Invalid value for '{where}.type': {kind!r} content is not supported by Anthropic.",
                              param=f"{where}.type")
    return blocks


def _thinking_text(msg: Message) -> str | None:
    if msg.reasoning_content:
        return msg.reasoning_content
    content = msg.content if isinstance(msg.content, str) else None
    match = _LEADING_THINK.match(content) if content else None
    return match.group(1) if match else None


def _assistant_blocks(msg: Message, i: int) -> list[Block]:
    blocks: list[Block] = []
    signature = next((s for c in msg.tool_calls or () if (s := decode_call_signature(c.id))), None)
    thinking = _thinking_text(msg) if signature else None
    if signature and thinking is not None:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
    blocks.extend(_text_blocks(assistant_content_without_thoughts(msg.content)))
    for j, call in enumerate(msg.tool_calls or ()):
        args = call_arguments(call, f"messages[{i}].tool_calls[{j}].function.arguments")
        blocks.append({"type": "tool_use", "id": upstream_tool_id(call.id), "name": call.function.name, "input": args})
    return blocks


def _tool_result(msg: Message, i: int) -> list[Block]:
    if not msg.tool_call_id:
        raise bad_request(f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                          param=f"messages[{i}].tool_call_id")
    text = "".join(b["text"] for b in _text_blocks(msg.content))
    return [{"type": "tool_result", "tool_use_id": upstream_tool_id(msg.tool_call_id), "content": text}]


def build_turns(messages: list[Message]) -> tuple[list[dict[str, Any]], list[Block]]:
    """(alternating user/assistant turns, system text blocks)."""
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}].content"
        if msg.role in ("system", "developer"):
            if isinstance(msg.content, list) and any(p.get("type") != "text" for p in msg.content):
                raise bad_request(f"'{param}': system and developer messages may only contain text.", param=param)
            system.extend(_text_blocks(msg.content))
            continue
        if msg.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(msg, i)
        elif msg.role == "tool":
            role, blocks = "user", _tool_result(msg, i)
        elif msg.role == "user":
            role, blocks = "user", _user_blocks(msg.content, param)
            if not blocks:
                raise bad_request(f"'{param}': a user message needs non-empty content.", param=param)
        else:
            raise bad_request(f"'messages[{i}]': role '{msg.role}' is not supported by Anthropic.",
                              param=f"messages[{i}].role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns, system


def _tools(req: ChatRequest, body: dict[str, Any]) -> None:
    if not req.tools:
        if req.tool_choice not in (None, "none", "auto"):
            raise bad_request("'tool_choice' needs 'tools'.", param="tool_choice")
        return
    tools = []
    for tool in req.tools:
        fn = tool["function"]  # the client's dict, its types checked
        entry: dict[str, Any] = {"name": fn["name"],
                                 "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            entry["description"] = fn["description"]
        tools.append(entry)
    body["tools"] = tools
    choice = req.tool_choice
    mapped: dict[str, Any] | None
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        if name not in {t["name"] for t in tools}:
            raise bad_request(f"Invalid value for 'tool_choice': no tool named '{name}' in 'tools'.",
                              param="tool_choice")
        mapped = {"type": "tool", "name": name}
    else:
        mapped = {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]} if choice else None
    if req.parallel_tool_calls is False and (mapped is None or mapped["type"] != "none"):
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    if mapped:
        body["tool_choice"] = mapped


def json_tool_name(req: ChatRequest) -> str | None:
    """The forced tool that carries a json_schema answer, None without one."""
    fmt = req.response_format
    if fmt and fmt.get("type") == "json_schema" and (fmt["json_schema"].get("schema") is not None):
        return str(fmt["json_schema"]["name"])
    return None


def _response_format(req: ChatRequest, body: dict[str, Any], system: list[Block]) -> None:
    fmt = req.response_format
    if not fmt or fmt.get("type") == "text":
        return
    name = json_tool_name(req)
    if name is None:  # json_object, or json_schema without a schema
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
        return
    spec = fmt["json_schema"]
    tool: dict[str, Any] = {"name": name, "input_schema": spec["schema"]}
    if spec.get("description"):
        tool["description"] = spec["description"]
    body["tools"] = [*body.get("tools", ()), tool]
    body["tool_choice"] = {"type": "tool", "name": name}


def build_anthropic_request(req: ChatRequest, model: str,
                            default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    effort = req.reasoning_effort
    if effort is not None and effort not in EFFORTS:
        raise bad_request(f"Invalid value for 'reasoning_effort': expected one of {', '.join(EFFORTS)}.",
                          param="reasoning_effort")
    if req.n is not None and req.n > 1:
        raise bad_request("Invalid value for 'n': Anthropic models answer once per request (n must be 1).", param="n")
    turns, system = build_turns(req.messages)
    if not turns:
        if not system:
            raise bad_request("'messages': at least one message must have non-empty content.", param="messages")
        turns, system = [{"role": "user", "content": system}], []
    body: dict[str, Any] = {"model": model, "max_tokens": req.output_limit or default_max_tokens,
                            "messages": turns, "stream": True}
    budget = THINKING_BUDGETS.get(effort or "none")
    if budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        body["max_tokens"] += budget
    else:
        if req.temperature is not None:
            body["temperature"] = min(req.temperature, 1.0)
        if req.top_p is not None:
            body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
    _tools(req, body)
    _response_format(req, body, system)
    if body.get("tool_choice", {}).get("type") in ("any", "tool"):
        body.pop("thinking", None)  # Anthropic refuses thinking with a forced tool
    if system:
        body["system"] = system
    return body
