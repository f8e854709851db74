"""A cached answer replayed as a live generation: `ReplayStream` is a `ChatStream` over the folded
`chat.completion` kept in the cache, yielding the chunks a provider would have sent (role delta,
then reasoning, content and tool calls, then the finish chunks with the usage).

A hit is written by the very writer that would have written a miss (api/chat.py's SSE or JSON,
api/responses.py's events or object, stored when `store: true`), so a hit cannot drift from a
miss in any API's shape, and a new API served by `serve_chat` is cached with no code of its own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aiproxy.providers.base import Chunk, UsageCounts


def usage_counts(usage: dict[str, Any] | None) -> UsageCounts | None:
    """The cached answer's usage (written by this proxy, so trusted) as the seam's counts."""
    if not usage:
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return UsageCounts(prompt=prompt, completion=completion, total=prompt + completion,
                       reasoning=int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
                       cached=int(prompt_details.get("cached_tokens") or 0),
                       audio=int(prompt_details.get("audio_tokens") or 0), cached_audio=0)


class ReplayStream:
    """The cached `chat.completion` as one generation's chunks; nothing upstream to close."""

    __slots__ = ("model", "_cached", "_head", "_include_usage")

    def __init__(self, cached: dict[str, Any], *, completion_id: str, client_model: str, upstream_model: str,
                 include_usage: bool) -> None:
        self.model = upstream_model
        self._cached = cached
        self._head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": client_model, "system_fingerprint": None}
        self._include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> Chunk:
        return {**self._head, "choices": choices, **extra}

    async def __aiter__(self) -> AsyncIterator[list[Chunk]]:
        chunks = []
        for choice in self._cached["choices"]:
            index, message = choice["index"], choice["message"]
            chunks.append(self._chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}]))
            delta: dict[str, Any] = {}
            if message.get("reasoning_content"):
                delta["reasoning_content"] = message["reasoning_content"]
            if message.get("content"):
                delta["content"] = message["content"]
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            if delta:
                chunks.append(self._chunk([{"index": index, "delta": delta, "logprobs": choice.get("logprobs"),
                                            "finish_reason": None}]))
        yield chunks

    def finish(self) -> list[Chunk]:
        """One finish chunk per choice; the usage on a chunk of its own when the client asked for
        `include_usage`, else on the last finish chunk (as the providers close a stream)."""
        out = []
        for choice in self._cached["choices"]:
            closing = {"index": choice["index"], "delta": {}, "logprobs": None,
                       "finish_reason": choice["finish_reason"]}
            if choice.get("native_finish_reason"):
                closing["native_finish_reason"] = choice["native_finish_reason"]
            out.append(self._chunk([closing]))
        usage = self._cached.get("usage")
        if usage is not None and self._include_usage:
            out.append(self._chunk([], usage=usage))
        elif usage is not None:
            out[-1]["usage"] = usage
        return out

    @property
    def output_chars(self) -> int:
        return sum(len(c["message"].get("content") or "") for c in self._cached["choices"])

    def usage(self) -> UsageCounts | None:
        return usage_counts(self._cached.get("usage"))

    def close(self) -> None:
        """Nothing upstream to stop."""

    def release(self) -> None:
        """No connection to return."""
