"""Parse and validate a generateContent body the way the Generative Language API does.

Proto-JSON rules apply: each field may be spelled lowerCamel or snake_case, an unknown name is a
400 naming it, and the content rules (non-empty contents, parts, valid roles, one
functionResponse per functionCall, Gemini 3 thought signatures) are checked before any model
work. Everything here is plain dict work: no pydantic on the hot path.
"""

from __future__ import annotations

import re
from typing import Any

from aiproxy.emulator import errors
from aiproxy.emulator.directive import find_directive
from aiproxy.emulator.models import ModelInfo
from aiproxy.emulator.tokens import prompt_usage


def both_spellings(*camel: str) -> frozenset[str]:
    """Each lowerCamel name plus its snake_case spelling (proto JSON accepts either)."""
    out = set(camel)
    out.update(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), c) for c in camel)
    return frozenset(out)


TOP_LEVEL_FIELDS = both_spellings(
    "model", "contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
    "generationConfig", "cachedContent",
)
GENERATION_CONFIG_FIELDS = both_spellings(
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "_responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers",
    "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution",
)
THINKING_LEVELS = frozenset({"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"})


def get(obj: dict[str, Any], camel: str, default: Any = None) -> Any:
    """Read a proto-JSON field under either spelling."""
    value = obj.get(camel)
    if value is None:
        snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
        value = obj.get(snake, default)
    return value


class GenRequest:
    """What the reply builder needs from a validated request."""

    __slots__ = (
        "contents", "system", "config", "thinking", "tools", "tool_config", "directive",
        "prompt_tokens", "prompt_details", "prompt_key",
    )

    def __init__(self) -> None:
        self.contents: list[dict[str, Any]] = []
        self.system: dict[str, Any] | None = None
        self.config: dict[str, Any] = {}
        self.thinking: dict[str, Any] = {}
        self.tools: list[dict[str, Any]] = []
        self.tool_config: dict[str, Any] = {}
        self.directive: dict[str, Any] = {}
        self.prompt_tokens = 0
        self.prompt_details: list[dict[str, Any]] = []
        self.prompt_key = ""


def _check_unknown(obj: dict[str, Any], allowed: frozenset[str], where: str | None) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise errors.unknown_fields(unknown, where)


def parse_generate(body: Any, model: ModelInfo, *, counting: bool = False) -> GenRequest:
    """Validate ``body`` for ``model``; raise GoogleError exactly where Google would."""
    if not isinstance(body, dict):
        raise errors.invalid("Invalid JSON payload received. Expected an object.")
    _check_unknown(body, TOP_LEVEL_FIELDS, None)
    req = GenRequest()
    contents = get(body, "contents") or []
    if not contents:
        raise errors.invalid("* GenerateContentRequest.contents: contents is not specified\n")
    system = get(body, "systemInstruction")
    texts: list[str] = []
    if system:
        req.system = system
        texts.extend(p["text"] for p in system.get("parts") or () if "text" in p)
    for i, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not parts:
            raise errors.invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n")
        role = content.get("role", "user")
        if role not in ("user", "model", ""):
            raise errors.invalid("Please use a valid role: user, model.")
        texts.extend(p["text"] for p in parts if "text" in p)
    req.contents = contents
    req.directive = find_directive(texts)
    req.prompt_key = "\x00".join(texts)
    req.prompt_tokens, req.prompt_details = prompt_usage(([system] if system else []) + contents)
    config = get(body, "generationConfig") or {}
    _check_unknown(config, GENERATION_CONFIG_FIELDS, "generation_config")
    req.config = config
    req.tools = get(body, "tools") or []
    req.tool_config = get(body, "toolConfig") or {}
    if counting:
        return req
    _check_function_turns(contents)
    _check_signatures(contents, model, req.directive.get("require_signature"))
    req.thinking = _check_thinking(get(config, "thinkingConfig") or {}, model)
    if (get(config, "responseLogprobs") or get(config, "logprobs") is not None) and not model.logprobs:
        raise errors.invalid(f"Logprobs is not enabled for models/{model.id}")
    return req


def _calls(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in content.get("parts") or () if "functionCall" in p or "function_call" in p]


def _check_function_turns(contents: list[dict[str, Any]]) -> None:
    for i, content in enumerate(contents[:-1]):
        if content.get("role") != "model":
            continue
        n_calls = len(_calls(content))
        if not n_calls:
            continue
        nxt = contents[i + 1]
        n_resp = sum(1 for p in nxt.get("parts") or () if "functionResponse" in p or "function_response" in p)
        if n_resp != n_calls:
            raise errors.invalid(
                "Please ensure that the number of function response parts is equal to the number of "
                "function call parts of the function call turn."
            )


def _current_turn_start(contents: list[dict[str, Any]]) -> int:
    """Index of the last user content that is not only function responses."""
    for i in range(len(contents) - 1, -1, -1):
        c = contents[i]
        if c.get("role", "user") != "model":
            parts = c.get("parts") or ()
            if any("functionResponse" not in p and "function_response" not in p for p in parts):
                return i
    return 0


def _check_signatures(contents: list[dict[str, Any]], model: ModelInfo, required: Any) -> None:
    start = 0 if required is not None else _current_turn_start(contents)
    if required is None and not model.gemini3:
        return
    for i in range(start, len(contents)):
        content = contents[i]
        if content.get("role") != "model":
            continue
        for j, part in enumerate(_calls(content)):
            sig = part.get("thoughtSignature", part.get("thought_signature"))
            if required is not None:
                ok = sig == required if (j == 0 or sig is not None) else True
            else:
                ok = j > 0 or bool(sig)
            if not ok:
                call = part.get("functionCall") or part.get("function_call") or {}
                raise errors.missing_signature(str(call.get("name", "")), i + 1)


def _check_thinking(tc: dict[str, Any], model: ModelInfo) -> dict[str, Any]:
    budget = get(tc, "thinkingBudget")
    level = get(tc, "thinkingLevel")
    if level is not None:
        if not model.gemini3:
            raise errors.invalid("thinking_level is not supported by this model.")
        if str(level).upper() not in THINKING_LEVELS:
            raise errors.invalid(
                "Invalid value at 'generation_config.thinking_config.thinking_level' "
                f'(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), "{level}"'
            )
        if budget is not None:
            raise errors.invalid("You can only set only one of thinking budget and thinking level.")
    if budget is not None and int(budget) == 0 and not model.can_disable_thinking:
        raise errors.invalid("Budget 0 is invalid. This model only works in thinking mode.")
    return tc
