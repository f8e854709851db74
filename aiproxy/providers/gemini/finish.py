"""Gemini finishReason -> OpenAI finish_reason (only stop, length, tool_calls, content_filter)."""

from __future__ import annotations

_CONTENT_FILTER = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE",
    "OTHER", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "BLOCKED",
})


def openai_finish_reason(native: str | None) -> str:
    """Unknown or benign reasons (STOP, MALFORMED_FUNCTION_CALL, ...) end as `stop`."""
    if native == "MAX_TOKENS":
        return "length"
    if native in _CONTENT_FILTER:
        return "content_filter"
    return "stop"
