"""Pydantic models of the client-facing OpenAI requests (chat, embeddings), validated once.

Only requests are modelled: responses and stream chunks are plain dicts built by the
translator, because constructing models per streamed chunk would cost more than the whole
per-chunk budget. Unknown fields are ignored (clients send many); every field the proxy reads
has its JSON type checked here, so no handler or translator meets a number where it expects
text: a wrong type is a 400 naming the field path (`messages[0].content[0].text`). Content
parts, tools, tool_choice and response_format are unions chosen by `type` (or by JSON type),
each member with its own fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from aiproxy.access.identity import billing_user
from aiproxy.errors import ProxyError


class _Typed(BaseModel):
    """Unknown fields ignored (clients send many); known ones must have their JSON type
    (strict: no "5" for 5, no 1 for true)."""

    model_config = ConfigDict(extra="ignore", strict=True)


def _keep_as_sent(value: Any, handler: Any) -> Any:
    """Validate against the annotated model, keep the client's own dict: the translators and
    the media step read (and rewrite) these objects as dicts, now with their types checked."""
    handler(value)
    return value


def _json_type_tag(value: Any) -> str | None:
    return "@string" if isinstance(value, str) else "@array" if isinstance(value, list) else (
        "@object" if isinstance(value, dict) else None)


def one_of(expected: str, **branches: Any) -> Any:
    """A union chosen by the value's JSON type (string / array / object), so an error names the
    field inside the branch that applies instead of one per alternative."""
    members = tuple(Annotated[kind, Tag(f"@{name}")] for name, kind in branches.items())
    return Annotated[Union[members], Discriminator(  # noqa: UP007 - a Union built at run time from a tuple
        _json_type_tag, custom_error_type="invalid_type", custom_error_message=f"expected {expected}")]


def tagged_by_type(expected: str, **branches: type[BaseModel]) -> Any:
    """A union of objects chosen by their `type` field, each validated as its own model and kept
    as the client's dict; an unknown `type` is an error on `….type` that lists the known ones."""
    members = tuple(Annotated[model, Tag(f"@{name}")] for name, model in branches.items())

    def tag(value: Any) -> str | None:
        kind = value.get("type") if isinstance(value, dict) else None
        return f"@{kind}" if isinstance(kind, str) else None

    union: Any = Annotated[Union[members], Discriminator(  # noqa: UP007 - a Union built at run time from a tuple
        tag, custom_error_type="unknown_type", custom_error_message=f"expected a `type` of {expected}")]
    return Annotated[union, WrapValidator(_keep_as_sent)]


# ---- content parts ---------------------------------------------------------------------------

class TextPart(_Typed):
    type: Literal["text"]
    text: str


class ImageURL(_Typed):
    url: str
    detail: str | None = None


if TYPE_CHECKING:  # the static view of the union built at run time below
    ImageURLSpec = ImageURL | str
else:
    ImageURLSpec = one_of("an object with `url`, or the URL as a string", object=ImageURL, string=str)


class ImageURLPart(_Typed):
    type: Literal["image_url"]
    image_url: ImageURLSpec


class InputAudio(_Typed):
    data: str
    format: str | None = None  # ignored: the type is sniffed from the bytes (Lotti's label lies)


class InputAudioPart(_Typed):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileSpec(_Typed):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Typed):
    type: Literal["file"]
    file: FileSpec


class RefusalPart(_Typed):  # assistant history as the SDKs echo it back
    type: Literal["refusal"]
    refusal: str


if TYPE_CHECKING:  # the static view of the unions built at run time below: parts stay the client's dicts
    ContentPart = dict[str, Any]
    Content = str | list[ContentPart]
else:
    ContentPart = tagged_by_type("'text', 'image_url', 'input_audio', 'file' or 'refusal'", text=TextPart,
                                 image_url=ImageURLPart, input_audio=InputAudioPart, file=FilePart,
                                 refusal=RefusalPart)
    Content = one_of("a string or an array of content parts", string=str, array=list[ContentPart])


# ---- messages --------------------------------------------------------------------------------

class StreamOptions(_Typed):
    include_usage: bool = False


class FunctionCall(_Typed):
    name: str
    arguments: str = ""


class GoogleExtra(_Typed):
    thought_signature: str | None = None


class ToolCallExtra(_Typed):
    google: GoogleExtra | None = None  # Google's OpenAI endpoint's place for thought signatures


class ToolCall(_Typed):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall
    extra_content: ToolCallExtra | None = None


class Message(_Typed):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # A string or typed parts; `null` is valid (an assistant turn of only tool calls, a tool
    # result with nothing to say). Parts stay the client's dicts, their types checked.
    content: Content | None = None
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


