"""Anthropic usage -> provider-neutral counts.

Anthropic's `input_tokens` excludes what was read from or written to the prompt cache, so
prompt = input_tokens + cache_read_input_tokens + cache_creation_input_tokens; cached =
cache_read_input_tokens (priced at the cached rate), cache_write = cache_creation_input_tokens
(priced at the cache-write rate where the price table has one). Thinking is billed inside
output_tokens and not reported apart, so reasoning is 0. Counts are clamped like Gemini's
(providers/gemini/usage.clamp_count) and each correction is named in `problems`.
"""

from __future__ import annotations

from typing import Any

from aiproxy.providers.base import UsageCounts
from aiproxy.providers.gemini.usage import clamp_count


def read_anthropic_usage(usage: dict[str, Any]) -> UsageCounts:
    problems: list[str] = []

    def count(field: str) -> int:
        value, ok = clamp_count(usage.get(field))
        if not ok:
            problems.append(field)
        return value

    read, write = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    prompt = count("input_tokens") + read + write
    completion = count("output_tokens")
    return UsageCounts(prompt, completion, prompt + completion, 0, read, 0, 0, tuple(problems), cache_write=write)


def openai_usage(counts: UsageCounts) -> dict[str, Any]:
    return {
        "prompt_tokens": counts.prompt,
        "completion_tokens": counts.completion,
        "total_tokens": counts.total,
        "prompt_tokens_details": {"cached_tokens": counts.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
