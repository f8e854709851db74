"""Chat chunks -> Responses output items and stream events, built once for both modes.

The provider answers in chat chunks whatever API the client speaks; `ResponseBuilder` turns them
into the Responses API's output items (`reasoning`, `message` with `output_text`, `function_call`)
and the events OpenAI streams while they grow, each with its `sequence_number`. The buffered
handler runs the same builder and keeps only the final response object, so a buffered answer
cannot drift from a streamed one.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from aiproxy import jsonutil
from aiproxy.billing.record import Metering
from aiproxy.openai.fold import ChunkFolder
from aiproxy.providers.base import Chunk
from aiproxy.responses.request import ResponsesRequest

Event = dict[str, Any]
_ENCRYPTED_PREFIX = "aiproxy.v1."


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


def output_item_id(prefix: str, response_id: str, index: int) -> str:
    """An output item's id names its response (`msg_<response hex>_<index>`), so an `item_reference`
    to it is found with one read of the stored response (aiproxy/responses/references.py)."""
    return f"{prefix}_{response_id.partition('_')[2]}_{index}"


def encrypt_reasoning(text: str) -> str:
    """The thought text, opaque to the client, for `include: ["reasoning.encrypted_content"]`."""
    return _ENCRYPTED_PREFIX + base64.urlsafe_b64encode(jsonutil.dumps({"text": text})).decode()


def usage_body(m: Metering) -> dict[str, Any]:
    """The metered counts (the ledger row's: the upstream's, or the estimates when it reported none)."""
    return {"input_tokens": m.prompt_tokens, "input_tokens_details": {"cached_tokens": m.cached_tokens},
            "output_tokens": m.completion_tokens, "output_tokens_details": {"reasoning_tokens": m.reasoning_tokens},
            "total_tokens": m.total_tokens}


class ResponseBuilder:
    """Folds one generation's chat chunks into a Responses object, emitting stream events.

    `answer`, when given, also folds the chunks into the chat answer they make: what the response
    cache keeps, so a hit replays through this same builder (aiproxy/cache/replay.py)."""

    def __init__(self, req: ResponsesRequest, response_id: str, model: str, answer: ChunkFolder | None = None) -> None:
        self.req = req
        self.answer = answer
        self.output: list[dict[str, Any]] = []
        self._seq = 0
        self._open: dict[str, Any] | None = None  # the item still growing
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> function_call item
        self.finish_reason: str | None = None
        self.response: dict[str, Any] = {
            "id": response_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "background": False, "error": None, "incomplete_details": None, "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens, "max_tool_calls": None, "model": model, "output": [],
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id,
            "reasoning": {"effort": req.reasoning.effort if req.reasoning else None, "summary": req.summary},
            "service_tier": "default", "store": req.store,
            "temperature": 1.0 if req.temperature is None else req.temperature,
            "text": {"format": (req.text.format if req.text and req.text.format else {"type": "text"})},
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
            "tools": req.tools or [], "top_p": 1.0 if req.top_p is None else req.top_p,
            "truncation": req.truncation or "disabled", "usage": None, "user": req.user,
            "metadata": req.metadata or {},
        }

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": [dict(item) for item in self.output]}

    def start(self) -> list[Event]:
        return [self._event("response.created", response=self.snapshot()),
                self._event("response.in_progress", response=self.snapshot())]

    # ---- items ------------------------------------------------------------------------------

    def _add_item(self, item: dict[str, Any]) -> list[Event]:
        events = self._close_open()
        self.output.append(item)
        self._open = item
        events.append(self._event("response.output_item.added", output_index=len(self.output) - 1,
                                  item=_public(item)))
        return events

    def _close_open(self) -> list[Event]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self.output.index(item)
        events: list[Event] = []
        if item["type"] == "message":
            part = item["content"][0]
            events.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=part["text"], logprobs=[]))
            events.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                      content_index=0, part=dict(part)))
        elif item["type"] == "function_call":
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=index, name=item["name"], arguments=item["arguments"]))
        elif item["type"] == "reasoning":
            events += self._close_reasoning(item, index)
        item["status"] = "completed"
        events.append(self._event("response.output_item.done", output_index=index, item=_public(item)))
        return events

    def _close_reasoning(self, item: dict[str, Any], index: int) -> list[Event]:
        text = item.pop("_text")
        if self.req.wants_encrypted_reasoning:
            item["encrypted_content"] = encrypt_reasoning(text)
        if not item["summary"]:
            return []
        part = item["summary"][0]
        return [self._event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                            summary_index=0, text=part["text"]),
                self._event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                            summary_index=0, part=dict(part))]

    def _new_item_id(self, prefix: str) -> str:
        return output_item_id(prefix, self.response["id"], len(self.output))

    def _reasoning(self, delta: str) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item["type"] != "reasoning":
            item = {"id": self._new_item_id("rs"), "type": "reasoning", "summary": [], "_text": ""}
            if self.req.wants_encrypted_reasoning:
                item["encrypted_content"] = None
            events += self._add_item(item)
            if self.req.summary:
                item["summary"].append({"type": "summary_text", "text": ""})
                events.append(self._event("response.reasoning_summary_part.added", item_id=item["id"],
                                          output_index=len(self.output) - 1, summary_index=0,
                                          part={"type": "summary_text", "text": ""}))
        item["_text"] += delta
        if item["summary"]:
            item["summary"][0]["text"] += delta
            events.append(self._event("response.reasoning_summary_text.delta", item_id=item["id"],
                                      output_index=len(self.output) - 1, summary_index=0, delta=delta))
        return events

    def _text(self, delta: str) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item["type"] != "message":
            item = {"id": self._new_item_id("msg"), "type": "message", "status": "in_progress", "role": "assistant",
                    "content": []}
            events += self._add_item(item)
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            item["content"].append(part)
            events.append(self._event("response.content_part.added", item_id=item["id"],
                                      output_index=len(self.output) - 1, content_index=0, part=dict(part)))
        item["content"][0]["text"] += delta
        events.append(self._event("response.output_text.delta", item_id=item["id"], output_index=len(self.output) - 1,
                                  content_index=0, delta=delta, logprobs=[]))
        return events

    def _call(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        item = self._calls.get(call["index"])
        fn = call.get("function") or {}
        if item is None:
            item = {"id": self._new_item_id("fc"), "type": "function_call", "status": "in_progress", "arguments": "",
                    "call_id": call["id"], "name": fn.get("name") or ""}
            self._calls[call["index"]] = item
            events += self._add_item(item)
        arguments = fn.get("arguments") or ""
        if arguments:
            item["arguments"] += arguments
            events.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                      output_index=self.output.index(item), delta=arguments))
        return events

    # ---- chunks -----------------------------------------------------------------------------

    def add(self, chunk: Chunk) -> list[Event]:
        if self.answer is not None:
            self.answer.add(chunk)
        events: list[Event] = []
        for choice in chunk["choices"]:
            if choice["index"] != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                events += self._reasoning(delta["reasoning_content"])
            if delta.get("content"):
                events += self._text(delta["content"])
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self, metered: Metering) -> list[Event]:
        """Close the open item and the response: `response.completed`, or `.incomplete` when cut."""
        events = self._close_open()
        reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(self.finish_reason or "")
        self.response["status"] = "incomplete" if reason else "completed"
        if reason:
            self.response["incomplete_details"] = {"reason": reason}
        self.response["usage"] = usage_body(metered)
        self.response["output"] = [_public(item) for item in self.output]
        kind = "response.incomplete" if reason else "response.completed"
        events.append(self._event(kind, response=self.response))
        return events

    def fail(self, code: str, message: str) -> list[Event]:
        """The stream broke after it started: an `error` event (our code), then `response.failed`
        (whose `error.code` is one of OpenAI's: `server_error`)."""
        self.response.update(status="failed", error={"code": "server_error", "message": message},
                             output=[_public(item) for item in self.output])
        return [self._event("error", code=code, message=message, param=None),
                self._event("response.failed", response=self.response)]


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """The item as sent: a copy without the builder's private fields."""
    out = {k: v for k, v in item.items() if not k.startswith("_")}
    if "content" in out:
        out["content"] = [dict(p) for p in out["content"]]
    if "summary" in out:
        out["summary"] = [dict(p) for p in out["summary"]]
    return out
