"""A Responses API request -> the internal `ChatRequest`, once, before any provider sees it.

Every provider already serves the chat form, so the Responses API needs no provider code: items
become chat messages (`function_call` items become assistant tool calls, `function_call_output`
items tool messages), Responses-shaped tools and `text.format` become chat tools and
`response_format`. What the chat form cannot carry (hosted tools such as web search, stored
file ids) is a 400 naming it, never silently dropped. `reasoning` items sent back are accepted
and not resent: the thoughts were billed once, and the Gemini thought signatures a tool loop
needs travel inside the function call ids (aiproxy/providers/gemini/tools.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from aiproxy.errors import ProxyError, bad_request
from aiproxy.openai.types import ChatRequest, _Typed, _validated, one_of, parse_chat_request

ENCRYPTED_REASONING = "reasoning.encrypted_content"
INCLUDABLE = (ENCRYPTED_REASONING, "message.output_text.logprobs")


class TextOptions(_Typed):
    format: dict[str, Any] | None = None


class ReasoningOptions(_Typed):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None  # the older name of `summary`


Input = one_of("a string or an array of input items", string=str, array=list[dict[str, Any]])
ToolChoice = one_of("'none', 'auto', 'required' or an object", string=Literal["none", "auto", "required"],
                    object=dict[str, Any])


class ResponsesRequest(_Typed):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "gpt-4o-mini", "input": "Say hello."}]})

    model: str = Field(min_length=1)
    input: Input | None = None  # type: ignore[valid-type]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None  # type: ignore[valid-type]
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    reasoning: ReasoningOptions | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    user: str | None = None
    user_id: str | None = None  # the seed's billing identity, as on chat
    metadata: dict[str, str] | None = None
    store: bool = True
    previous_response_id: str | None = None
    include: list[str] | None = None
    stream: bool = False
    truncation: Literal["auto", "disabled"] | None = None

    @property
    def wants_encrypted_reasoning(self) -> bool:
        return ENCRYPTED_REASONING in (self.include or ())

    @property
    def summary(self) -> str | None:
        r = self.reasoning
        return (r.summary or r.generate_summary) if r else None


def parse_responses_request(data: Any) -> ResponsesRequest:
    req: ResponsesRequest = _validated(ResponsesRequest, data)
    for i, name in enumerate(req.include or ()):
        if name not in INCLUDABLE:
            raise bad_request(f"Invalid value for 'include[{i}]': {name!r} is not supported; supported: "
                              f"{', '.join(INCLUDABLE)}.", param=f"include[{i}]")
    return req


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's own input as items (a string is one user message)."""
    if req.input is None:
        return []
    if isinstance(req.input, str):
        return [{"type": "message", "role": "user", "content": req.input}]
    return list(req.input)


def to_chat_request(req: ResponsesRequest, items: list[dict[str, Any]]) -> ChatRequest:
    """`items` is the whole conversation (stored history first, then this request's input)."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += items_to_messages(items)
    if not messages:
        raise bad_request("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    chat: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
    for name in ("temperature", "top_p", "user", "user_id", "parallel_tool_calls"):
        if getattr(req, name) is not None:
            chat[name] = getattr(req, name)
    if req.max_output_tokens is not None:
        chat["max_completion_tokens"] = req.max_output_tokens
    if req.tools:
        chat["tools"] = [_tool(tool, i) for i, tool in enumerate(req.tools)]
    if req.tool_choice is not None:
        chat["tool_choice"] = _tool_choice(req.tool_choice)
    if req.text and req.text.format:
        chat["response_format"] = _response_format(req.text.format)
    if req.reasoning and req.reasoning.effort is not None:
        chat["reasoning_effort"] = req.reasoning.effort
    try:
        return parse_chat_request(chat)
    except ProxyError as exc:  # a field that passed the Responses checks but not the chat ones
        raise bad_request(exc.message, param=None) from None


# ---- items -> messages -----------------------------------------------------------------------

def items_to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"Invalid value for '{param}': expected an object.", param=param)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = {"id": _text(item, "call_id", param), "type": "function",
                    "function": {"name": _text(item, "name", param), "arguments": _text(item, "arguments", param)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(p.get("text") or "" for p in output if isinstance(p, dict))
            if not isinstance(output, str):
                raise bad_request(f"Invalid value for '{param}.output': expected a string.", param=f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": _text(item, "call_id", param), "content": output})
        elif kind == "reasoning":
            continue  # not resent (see the module docstring)
        else:
            raise bad_request(f"Invalid value for '{param}.type': unsupported item type {kind!r}; supported: "
                              "'message', 'function_call', 'function_call_output', 'reasoning', 'item_reference'.",
                              param=f"{param}.type")
    return messages


def _text(item: dict[str, Any], name: str, param: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise bad_request(f"Missing required parameter: '{param}.{name}'.", param=f"{param}.{name}",
                          code="missing_required_parameter")
    return value


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(f"Invalid value for '{param}.role': expected 'user', 'assistant', 'system' or 'developer'.",
                          param=f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise bad_request(f"Invalid value for '{param}.content': expected a string or an array of parts.",
                          param=f"{param}.content")
    parts = [_part(part, f"{param}.content[{j}]") for j, part in enumerate(content)]
    if role == "assistant":  # assistant history is text (the chat form's assistant content)
        return {"role": role, "content": "".join(p.get("text") or "" for p in parts if p["type"] == "text")}
    return {"role": role, "content": parts}


def _part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _text(part, "text", param)}
    if kind == "refusal":
        return {"type": "text", "text": _text(part, "refusal", param)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise bad_request(f"Invalid value for '{param}.image_url': send the image as a data URL or an http(s) "
                              "URL (file_id is not supported).", param=f"{param}.image_url")
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise bad_request(f"Invalid value for '{param}.file_data': send the file inline as file_data "
                              "(file_id and file_url are not supported).", param=f"{param}.file_data")
        spec = {"file_data": data}
        if isinstance(part.get("filename"), str):
            spec["filename"] = part["filename"]
        return {"type": "file", "file": spec}
    raise bad_request(f"Invalid value for '{param}.type': unsupported content part {kind!r}; supported: "
                      "'input_text', 'input_image', 'input_file', 'output_text'.", param=f"{param}.type")


# ---- tools and formats -----------------------------------------------------------------------

def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    param = f"tools[{i}]"
    kind = tool.get("type")
    if kind != "function":
        raise bad_request(f"Invalid value for '{param}.type': the built-in tool {kind!r} is not supported by this "
                          "proxy; only 'function' tools are.", param=f"{param}.type", code="unsupported_value")
    fn: dict[str, Any] = {"name": _text(tool, "name", param)}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            fn[name] = tool[name]
    return {"type": "function", "function": fn}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad_request(f"Invalid value for 'tool_choice': {choice.get('type')!r} is not supported; use 'none', "
                      "'auto', 'required' or {'type': 'function', 'name': ...}.", param="tool_choice")


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "description", "schema", "strict") if fmt.get(k) is not None}
        spec.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": spec}
    raise bad_request("Invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
                      param="text.format.type")
