"""The validated chat request as an OpenAI body: passed through, not translated.

Every field the proxy validated is forwarded as the client sent it (its own dicts for content
parts, tools, tool_choice and response_format); only what an OpenAI server does not take is
changed: the model becomes the upstream id, the proxy's `user_id` stays here, Google's
`extra_content` and the `reasoning_content` echoed back on assistant turns are dropped (OpenAI
never sent them; DeepSeek-style servers reject them on input), a tool call's `type` is restored
when the client left it out, and the upstream is always asked to stream with usage, so every
answer can be metered (the client's own `stream`/`stream_options` only shape what it receives).
"""

from __future__ import annotations

from typing import Any

from aiproxy.openai.types import ChatRequest

PROXY_ONLY_FIELDS = {"user_id"}


def build_openai_request(req: ChatRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = req.model_dump(exclude_unset=True, exclude=PROXY_ONLY_FIELDS, by_alias=True,
                                          mode="json", warnings=False)
    for message in body["messages"]:
        message.pop("reasoning_content", None)
        for call in message.get("tool_calls") or ():
            call.pop("extra_content", None)
            call.setdefault("type", "function")
    body["model"] = model
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body
