"""Pydantic models of the client-facing OpenAI request, validated once per request.

Only the request is modelled: responses and stream chunks are plain dicts built by the
translator, because constructing models per streamed chunk would cost more than the whole
per-chunk budget. Unknown fields are ignored (clients send many); wrong types are 400s that
name the parameter.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from aiproxy.access.identity import billing_user
from aiproxy.errors import ProxyError

_LOOSE = ConfigDict(extra="ignore", frozen=False)


class StreamOptions(BaseModel):
    model_config = _LOOSE
    include_usage: bool = False


class FunctionCall(BaseModel):
    model_config = _LOOSE
    name: str
    arguments: str = ""


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = _LOOSE
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # str, or a list of typed parts ({"type": "text", ...}, image_url, input_audio, file, ...);
    # parts stay dicts here and are checked where they are translated.
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts_have_type(cls, value: Any) -> Any:
        if isinstance(value, list):
            for part in value:
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ValueError("each content part must be an object with a string `type`")
        return value


class ChatRequest(BaseModel):
    model_config = _LOOSE
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int | None = Field(None, ge=1, le=8)
    user: str | None = None
    user_id: str | None = None  # the seed's billing identity
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # Set by the handler, never by the body: render thoughts as <think> tags in content.
    _think_tags: bool = PrivateAttr(False)

    @field_validator("stop")
    @classmethod
    def _stop_limit(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 5:
            raise ValueError("at most 5 stop sequences are allowed")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def billing_user(self) -> str:
        return billing_user(self.user_id, self.user)


def _param_path(loc: tuple[int | str, ...]) -> str:
    """Render pydantic's location as OpenAI does: messages[0].content."""
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif not out:
            out = str(item)
        else:
            out += f".{item}"
    return out


def validation_error(exc: ValidationError) -> ProxyError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and ("[" in x or x in ("str", "list[dict[str,any]]"))))
    param = _param_path(loc) or None
    if err["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
        code = "missing_required_parameter"
    else:
        message = f"Invalid value for '{param}': {err['msg']}."
        code = "invalid_value" if err["type"] != "extra_forbidden" else "unknown_parameter"
    return ProxyError(400, message, param=param, code=code)


def parse_chat_request(data: Any) -> ChatRequest:
    if not isinstance(data, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