# ---- tools and formats -----------------------------------------------------------------------

class FunctionDefinition(_Typed):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Typed):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolChoiceFunction(_Typed):
    name: str


class NamedToolChoice(_Typed):
    type: Literal["function"]
    function: ToolChoiceFunction


class TextFormat(_Typed):
    type: Literal["text"]


class JsonObjectFormat(_Typed):
    type: Literal["json_object"]


class JsonSchemaSpec(_Typed):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(_Typed):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


if TYPE_CHECKING:  # the static view of the types built below: objects stay the client's dicts (_keep_as_sent)
    ToolDict = dict[str, Any]
    ToolChoice = Literal["none", "auto", "required"] | dict[str, Any]
    ResponseFormat = dict[str, Any]
else:
    ToolDict = Annotated[FunctionTool, WrapValidator(_keep_as_sent)]
    ToolChoice = one_of("'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
                        string=Literal["none", "auto", "required"],
                        object=Annotated[NamedToolChoice, WrapValidator(_keep_as_sent)])
    ResponseFormat = tagged_by_type("'text', 'json_object' or 'json_schema'", text=TextFormat,
                                    json_object=JsonObjectFormat, json_schema=JsonSchemaFormat)


class ChatRequest(_Typed):
    # The example /openapi.json shows; the schemathesis fuzz sends it first (a request that succeeds).
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}]})

    model: str = Field(min_length=1, examples=["gpt-4o-mini"])
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
    user: str | None = Field(None, description="End-user label; billing follows the API key.")
    user_id: str | None = None  # the seed's billing identity
    tools: list[ToolDict] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
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


# ---- embeddings ------------------------------------------------------------------------------

EMBEDDING_INPUTS_MAX = 2048  # OpenAI's own limit per request


def _no_token_arrays(value: Any) -> Any:
    items = value if isinstance(value, list) else [value]
    if any(isinstance(item, (int, list)) and not isinstance(item, bool) for item in items):
        raise PydanticCustomError("unsupported_value", "token arrays are not supported; send the text")
    return value


NonEmptyText = Annotated[str, Field(min_length=1)]
if TYPE_CHECKING:  # the static view of the union built at run time below
    EmbeddingInput = str | list[str]
else:
    EmbeddingInput = Annotated[
        one_of("a non-empty string or an array of strings", string=NonEmptyText,
               array=Annotated[list[NonEmptyText], Field(min_length=1, max_length=EMBEDDING_INPUTS_MAX)]),
        BeforeValidator(_no_token_arrays)]


class EmbeddingsRequest(_Typed):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "text-embedding-3-small", "input": "hello"}]})

    model: str = Field(min_length=1, examples=["text-embedding-3-small"])
    input: EmbeddingInput
    dimensions: int | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    user_id: str | None = None

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)

    @property
    def format(self) -> str:
        return self.encoding_format or "float"


def _is_union_label(item: str) -> bool:
    """Location entries that name a union branch, not a field: our `@tags` and pydantic's own
    member labels (`str`, `list[str]`)."""
    return item.startswith("@") or "[" in item or item == "str"


def _param_path(loc: tuple[int | str, ...]) -> str:
    """Render pydantic's location as OpenAI does: messages[0].content[1].text."""
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif _is_union_label(item):
            continue
        elif not out:
            out = item
        else:
            out += f".{item}"
    return out


def validation_error(exc: ValidationError) -> ProxyError:
    """The first error as OpenAI words it, `param` the path of the offending field."""
    err = exc.errors(include_url=False)[0]
    param = _param_path(err["loc"]) or None
    kind, code = err["type"], "invalid_value"
    if kind == "unknown_type":  # a `type` the union does not know, or none at all
        given = err["input"].get("type") if isinstance(err["input"], dict) else None
        param = f"{param}.type" if param else "type"
        if given is None:
            kind = "missing"
        else:
            message = f"Invalid value for '{param}': unsupported type {given!r}; {err['msg']}."
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
        code = "missing_required_parameter"
    elif kind == "unsupported_value":
        message, code = f"Invalid value for '{param}': {err['msg']}.", "unsupported_value"
    elif kind != "unknown_type":
        message = f"Invalid value for '{param}': {err['msg']}."
    return ProxyError(400, message, param=param, code=code)


def _validated(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def parse_chat_request(data: Any) -> ChatRequest:
    return _validated(ChatRequest, data)


def parse_embeddings_request(data: Any) -> EmbeddingsRequest:
    return _validated(EmbeddingsRequest, data)
