"""A cached answer back on the wire: the folded `chat.completion` as JSON, or replayed as the SSE
chunks a live stream would have sent (role delta, content, finish_reason, a usage chunk only
when the client asked for one, then `[DONE]`)."""

from __future__ import annotations

import copy
from typing import Any

from aiproxy.openai import sse
from aiproxy.openai.sse import DONE


def fresh_body(cached: dict[str, Any], completion_id: str, created: int, model: str) -> dict[str, Any]:
    body = copy.deepcopy(cached)
    body.update(id=completion_id, created=created, model=model)
    return body


def sse_replay(body: dict[str, Any], include_usage: bool) -> bytes:
    """The SSE bytes of a whole `chat.completion` body, in the live stream's chunk shape."""
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"], "system_fingerprint": None}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**head, "choices": choices, **extra}

    chunks = []
    for choice in body["choices"]:
        index, message = choice["index"], choice["message"]
        chunks.append(chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": None}]))
        delta: dict[str, Any] = {}
        if message.get("reasoning_content"):
            delta["reasoning_content"] = message["reasoning_content"]
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        if delta:
            chunks.append(chunk([{"index": index, "delta": delta, "logprobs": choice.get("logprobs"),
                                  "finish_reason": None}]))
    chunks.append(chunk([{"index": c["index"], "delta": {}, "logprobs": None, "finish_reason": c["finish_reason"]}
                         for c in body["choices"]]))
    if include_usage and body.get("usage") is not None:
        chunks.append(chunk([], usage=body["usage"]))
    return sse.encode(chunks) + DONE
