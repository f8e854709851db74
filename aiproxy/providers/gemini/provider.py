"""Gemini behind the provider seam: a chat request in, OpenAI chunks and usage counts out.

Wires the pieces of this package together and nothing else: request.py translates the request,
client.py sends it (retries, fallbacks, the SSE reader), response.py translates each Gemini
chunk, usage.py reads usageMetadata into provider-neutral counts; embeddings.py and the model
list use the same client. A client that wants one answer (stream: false) gets it from
generateContent: its one body enters the same translator as one chunk, which saves the proxy
parsing and translating ~20 SSE events to fold them back into one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.openai.types import ChatRequest
from aiproxy.providers.base import ChatOptions, UsageCounts
from aiproxy.providers.gemini.client import GeminiClient
from aiproxy.providers.gemini.embeddings import count_prompt_tokens, embed_slices
from aiproxy.providers.gemini.request import build_gemini_request
from aiproxy.providers.gemini.response import StreamTranslator
from aiproxy.providers.gemini.usage import read_usage
from aiproxy.providers.lifecycle import ClientLifecycle
from aiproxy.providers.upstream import TranslatedChatStream

if TYPE_CHECKING:
    from aiproxy.config import Settings

log = logging.getLogger("aiproxy.providers.gemini")

MODELS_CACHE_SECONDS = 600.0
MODEL_PAGES = 10  # at most this many pages of 1000 models


class GeminiChatStream(TranslatedChatStream):
    """One Gemini generation as OpenAI chunk lists (see base.ChatStream and TranslatedChatStream);
    a generateContent answer (GeminiAnswer) is one batch of one chunk holding every part."""

    __slots__ = ()
    cut_off_message = "Gemini's stream ended before the answer was complete."

    def usage(self) -> UsageCounts | None:
        meta = self._translator.usage_metadata
        return read_usage(meta) if meta else None


class GeminiChatCall:
    """A chat request already translated for Gemini; `open()` sends it."""

    __slots__ = ("_client", "_req", "_model", "_body", "_options")

    def __init__(self, client: GeminiClient, req: ChatRequest, model: str, body: bytes, options: ChatOptions) -> None:
        self._client = client
        self._req = req
        self._model = model
        self._body = body
        self._options = options

    async def open(self) -> GeminiChatStream:
        req, o = self._req, self._options
        client = self._client
        # One body for a buffered answer (generateContent), SSE for a streamed one; a fallback
        # model gets its own request either way: thinking settings differ by model family.
        generate = client.stream_generate if o.stream else client.generate
        stream = await generate(self._model, self._body,
                                body_for=lambda m: jsonutil.dumps(build_gemini_request(req, m)))
        translator = StreamTranslator(
            completion_id=o.completion_id, created=int(time.time()), model=req.model,
            include_usage=o.include_usage, think_tags=o.think_tags, max_tool_calls=o.max_tool_calls,
        )
        return GeminiChatStream(stream, translator)


class GeminiProvider(ClientLifecycle):
    """The Gemini API (or its emulator) as a `Provider`."""

    name = "gemini"
    owned_by = "google"
    client: GeminiClient

    def __init__(self, client: GeminiClient) -> None:
        self.client = client
        self._models: tuple[float, list[str]] | None = None  # (fetched at, ids)

    @classmethod
    def from_settings(cls, settings: Settings) -> GeminiProvider:
        return cls(GeminiClient(
            settings.gemini_base_url,
            settings.gemini_key or "demo",
            connect_timeout=settings.upstream_connect_timeout,
            first_byte_timeout=settings.upstream_timeout,
            idle_timeout=settings.upstream_idle_timeout,
            answer_timeout=settings.upstream_answer_timeout,
        ))

    def prepare_chat(self, req: ChatRequest, upstream_model: str, options: ChatOptions) -> GeminiChatCall:
        body = jsonutil.dumps(build_gemini_request(req, upstream_model))
        return GeminiChatCall(self.client, req, upstream_model, body, options)

    def embed(self, model: str, texts: list[str],
              dims: int | None) -> AsyncIterator[tuple[list[str], list[list[float]]]]:
        return embed_slices(self.client, model, texts, dims)

    async def count_tokens(self, model: str, texts: list[str]) -> int | None:
        return await count_prompt_tokens(self.client, model, texts)

    async def list_models(self) -> list[str]:
        """Gemini's generateContent/embedContent models, cached; empty when Gemini is unreachable."""
        cached = self._models
        if cached and time.monotonic() - cached[0] < MODELS_CACHE_SECONDS:
            return cached[1]
        ids: list[str] = []
        try:
            token = ""
            for _ in range(MODEL_PAGES):
                page: Any = await self.client.call_json(
                    "GET", "models?pageSize=1000" + (f"&pageToken={token}" if token else ""))
                for m in page.get("models", ()):
                    methods = m.get("supportedGenerationMethods") or ()
                    if "generateContent" in methods or "embedContent" in methods:
                        ids.append(m["name"].removeprefix("models/"))
                token = page.get("nextPageToken") or ""
                if not token:
                    break
        except ProxyError as exc:
            log.warning("could not list upstream models: %s", exc.message)
            return cached[1] if cached else []
        self._models = (time.monotonic(), ids)
        return ids
