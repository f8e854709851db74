"""The model catalogue: what ``models.list``/``models.get`` return and what each model can do.

Metadata mirrors the shape of Google's ``Model`` resource (name, baseModelId, version,
displayName, description, token limits, supportedGenerationMethods, sampling defaults,
``thinking``). The capability flags drive validation so the proxy meets the same 400s it would
meet in production (2.5 Pro cannot stop thinking, thinkingLevel is Gemini 3 only, logprobs only
where enabled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_CHAT_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMBED_METHODS = ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]


@dataclass(frozen=True)
class ModelInfo:
    """One emulated model. ``resource`` is the exact JSON served by ``GET models/{id}``."""

    id: str
    display_name: str
    version: str
    description: str
    input_limit: int
    output_limit: int
    embedding: bool = False
    gemini3: bool = False
    thinks_by_default: bool = False  # dynamic thinking when no thinkingConfig is sent
    can_disable_thinking: bool = True  # thinkingBudget 0 accepted
    logprobs: bool = False  # responseLogprobs accepted
    resource: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def methods(self) -> list[str]:
        return _EMBED_METHODS if self.embedding else _CHAT_METHODS


def _model(**kw: Any) -> ModelInfo:
    info = ModelInfo(**kw)
    res: dict[str, Any] = {
        "name": f"models/{info.id}",
        "baseModelId": info.id,
        "version": info.version,
        "displayName": info.display_name,
        "description": info.description,
        "inputTokenLimit": info.input_limit,
        "outputTokenLimit": info.output_limit,
        "supportedGenerationMethods": list(info.methods),
    }
    if not info.embedding:
        res.update({"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True})
    info.resource.update(res)
    return info


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        _model(
            id="gemini-2.5-pro",
            display_name="Gemini 2.5 Pro",
            version="2.5",
            description="Stable release (June 17th, 2025) of Gemini 2.5 Pro",
            input_limit=1048576,
            output_limit=65536,
            thinks_by_default=True,
            can_disable_thinking=False,
        ),
        _model(
            id="gemini-2.5-flash",
            display_name="Gemini 2.5 Flash",
            version="001",
            description="Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports "
            "up to 1 million tokens, released in June of 2025.",
            input_limit=1048576,
            output_limit=65536,
            thinks_by_default=True,
            logprobs=True,
        ),
        _model(
            id="gemini-2.5-flash-lite",
            display_name="Gemini 2.5 Flash-Lite",
            version="001",
            description="Stable version of Gemini 2.5 Flash-Lite, released in July of 2025",
            input_limit=1048576,
            output_limit=65536,
        ),
        _model(
            id="gemini-3-pro-preview",
            display_name="Gemini 3 Pro Preview",
            version="3-pro-preview-11-2025",
            description="Gemini 3 Pro Preview",
            input_limit=1048576,
            output_limit=65536,
            gemini3=True,
            thinks_by_default=True,
            can_disable_thinking=False,
        ),
        _model(
            id="gemini-3.1-pro-preview",
            display_name="Gemini 3.1 Pro Preview",
            version="3.1-pro-preview-01-2026",
            description="Gemini 3.1 Pro Preview",
            input_limit=1048576,
            output_limit=65536,
            gemini3=True,
            thinks_by_default=True,
            can_disable_thinking=False,
        ),
        _model(
            id="gemini-3-flash-preview",
            display_name="Gemini 3 Flash Preview",
            version="3-flash-preview-12-2025",
            description="Gemini 3 Flash Preview",
            input_limit=1048576,
            output_limit=65536,
            gemini3=True,
            thinks_by_default=True,
        ),
        _model(
            id="gemini-3.5-flash",
            display_name="Gemini 3.5 Flash",
            version="3.5-flash",
            description="Gemini 3.5 Flash",
            input_limit=1048576,
            output_limit=65536,
            gemini3=True,
            thinks_by_default=True,
        ),
        _model(
            id="gemini-embedding-001",
            display_name="Gemini Embedding 001",
            version="001",
            description="Obtain a distributed representation of a text.",
            input_limit=2048,
            output_limit=1,
            embedding=True,
        ),
    )
}

EMBEDDING_DIMENSIONS = 3072
