"""Gemini usageMetadata -> OpenAI usage, with Gemini's accounting kept exact.

prompt = promptTokenCount + toolUsePromptTokenCount; completion = candidates + thoughts (Gemini
bills thoughts as output); total = totalTokenCount as Gemini reports it.
"""

from __future__ import annotations

from typing import Any


def token_counts(meta: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(prompt, completion, total, reasoning, cached) from a usageMetadata dict."""
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    reasoning = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + reasoning
    total = int(meta.get("totalTokenCount") or (prompt + completion))
    cached = int(meta.get("cachedContentTokenCount") or 0)
    return prompt, completion, total, reasoning, cached


def audio_prompt_tokens(meta: dict[str, Any]) -> int:
    return sum(int(d.get("tokenCount") or 0) for d in meta.get("promptTokensDetails") or () if d.get("modality") == "AUDIO")


def openai_usage(meta: dict[str, Any]) -> dict[str, Any]:
    prompt, completion, total, reasoning, cached = token_counts(meta)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio_prompt_tokens(meta)},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
