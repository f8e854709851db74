"""OpenAI's streaming wire format: `data: {json}` events, a blank line after each, `[DONE]` last.

Provider-neutral: every provider's chunks leave through these few functions. `encode` is on the
per-chunk hot path, so it builds the bytes in one expression (one JSON encode per chunk, one
join when a provider event became several chunks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiproxy.jsonutil import dumps

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}
DONE = b"data: [DONE]\n\n"


def encode(chunks: list[dict[str, Any]], dumps: Callable[[Any], bytes] = dumps) -> bytes:
    """The SSE events of `chunks`, ready for one write (`dumps` bound as a local: hot path)."""
    if len(chunks) == 1:
        return b"data: " + dumps(chunks[0]) + b"\n\n"
    return b"".join(b"data: " + dumps(c) + b"\n\n" for c in chunks)


def error_and_done(body: dict[str, Any]) -> bytes:
    """An error object as the last event, then `[DONE]` (a stream that broke after it started)."""
    return b"data: " + dumps(body) + b"\n\n" + DONE
