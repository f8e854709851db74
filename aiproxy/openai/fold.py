"""OpenAI chunks -> one `chat.completion` body: how buffered mode answers.

Buffered and streamed answers come from the same provider chunks; folding them here (and not in
any provider) means a non-streamed reply cannot drift from the streamed one, whatever the provider.
"""

from __future__ import annotations

from typing import Any

Chunk = dict[str, Any]


class ChunkFolder:
    """Folds OpenAI chunks into one `chat.completion` (the buffered response)."""

    __slots__ = ("_head", "_choices", "usage")

    def __init__(self) -> None:
        self._head: Chunk | None = None
        self._choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: Chunk) -> None:
        if self._head is None:
            self._head = chunk
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk["choices"]:
            acc = self._choices.get(choice["index"])
            if acc is None:
                acc = self._choices[choice["index"]] = {"content": [], "reasoning": [], "calls": {}, "finish": None,
                                                        "native": None}
            delta = choice["delta"]
            if "content" in delta:
                acc["content"].append(delta["content"])
            if "reasoning_content" in delta:
                acc["reasoning"].append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or ():
                prev = acc["calls"].get(call["index"])
                if prev is None:
                    acc["calls"][call["index"]] = prev = {"id": call["id"], "type": "function",
                                                          "function": dict(call["function"])}
                    if "extra_content" in call:
                        prev["extra_content"] = call["extra_content"]
                else:
                    prev["function"]["arguments"] += call["function"].get("arguments", "")
            fold_logprobs(acc, choice)
            if choice["finish_reason"]:
                acc["finish"] = choice["finish_reason"]
                acc["native"] = choice.get("native_finish_reason")

    def result(self) -> dict[str, Any]:
        head = self._head or {}
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(acc["content"]) or None, "refusal": None}
            if acc["calls"]:
                message["tool_calls"] = [acc["calls"][i] for i in sorted(acc["calls"])]
            elif message["content"] is None:
                message["content"] = ""
            if acc["reasoning"]:
                message["reasoning_content"] = "".join(acc["reasoning"])
            choice: dict[str, Any] = {"index": index, "message": message, "logprobs": folded_logprobs(acc),
                                      "finish_reason": acc["finish"]}
            if acc["native"]:
                choice["native_finish_reason"] = acc["native"]
            choices.append(choice)
        body: dict[str, Any] = {
            "id": head.get("id"),
            "object": "chat.completion",
            "created": head.get("created"),
            "model": head.get("model"),
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def fold_logprobs(acc: dict[str, Any], choice: dict[str, Any]) -> None:
    """Collect the per-delta logprobs token lists of one choice."""
    lp = choice.get("logprobs")
    if lp:
        acc.setdefault("logprobs", []).extend(lp["content"])


def folded_logprobs(acc: dict[str, Any]) -> dict[str, Any] | None:
    tokens = acc.get("logprobs")
    return {"content": tokens, "refusal": None} if tokens is not None else None
