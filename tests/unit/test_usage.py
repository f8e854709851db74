"""Gemini usageMetadata -> OpenAI usage: the counts a user is billed for."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.providers.gemini.usage import openai_usage, read_usage

CASES = [
    pytest.param({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
                 (10, 5, 15, 0, 0, 0), id="plain"),
    pytest.param({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 20, "totalTokenCount": 35},
                 (10, 25, 35, 20, 0, 0), id="thoughts-are-completion"),
    pytest.param({"promptTokenCount": 10, "toolUsePromptTokenCount": 4, "candidatesTokenCount": 1,
                  "totalTokenCount": 15},
                 (14, 1, 15, 0, 0, 0), id="tool-use-prompt-is-prompt"),
    pytest.param({"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 1,
                  "totalTokenCount": 101},
                 (100, 1, 101, 0, 60, 0), id="cached"),
    pytest.param({"promptTokenCount": 30, "candidatesTokenCount": 2, "totalTokenCount": 32,
                  "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5},
                                          {"modality": "AUDIO", "tokenCount": 25}]},
                 (30, 2, 32, 0, 0, 25), id="audio-prompt-tokens"),
    pytest.param({"promptTokenCount": 7}, (7, 0, 7, 0, 0, 0), id="blocked-prompt-no-candidates-no-total"),
    pytest.param({}, (0, 0, 0, 0, 0, 0), id="empty"),
]


@pytest.mark.parametrize(("meta", "expected"), CASES)
def test_openai_usage(meta: dict[str, Any], expected: tuple[int, ...]) -> None:
    prompt, completion, total, reasoning, cached, audio = expected
    c = read_usage(meta)
    assert (c.prompt, c.completion, c.total, c.reasoning, c.cached) == (prompt, completion, total, reasoning, cached)
    assert openai_usage(meta) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def test_usage_metadata_validates_as_google_genai_type() -> None:
    """The field names read here are the ones google-genai defines."""
    from google.genai import types

    meta = {"promptTokenCount": 1, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "toolUsePromptTokenCount": 4,
            "cachedContentTokenCount": 0, "totalTokenCount": 10}
    parsed = types.GenerateContentResponseUsageMetadata.model_validate(meta)
    assert parsed.model_dump(by_alias=True, exclude_none=True) == meta


MAX = 100_000_000  # MAX_TOKENS_PER_FIELD, documented in aiproxy.providers.gemini.usage

HOSTILE = [
    pytest.param({"promptTokenCount": -500, "candidatesTokenCount": 5, "totalTokenCount": -495},
                 (0, 5, 5, 0), ("promptTokenCount", "totalTokenCount"), id="negative-prompt"),
    pytest.param({"promptTokenCount": 10, "candidatesTokenCount": 1e30, "totalTokenCount": 1e30},
                 (10, MAX, MAX + 10, 0), ("candidatesTokenCount", "totalTokenCount"), id="1e30-output"),
    pytest.param({"promptTokenCount": True, "candidatesTokenCount": "7", "totalTokenCount": 7},
                 (0, 0, 0, 0), ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"), id="bool-and-string"),
    pytest.param({"promptTokenCount": 12.7, "candidatesTokenCount": float("nan"), "thoughtsTokenCount": float("inf")},
                 (12, MAX, MAX + 12, MAX), ("promptTokenCount", "thoughtsTokenCount", "candidatesTokenCount"),
                 id="fraction-nan-inf"),
    pytest.param({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 9000},
                 (10, 5, 15, 0), ("totalTokenCount",), id="inconsistent-total-recomputed"),
    pytest.param({"promptTokenCount": 10, "cachedContentTokenCount": 50, "totalTokenCount": 10},
                 (10, 0, 10, 10), ("cachedContentTokenCount>prompt",), id="cached-above-prompt"),
    pytest.param({"promptTokenCount": 200_000_001, "totalTokenCount": 200_000_001},
                 (MAX, 0, MAX, 0), ("promptTokenCount", "totalTokenCount"), id="over-the-ceiling"),
]


@pytest.mark.parametrize(("meta", "expected", "problems"), HOSTILE)
def test_hostile_usage_is_clamped_and_named(meta: dict[str, Any], expected: tuple[int, ...],
                                            problems: tuple[str, ...]) -> None:
    from aiproxy.providers.gemini.usage import read_usage

    counts = read_usage(meta)
    prompt, completion, total, fourth = expected
    assert (counts.prompt, counts.completion, counts.total) == (prompt, completion, total)
    assert fourth in (counts.reasoning, counts.cached)
    assert set(counts.problems) == set(problems)
    assert min(counts.prompt, counts.completion, counts.total, counts.cached, counts.audio) >= 0


@pytest.mark.parametrize(("meta",), [(p.values[0],) for p in CASES])
def test_honest_usage_has_no_problems(meta: dict[str, Any]) -> None:
    from aiproxy.providers.gemini.usage import read_usage

    assert read_usage(meta).problems == ()
