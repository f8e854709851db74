"""Gemini stream chunks -> OpenAI `chat.completion.chunk` dicts.

One translator serves both modes: streaming writes its chunks as SSE, buffered mode folds the
very same chunks (aiproxy.openai.fold), so the two answers cannot drift apart. This is the per-chunk
hot path: plain dicts, no pydantic, no per-chunk allocations beyond the chunk itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from aiproxy.jsonutil import dumps_str
from aiproxy.providers.base import Chunk
from aiproxy.providers.gemini.finish import openai_finish_reason
from aiproxy.providers.gemini.logprobs import attach_logprobs
from aiproxy.providers.gemini.tools import tool_call_id as default_tool_call_id
from aiproxy.providers.gemini.usage import openai_usage

ToolCallIdFn = Callable[[dict[str, Any], dict[str, Any], int, str], str]


class _Choice:
    __slots__ = ("index", "started", "native_finish", "tool_calls", "thinking", "text_chars")

    def __init__(self, index: int) -> None:
        self.index = index
        self.started = False  # role already sent
        self.native_finish: str | None = None
        self.tool_calls = 0
        self.thinking = False  # inside an open <think> block (think-tags mode)
        self.text_chars = 0


class StreamTranslator:
    """Stateful per response: feed Gemini chunks in order, then call `finish()` once."""

    __slots__ = ("_base", "_include_usage", "_think_tags", "_choices", "_id_fn", "completion_id",
                 "usage_metadata", "block_reason", "_max_calls")

    def __init__(
        self,
        *,
        completion_id: str,
        created: int,
        model: str,
        include_usage: bool = False,
        think_tags: bool = False,
        tool_call_id: ToolCallIdFn = default_tool_call_id,
        max_tool_calls: int | None = None,
    ) -> None:
        self.completion_id = completion_id
        self._base: Chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        if include_usage:
            self._base["usage"] = None
        self._include_usage = include_usage
        self._think_tags = think_tags
        self._choices: dict[int, _Choice] = {}
        self._id_fn = tool_call_id
        self._max_calls = max_tool_calls  # 1 when the client sent parallel_tool_calls: false
        self.usage_metadata: dict[str, Any] | None = None
        self.block_reason: str | None = None

    @property
    def output_chars(self) -> int:
        return sum(c.text_chars for c in self._choices.values())

    def _choice(self, index: int) -> _Choice:
        st = self._choices.get(index)
        if st is None:
            st = self._choices[index] = _Choice(index)
        return st

    def _chunk(self, st: _Choice, delta: dict[str, Any], finish: str | None = None, extra: dict | None = None) -> Chunk:
        if not st.started:
            st.started = True
            delta = {"role": "assistant", **delta}
        choice: dict[str, Any] = {"index": st.index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if extra:
            choice.update(extra)
        return {**self._base, "choices": [choice]}

    @property
    def ended(self) -> bool:
        """A candidate has finished, or the prompt was blocked: anything less is a cut-off answer."""
        return self.block_reason is not None or any(st.native_finish for st in self._choices.values())

    def feed(self, chunk: dict[str, Any]) -> list[Chunk]:
        usage = chunk.get("usageMetadata")
        if usage:
            self.usage_metadata = usage
        feedback = chunk.get("promptFeedback")
        if feedback and feedback.get("blockReason"):
            self.block_reason = feedback["blockReason"]
        out: list[Chunk] = []
        for cand in chunk.get("candidates") or ():
            st = self._choice(cand.get("index", 0))
            content = cand.get("content")
            if content:
                delta = self._delta(st, content.get("parts") or ())
                if delta:
                    out.append(self._chunk(st, delta))
            if "logprobsResult" in cand:
                attach_logprobs(out, st.index, partial(self._chunk, st, {}), cand["logprobsResult"])
            reason = cand.get("finishReason")
            if reason:
                st.native_finish = reason
        return out

    def _delta(self, st: _Choice, parts: Any) -> dict[str, Any]:
        text: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in parts:
            if "text" in part:
                value = part["text"]
                if not value:
                    continue
                if part.get("thought"):
                    if self._think_tags:
                        if not st.thinking:
                            st.thinking = True
                            value = "<think>" + value
                        text.append(value)
                    else:
                        thoughts.append(value)
                    continue
                if st.thinking:
                    st.thinking = False
                    value = "</think>" + value
                text.append(value)
            elif "functionCall" in part:
                if st.thinking:
                    st.thinking = False
                    text.append("</think>")
                seq = st.tool_calls
                if self._max_calls is not None and seq >= self._max_calls:
                    continue
                fc = part["functionCall"]
                st.tool_calls += 1
                call = {
                    "index": seq,
                    "id": self._id_fn(part, fc, seq, self.completion_id),
                    "type": "function",
                    "function": {"name": fc.get("name", ""), "arguments": _json_args(fc.get("args"))},
                }
                signature = part.get("thoughtSignature")
                if signature:
                    call["extra_content"] = {"google": {"thought_signature": signature}}
                calls.append(call)
        delta: dict[str, Any] = {}
        if thoughts:
            delta["reasoning_content"] = "".join(thoughts)
        if text:
            joined = "".join(text)
            st.text_chars += len(joined)
            delta["content"] = joined
        if calls:
            delta["tool_calls"] = calls
        return delta

    def finish(self) -> list[Chunk]:
        """The closing chunks: one finish chunk per choice, and the usage chunk if asked for."""
        if not self._choices:
            self._choice(0)  # a blocked prompt still answers with one (empty) choice
        out: list[Chunk] = []
        usage = openai_usage(self.usage_metadata) if self.usage_metadata else None
        for st in sorted(self._choices.values(), key=lambda c: c.index):
            delta: dict[str, Any] = {"content": "</think>"} if st.thinking else {}
            st.thinking = False
            native = st.native_finish or (self.block_reason and "BLOCKED") or None
            reason = "tool_calls" if st.tool_calls and native in (None, "STOP") else openai_finish_reason(native)
            native_reason = st.native_finish or self.block_reason
            extra = {"native_finish_reason": native_reason} if native_reason else None
            out.append(self._chunk(st, delta, reason, extra))
        if self._include_usage:
            out.append({**self._base, "choices": [], "usage": usage})
        elif usage is not None:
            out[-1]["usage"] = usage  # Lotti reads usage from whichever chunk carries it
        return out


def _json_args(args: Any) -> str:
    return dumps_str(args if args is not None else {})
