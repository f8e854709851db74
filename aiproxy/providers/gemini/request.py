"""OpenAI chat request -> Gemini generateContent request body (a plain dict).

Pure: no I/O, so table-driven golden tests pin every rule. Gemini wants strictly the roles
"user" and "model" in `contents`, with system text apart in `systemInstruction`, and rejects
consecutive turns of one role in some models, so same-role turns are merged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiproxy.errors import bad_request
from aiproxy.openai.think_history import assistant_content_without_thoughts
from aiproxy.openai.types import ChatRequest, Message
from aiproxy.providers.gemini.logprobs import extend_with_logprobs
from aiproxy.providers.gemini.parts import Part, content_parts
from aiproxy.providers.gemini.structured import extend_with_response_format
from aiproxy.providers.gemini.thinking import extend_with_thinking
from aiproxy.providers.gemini.tools import assistant_parts, extend_with_tools, tool_result_parts

_ROLE = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}


def _system_text(msg: Message, param: str) -> list[Part]:
    parts = content_parts(msg.content, param)
    for p in parts:
        if "text" not in p:
            raise bad_request(f"'{param}': system and developer messages may only contain text.", param=param)
    return parts


# Message kinds beyond plain text: assistant tool calls, tool results (tools.py).
MessageTranslator = Callable[[Message, int, dict[str, Any]], list[Part]]
MESSAGE_TRANSLATORS: dict[str, MessageTranslator] = {
    "assistant": assistant_parts,
    "tool": tool_result_parts,
    "function": tool_result_parts,
}


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


# What adds fields to the body after contents and generationConfig, in this order (each may
# refuse the request with a 400 naming its parameter, so the order decides which error wins).
RequestExtender = Callable[[ChatRequest, str, dict[str, Any]], None]
REQUEST_EXTENDERS: tuple[RequestExtender, ...] = (
    extend_with_thinking,  # reasoning_effort -> thinkingConfig
    extend_with_tools,  # tools, tool_choice -> tools, toolConfig
    extend_with_response_format,  # response_format -> responseMimeType, response(Json)Schema
    extend_with_logprobs,  # logprobs, top_logprobs -> responseLogprobs, logprobs
)


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
