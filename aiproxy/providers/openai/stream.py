"""An OpenAI-API stream as the seam's ChatStream: the upstream's own chunks, forwarded.

Chunks keep their ids and fields; only `model` is set to the name the client sent (its
`X-Upstream-Model` header names what served) and the `usage: null` that the always-requested
upstream usage adds is dropped when the client did not ask for usage. The chunks that carry a
finish_reason, and the upstream's usage chunk after them, are held back and come out of
`finish()`, exactly as the Gemini provider closes a stream: the usage-only chunk
(`choices: []`) when the client sent `stream_options.include_usage`, else the usage rides on the
last finish chunk (Lotti and the buffered fold read it from whichever chunk carries it).
A stream is complete when `data: [DONE]` arrived, or a finish_reason and the usage did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from aiproxy import jsonutil
from aiproxy.providers.base import Chunk, UpstreamStreamError, UsageCounts
from aiproxy.providers.openai.usage import read_openai_usage
from aiproxy.providers.upstream import sse_batches

DONE: dict[str, Any] = {}  # the sentinel `data: [DONE]` parses to


class OpenAIChatStream:
    __slots__ = ("_resp", "_client_model", "_include_usage", "_upstream", "_closing", "_usage", "_usage_chunk",
                 "_done",
                 "_chars", "model")

    def __init__(self, resp: aiohttp.ClientResponse, model: str, client_model: str, include_usage: bool,
                 upstream: str) -> None:
        self._resp = resp
        self.model = model
        self._client_model = client_model
        self._include_usage = include_usage
        self._upstream = upstream
        self._closing: list[Chunk] = []  # chunks with a finish_reason, held for finish()
        self._usage: dict[str, Any] | None = None  # the upstream's latest usage object
        self._usage_chunk: Chunk | None = None  # its usage-only chunk (`choices: []`)
        self._done = False
        self._chars = 0

    def _parse(self, line: bytes) -> Chunk:
        data = line[5:].strip()
        if data == b"[DONE]":
            return DONE
        try:
            chunk = jsonutil.loads(data)
        except jsonutil.JSONDecodeError:
            raise UpstreamStreamError(f"{self._upstream} sent a malformed stream chunk.") from None
        if not isinstance(chunk, dict):
            raise UpstreamStreamError(f"{self._upstream} sent a malformed stream chunk.")
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            raise UpstreamStreamError(f"{self._upstream} failed mid-stream: {err.get('message', 'unknown error')}")
        return chunk

    async def __aiter__(self) -> AsyncIterator[list[Chunk]]:
        async for batch in sse_batches(self._resp, self._parse, self._upstream):  # one write per read
            out, error = self._take(batch)
            if out:
                yield out
            if error is not None:
                raise error
            if self._done:
                break
        if not self._done and not (self._closing and self._usage is not None):
            raise UpstreamStreamError(f"{self._upstream}'s stream ended before the answer was complete.")

    def _take(self, batch: list[Chunk]) -> tuple[list[Chunk], UpstreamStreamError | None]:
        """The chunks of one read to pass on now (usage and closing chunks are kept for finish()),
        and the error that ends the stream after them, if a chunk was bad."""
        client_model, include_usage = self._client_model, self._include_usage
        out: list[Chunk] = []
        for chunk in batch:
            if chunk is DONE:
                self._done = True
                break
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                return out, UpstreamStreamError(f"{self._upstream} sent a chunk without choices.")
            chunk["model"] = client_model
            usage = chunk.pop("usage", None) if not include_usage else chunk.get("usage")
            if isinstance(usage, dict):
                self._usage = usage
            if not choices:
                if usage is not None:
                    self._usage_chunk = chunk
                continue
            for choice in choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if isinstance(content, str):
                    self._chars += len(content)
                for call in delta.get("tool_calls") or ():
                    args = (call.get("function") or {}).get("arguments")
                    if isinstance(args, str):
                        self._chars += len(args)
            if any(choice.get("finish_reason") for choice in choices):
                self._closing.append(chunk)
            else:
                out.append(chunk)
        return out, None

    def finish(self) -> list[Chunk]:
        closing, usage = self._closing, self._usage
        if usage is None:
            return closing
        if self._include_usage:  # the usage-only chunk, unless the server put usage on a choice chunk
            return [*closing, self._usage_chunk] if self._usage_chunk is not None else closing
        if closing:
            closing[-1] = {**closing[-1], "usage": usage}
        return closing

    @property
    def output_chars(self) -> int:
        return self._chars

    def usage(self) -> UsageCounts | None:
        return read_openai_usage(self._usage) if self._usage is not None else None

    def close(self) -> None:
        self._resp.close()

    def release(self) -> None:
        self._resp.release()
