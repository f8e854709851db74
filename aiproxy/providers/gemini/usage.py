"""Gemini usageMetadata -> OpenAI usage, with Gemini's accounting kept exact and never trusted blindly.

prompt = promptTokenCount + toolUsePromptTokenCount; completion = candidates + thoughts (Gemini
bills thoughts as output); total = prompt + completion (Gemini's totalTokenCount is the same sum).

Every count is validated before it can reach a price: a negative count once produced a negative
cost (a credit) and `1e30` overflowed the ledger's BIGINT and lost the row. Booleans, strings,
NaN and other non-numbers read as 0, fractions are truncated, negatives become 0, and anything
above MAX_TOKENS_PER_FIELD becomes that ceiling; parts that cannot exceed their whole (cached and
audio tokens within the prompt) are capped to it, and a total that disagrees with its parts is
recomputed. Each correction is named in `UsageCounts.problems`, so the meter can flag the row
as estimated and log it.
"""

from __future__ import annotations

import math
from typing import Any

from aiproxy.providers.base import UsageCounts

# Per field: 50x the largest context window Gemini offers (2M tokens), far below BIGINT and
# exactly representable everywhere; no genuine count comes near it.
MAX_TOKENS_PER_FIELD = 100_000_000


def clamp_count(value: Any) -> tuple[int, bool]:
    """(a count in 0..MAX_TOKENS_PER_FIELD, True when `value` was already a valid count)."""
    if value is None:
        return 0, True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0, False
    if isinstance(value, float):
        if math.isnan(value):
            return 0, False
        if math.isinf(value):
            return (MAX_TOKENS_PER_FIELD if value > 0 else 0), False
        clamped, _ = clamp_count(int(min(max(value, -1.0), MAX_TOKENS_PER_FIELD + 1.0)))
        return clamped, False
    if value < 0:
        return 0, False
    if value > MAX_TOKENS_PER_FIELD:
        return MAX_TOKENS_PER_FIELD, False
    return value, True


def _modality_count(details: Any, modality: str, field: str, problems: list[str]) -> int:
    if details is None:
        return 0
    if not isinstance(details, list):
        problems.append(field)
        return 0
    total = 0
    for entry in details:
        if not isinstance(entry, dict):
            problems.append(field)
            continue
        count, ok = clamp_count(entry.get("tokenCount"))
        if not ok:
            problems.append(f"{field}.tokenCount")
        if entry.get("modality") == modality:
            total += count
    return min(total, MAX_TOKENS_PER_FIELD)


def read_usage(meta: dict[str, Any]) -> UsageCounts:
    """The validated, provider-neutral counts of one usageMetadata dict."""
    problems: list[str] = []

    def count(field: str) -> int:
        value, ok = clamp_count(meta.get(field))
        if not ok:
            problems.append(field)
        return value

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    reasoning = count("thoughtsTokenCount")
    completion = count("candidatesTokenCount") + reasoning
    cached = count("cachedContentTokenCount")
    reported_total = count("totalTokenCount") if meta.get("totalTokenCount") is not None else None
    audio = _modality_count(meta.get("promptTokensDetails"), "AUDIO", "promptTokensDetails", problems)
    cached_audio = _modality_count(meta.get("cacheTokensDetails"), "AUDIO", "cacheTokensDetails", problems)
    if cached > prompt:
        problems.append("cachedContentTokenCount>prompt")
        cached = prompt
    if audio > prompt:
        problems.append("promptTokensDetails>prompt")
        audio = prompt
    if cached_audio > min(cached, audio):
        problems.append("cacheTokensDetails>cached")
        cached_audio = min(cached, audio)
    total = prompt + completion
    if reported_total is not None and reported_total != total and "totalTokenCount" not in problems:
        problems.append("totalTokenCount")
    return UsageCounts(prompt, completion, total, reasoning, cached, audio, cached_audio, tuple(problems))


def audio_prompt_tokens(meta: dict[str, Any]) -> int:
    return read_usage(meta).audio


def openai_usage(meta: dict[str, Any]) -> dict[str, Any]:
    c = read_usage(meta)
    return {
        "prompt_tokens": c.prompt,
        "completion_tokens": c.completion,
        "total_tokens": c.total,
        "prompt_tokens_details": {"cached_tokens": c.cached, "audio_tokens": c.audio},
        "completion_tokens_details": {"reasoning_tokens": c.reasoning},
    }
