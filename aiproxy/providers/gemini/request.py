"""OpenAI chat request -> Gemini generateContent request body (a plain dict).

Pure: no I/O, so table-driven golden tests pin every rule. Gemini wants strictly the roles
"user" and "model" in `contents`, with system text apart in `systemInstruction`, and rejects
consecutive turns of one role in some models, so same-role turns are merged.
"""

from __future__ import annotations

from typing import Any, Callable

from aiproxy.errors import bad_request
from aiproxy.openai.types import ChatRequest, Message
from aiproxy.openai.think_history import assistant_content_without_thoughts

Part = dict[str, Any]
PartTranslator = Callable[[dict[str, Any], str], list[Part]]

_ROLE = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}


def _text_part(part: dict[str, Any], param: str) -> list[Part]:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"Invalid value for '{param}.text': expected a string.", param=f"{param}.text")
    return [{"text": text}] if text else []


def _refusal_part(part: dict[str, Any], param: str) -> list[Part]:
    refusal = part.get("refusal")
    return [{"text": refusal}] if isinstance(refusal, str) and refusal else []


# Content-part type -> translator. Media types are registered by aiproxy.providers.gemini.media.
PART_TRANSLATORS: dict[str, PartTranslator] = {"text": _text_part, "refusal": _refusal_part}


def content_parts(content: str | list[dict[str, Any]] | None, param: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Part] = []
    for i, part in enumerate(content):
        kind = part["type"]
        translate = PART_TRANSLATORS.get(kind)
        if translate is None:
            raise bad_request(
                f"Invalid value for '{param}[{i}].type': unsupported content part type '{kind}'.",
                param=f"{param}[{i}].type",
            )
        parts.extend(translate(part, f"{param}[{i}]"))
    return parts


def _system_text(msg: Message, param: str) -> list[Part]:
    parts = content_parts(msg.content, param)
    for p in parts:
        if "text" not in p:
            raise bad_request(f"'{param}': system and developer messages may only contain text.", param=param)
    return parts


# Hooks for message kinds beyond plain text (tool calls, tool results); see translate/tools.py.
MessageTranslator = Callable[[Message, int, dict[str, Any]], list[Part]]
MESSAGE_TRANSLATORS: dict[str, MessageTranslator] = {}


def build_contents(messages: list[Message]) -> tuple[list[dict[str, Any]], list[Part]]:
    """Split messages into Gemini `contents` (merged by role) and system instruction parts."""
    system: list[Part] = []
    contents: list[dict[str, Any]] = []
    state: dict[str, Any] = {}  # shared by message translators within one request
    for i, msg in enumerate(messages):
        param = f"messages[{i}].content"
        if msg.role in ("system", "developer"):
            system.extend(_system_text(msg, param))
            continue
        if msg.role == "assistant" and msg.content:  # our own <think> blocks, sent back by the client
            content = assistant_content_without_thoughts(msg.content)
            if content is not msg.content:
                msg = msg.model_copy(update={"content": content})
        special = MESSAGE_TRANSLATORS.get(msg.role)
        if special is not None:
            parts = special(msg, i, state)
        elif msg.role in ("tool", "function"):
            raise bad_request(f"'messages[{i}]': role '{msg.role}' is not supported.", param=f"messages[{i}].role")
        else:
            parts = content_parts(msg.content, param)
        if not parts:
            if msg.role == "user":
                raise bad_request(f"'{param}': a user message needs non-empty content.", param=param)
            continue
        role = _ROLE[msg.role]
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents, system


def generation_config(req: ChatRequest) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if req.temperature is not None:
        cfg["temperature"] = req.temperature
    if req.top_p is not None:
        cfg["topP"] = req.top_p
    limit = req.output_limit
    if limit is not None:
        cfg["maxOutputTokens"] = limit
    if req.stop:
        cfg["stopSequences"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
    if req.seed is not None:
        cfg["seed"] = req.seed
    if req.presence_penalty is not None:
        cfg["presencePenalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        cfg["frequencyPenalty"] = req.frequency_penalty
    if req.n is not None and req.n > 1:
        cfg["candidateCount"] = req.n
    return cfg


# Hooks that add fields to the finished body (tools, thinking, response_format, ...).
RequestExtender = Callable[[ChatRequest, str, dict[str, Any]], None]
REQUEST_EXTENDERS: list[RequestExtender] = []


def build_gemini_request(req: ChatRequest, upstream_model: str) -> dict[str, Any]:
    contents, system = build_contents(req.messages)
    if not contents:
        if not system:
            raise bad_request("'messages': at least one message must have non-empty content.", param="messages")
        # OpenAI accepts a conversation of only system text; Gemini needs a user turn.
        contents, system = [{"role": "user", "parts": system}], []
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    cfg = generation_config(req)
    if cfg:
        body["generationConfig"] = cfg
    for extend in REQUEST_EXTENDERS:
        extend(req, upstream_model, body)
    return body
