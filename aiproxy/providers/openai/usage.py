"""OpenAI's `usage` object -> provider-neutral UsageCounts, validated like Gemini's counts.

OpenAI already counts as we bill: prompt_tokens includes the cached part
(`prompt_tokens_details.cached_tokens`, priced at the cached rate) and completion_tokens the
reasoning part (`completion_tokens_details.reasoning_tokens`, output tokens). Each count goes
through the same clamp as Gemini's (aiproxy/providers/gemini/usage.py): an OpenAI-compatible
server is no more trusted than Gemini, so negatives, non-numbers and absurd values are corrected,
parts are capped to their wholes, and every correction is named in `problems`.
"""

from __future__ import annotations

from typing import Any

from aiproxy.providers.base import UsageCounts
from aiproxy.providers.gemini.usage import clamp_count


def read_openai_usage(usage: dict[str, Any]) -> UsageCounts:
    problems: list[str] = []

    def count(obj: Any, field: str, where: str) -> int:
        value, ok = clamp_count(obj.get(field) if isinstance(obj, dict) else None)
        if not ok:
            problems.append(where)
        return value

    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    prompt = count(usage, "prompt_tokens", "prompt_tokens")
    completion = count(usage, "completion_tokens", "completion_tokens")
    cached = count(prompt_details, "cached_tokens", "prompt_tokens_details.cached_tokens")
    audio = count(prompt_details, "audio_tokens", "prompt_tokens_details.audio_tokens")
    reasoning = count(completion_details, "reasoning_tokens", "completion_tokens_details.reasoning_tokens")
    if cached > prompt:
        problems.append("cached_tokens>prompt_tokens")
        cached = prompt
    if audio > prompt:
        problems.append("audio_tokens>prompt_tokens")
        audio = prompt
    if reasoning > completion:
        problems.append("reasoning_tokens>completion_tokens")
        reasoning = completion
    total = prompt + completion
    reported_total = usage.get("total_tokens")
    if reported_total is not None and reported_total != total:
        problems.append("total_tokens")
    return UsageCounts(prompt, completion, total, reasoning, cached, audio, 0, tuple(problems))
