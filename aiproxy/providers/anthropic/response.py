"""Anthropic stream events -> OpenAI `chat.completion.chunk` dicts (stateful per response).

Both modes share it: the proxy always streams from Anthropic, and the buffered answer is the fold
of these chunks. Per event type:
- text_delta -> `content`; thinking_delta -> `reasoning_content` (or `<think>…</think>` in
  content in think-tags mode); signature_delta -> kept, and carried in the next tool call's id
  (gemini/tools.encode_call_id) so the thinking block can be resent on the next turn;
- tool_use start -> a tool call delta with its own index and id; input_json_delta -> argument
  deltas on that index; the forced json_schema tool (request.json_tool_name) -> content instead;
- message_start / message_delta usage -> usage (usage.py); message_delta stop_reason ->
  finish_reason (end_turn/stop_sequence/pause_turn -> stop, max_tokens -> length,
  tool_use -> tool_calls, refusal -> content_filter).
"""

from __future__ import annotations

from typing import Any

from aiproxy.providers.anthropic.usage import openai_usage, read_anthropic_usage
from aiproxy.providers.base import Chunk, UsageCounts
from aiproxy.providers.gemini.tools import encode_call_id

FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter", "model_context_window_exceeded": "length"}


class AnthropicTranslator:
    """Feed Anthropic events in order, then call `finish()` once."""

    __slots__ = ("_base", "_include_usage", "_think_tags", "_max_calls", "_json_tool", "_started", "_blocks",
                 "_calls", "_signature", "_thinking_open", "usage_fields", "stop_reason", "ended", "output_chars")

    def __init__(self, *, completion_id: str, created: int, model: str, include_usage: bool = False,
                 think_tags: bool = False, max_tool_calls: int | None = None, json_tool: str | None = None) -> None:
        self._base: Chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                             "model": model, "system_fingerprint": None}
        if include_usage:
            self._base["usage"] = None
        self._include_usage = include_usage
        self._think_tags = think_tags
        self._max_calls = max_tool_calls
        self._json_tool = json_tool
        self._started = False
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool call index)
        self._calls = 0
        self._signature: str | None = None
        self._thinking_open = False
        self.usage_fields: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.ended = False
        self.output_chars = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Chunk:
        if not self._started:
            self._started = True
            delta = {"role": "assistant", **delta}
        return {**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _text(self, text: str) -> list[Chunk]:
        if self._thinking_open:
            self._thinking_open = False
            text = "</think>" + text
        self.output_chars += len(text)
        return [self._chunk({"content": text})] if text else []

    def feed(self, event: dict[str, Any]) -> list[Chunk]:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event.get("index", 0), event.get("delta") or {})
        if kind == "content_block_start":
            return self._start(event.get("index", 0), event.get("content_block") or {})
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                self.usage_fields.update(usage)
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, dict):
                self.usage_fields.update({k: v for k, v in usage.items() if v is not None})
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
        elif kind == "message_stop":
            self.ended = True
        return []

    def _start(self, index: int, block: dict[str, Any]) -> list[Chunk]:
        kind = block.get("type", "")
        if kind == "tool_use" and block.get("name") == self._json_tool:
            self._blocks[index] = ("json", -1)
            return []
        if kind != "tool_use":
            self._blocks[index] = (kind, -1)
            return []
        seq = self._calls
        if self._max_calls is not None and seq >= self._max_calls:
            self._blocks[index] = ("skipped", -1)
            return []
        self._calls += 1
        self._blocks[index] = ("tool_use", seq)
        signature, self._signature = self._signature, None  # the first call of the turn carries it
        call = {"index": seq, "id": encode_call_id(signature, seq), "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""}}
        out = self._text("") if self._thinking_open else []
        return [*out, self._chunk({"tool_calls": [call]})]

    def _delta(self, index: int, delta: dict[str, Any]) -> list[Chunk]:
        kind, seq = self._blocks.get(index, ("text", -1))
        dtype = delta.get("type")
        if dtype == "text_delta":
            return self._text(delta.get("text") or "")
        if dtype == "thinking_delta":
            thought = delta.get("thinking") or ""
            if not thought:
                return []
            if not self._think_tags:
                return [self._chunk({"reasoning_content": thought})]
            if not self._thinking_open:
                self._thinking_open = True
                thought = "<think>" + thought
            self.output_chars += len(thought)
            return [self._chunk({"content": thought})]
        if dtype == "signature_delta":
            self._signature = delta.get("signature") or None
            return []
        if dtype == "input_json_delta":
            partial = delta.get("partial_json") or ""
            if not partial or kind == "skipped":
                return []
            if kind == "json":
                return self._text(partial)
            self.output_chars += len(partial)
            return [self._chunk({"tool_calls": [{"index": seq, "function": {"arguments": partial}}]})]
        return []

    def usage(self) -> UsageCounts | None:
        return read_anthropic_usage(self.usage_fields) if self.usage_fields else None

    def finish(self) -> list[Chunk]:
        """The finish chunk (closing an open `<think>`) and the usage chunk when asked for."""
        delta: dict[str, Any] = {"content": "</think>"} if self._thinking_open else {}
        self._thinking_open = False
        reason = FINISH_REASONS.get(self.stop_reason or "", "stop")
        if reason == "tool_calls" and not self._calls:
            reason = "stop"  # only the json_schema tool was used: its input is the content
        chunk = self._chunk(delta, reason)
        if self.stop_reason:
            chunk["choices"][0]["native_finish_reason"] = self.stop_reason
        counts = self.usage()
        usage = openai_usage(counts) if counts else None
        if self._include_usage:
            return [chunk, {**self._base, "choices": [], "usage": usage}]
        if usage is not None:
            chunk["usage"] = usage
        return [chunk]
