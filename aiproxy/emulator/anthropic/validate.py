"""The Messages API's request rules the proxy must respect, with the API's own wording.

Checked: `max_tokens` (required, ≥ 1), `messages` (only user/assistant roles: a `system` role is
refused with the hint to use top-level `system`; roles alternate; content a string or known
blocks), image/document sources, every `tool_result` answering a `tool_use` of the assistant
turn right before it and every `tool_use` answered in the next turn, `thinking` (budget ≥ 1024
and below `max_tokens`; with it on, the last assistant turn that called tools must start with its
thinking block), `tool_choice`, `tools`, `stop_sequences`, and the signatures of
thinking blocks sent back (they must be the ones this emulator issued, as the real API verifies).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from aiproxy.emulator.anthropic.errors import AnthropicError, invalid

BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def signature_for(thinking: str) -> str:
    """The signature this emulator gives a thinking text (and demands back with it)."""
    return base64.b64encode(hashlib.sha256(b"emu-thinking:" + thinking.encode()).digest()).decode()


def _blocks(msg: dict[str, Any], i: int) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(f"messages.{i}.content: Input should be a valid list")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            tag = block.get("type") if isinstance(block, dict) else None
            raise invalid(f"messages.{i}.content.{j}: Input tag '{tag}' "
                          "found using 'type' does not match any of the expected tags")
        _check_block(block, f"messages.{i}.content.{j}", msg.get("role"))
    return content


def _check_source(block: dict[str, Any], where: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}.source: Field required")
    kind = source.get("type")
    if kind == "url":
        if not isinstance(source.get("url"), str):
            raise invalid(f"{where}.source.url: Field required")
        return
    if kind == "text" and block["type"] == "document":
        return
    if kind != "base64" or not isinstance(source.get("data"), str):
        raise invalid(f"{where}.source: expected a base64, url or text source")
    media = source.get("media_type")
    allowed = IMAGE_TYPES if block["type"] == "image" else frozenset({"application/pdf"})
    if media not in allowed:
        raise invalid(f"{where}.source.media_type: Input should be one of {', '.join(sorted(allowed))}")
    try:
        base64.b64decode(source["data"], validate=True)
    except ValueError:
        raise invalid(f"{where}.source.data: invalid base64 data") from None


def _check_block(block: dict[str, Any], where: str, role: Any) -> None:
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        raise invalid(f"{where}.text: Field required")
    if kind in ("image", "document"):
        if role != "user":
            raise invalid(f"{where}: {kind} blocks are only allowed in user messages")
        _check_source(block, where)
    if kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise invalid(f"{where}: tool_use blocks need `id` and `name`")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{where}.input: Input should be a valid dictionary")
    if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise invalid(f"{where}.tool_use_id: Field required")
    if kind == "thinking":
        if role != "assistant":
            raise invalid(f"{where}: thinking blocks are only allowed in assistant messages")
        if block.get("signature") != signature_for(str(block.get("thinking", ""))):
            raise invalid(f"{where}: Invalid `signature` in `thinking` block")


def _check_tool_pairs(messages: list[dict[str, Any]], blocks: list[list[dict[str, Any]]]) -> None:
    for i, msg in enumerate(messages):
        uses = [b["id"] for b in blocks[i] if b.get("type") == "tool_use"]
        if msg["role"] == "assistant" and uses:
            answered = {b["tool_use_id"] for b in blocks[i + 1] if b.get("type") == "tool_result"} \
                if i + 1 < len(messages) else set()
            missing = [u for u in uses if u not in answered]
            if missing and i + 1 < len(messages):
                raise invalid(f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                              f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                              "`tool_result` block in the next message.")
        if msg["role"] == "user":
            previous = {b["id"] for b in blocks[i - 1] if b.get("type") == "tool_use"} if i else set()
            for j, b in enumerate(blocks[i]):
                if b.get("type") == "tool_result" and b["tool_use_id"] not in previous:
                    raise invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                  f"{b['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` "
                                  "block in the previous message.")


def _check_thinking(body: dict[str, Any], max_tokens: int) -> bool:
    thinking = body.get("thinking")
    if thinking is None:
        return False
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise invalid("thinking: Input tag found using 'type' does not match any of the expected tags: "
                      "'disabled', 'enabled'")
    if thinking["type"] == "disabled":
        return False
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if budget >= max_tokens:
        raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
                      "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
    return True


def _check_tool_loop_thinking(messages: list[dict[str, Any]], blocks: list[list[dict[str, Any]]]) -> None:
    """With thinking on, the last assistant turn, when it called tools, must start with its thinking."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
    if last is None or not any(b.get("type") == "tool_use" for b in blocks[last]):
        return
    first = blocks[last][0].get("type")
    if first not in ("thinking", "redacted_thinking"):
        raise invalid(f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                      f"`{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
                      "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks).")


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{i}.custom.name: Field required")
            if not isinstance(tool.get("input_schema"), dict):
                raise invalid(f"tools.{i}.custom.input_schema: Field required")
            names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise invalid("tool_choice: Input tag found using 'type' does not match any of the expected tags: "
                          "'auto', 'any', 'tool', 'none'")
        if kind == "tool" and choice.get("name") not in names:
            raise invalid(f"tool_choice.tool.name: tool '{choice.get('name')}' is not in `tools`")


def validate_request(body: Any) -> bool:
    """Raise AnthropicError(400) for a request the API refuses; True when thinking is enabled."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: Field required" if messages is None else "messages: at least one message is required")
    blocks: list[list[dict[str, Any]]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "system":
            raise invalid('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                          'parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i and messages[i - 1]["role"] == role:
            raise invalid(f'messages: roles must alternate between "user" and "assistant", but found multiple '
                          f'"{role}" roles in a row')
        blocks.append(_blocks(msg, i))
    if messages[0]["role"] != "user":
        raise invalid("messages: first message must use the \"user\" role")
    _check_tool_pairs(messages, blocks)
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise invalid("system: Input should be a valid string or a list of text blocks")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1):
        raise invalid("temperature: Input should be less than or equal to 1")
    _check_tools(body)
    thinking = _check_thinking(body, max_tokens)
    if thinking:
        _check_tool_loop_thinking(messages, blocks)
    return thinking


__all__ = ["AnthropicError", "signature_for", "validate_request"]
