"""Anthropic behind the provider seam: a chat request in, OpenAI chunks and usage counts out.

Wires this package together: request.py translates the request, client.py sends it (retries and
fallbacks from GeminiClient's loop), response.py translates each event, usage.py reads usage.
Anthropic has no embeddings API: `anthropic/<id>` embedding requests are a 400.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiproxy import jsonutil
from aiproxy.errors import ProxyError, bad_request
from aiproxy.openai.types import ChatRequest
from aiproxy.providers.anthropic.client import AnthropicClient, AnthropicStream
from aiproxy.providers.anthropic.request import DEFAULT_MAX_TOKENS, build_anthropic_request, json_tool_name
from aiproxy.providers.anthropic.response import AnthropicTranslator
from aiproxy.providers.base import ChatOptions, UsageCounts
from aiproxy.providers.lifecycle import ClientLifecycle
from aiproxy.providers.upstream import TranslatedChatStream

if TYPE_CHECKING:
    from aiproxy.config import Settings

log = logging.getLogger("aiproxy.providers.anthropic")
MODELS_CACHE_SECONDS = 600.0


class AnthropicChatStream(TranslatedChatStream):
    """One Anthropic generation as OpenAI chunk lists (see base.ChatStream)."""

    __slots__ = ()
    cut_off_message = "Anthropic's stream ended before the answer was complete."

    def usage(self) -> UsageCounts | None:
        return self._translator.usage()


class AnthropicChatCall:
    __slots__ = ("_client", "_req", "_model", "_body", "_options", "_default_max_tokens")

    def __init__(self, client: AnthropicClient, req: ChatRequest, model: str, body: dict[str, Any],
                 options: ChatOptions, default_max_tokens: int) -> None:
        self._client, self._req, self._model, self._body = client, req, model, body
        self._options, self._default_max_tokens = options, default_max_tokens

    async def open(self) -> AnthropicChatStream:
        o = self._options
        stream = await self._client.stream_generate(
            self._model, jsonutil.dumps(self._body),
            body_for=lambda m: jsonutil.dumps({**self._body, "model": m}))
        assert isinstance(stream, AnthropicStream)
        translator = AnthropicTranslator(
            completion_id=o.completion_id, created=int(time.time()), model=self._req.model,
            include_usage=o.include_usage, think_tags=o.think_tags, max_tool_calls=o.max_tool_calls,
            json_tool=json_tool_name(self._req))
        return AnthropicChatStream(stream, translator)


class AnthropicProvider(ClientLifecycle):
    """The Anthropic Messages API (or its emulator) as a `Provider`."""

    name = "anthropic"
    owned_by = "anthropic"
    client: AnthropicClient

    def __init__(self, client: AnthropicClient, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.client = client
        self.default_max_tokens = default_max_tokens
        self._models: tuple[float, list[str]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicProvider:
        return cls(AnthropicClient(
            settings.anthropic_base_url, settings.anthropic_key,
            connect_timeout=settings.upstream_connect_timeout, first_byte_timeout=settings.upstream_timeout,
            idle_timeout=settings.upstream_idle_timeout,
        ), settings.anthropic_default_max_tokens)

    def prepare_chat(self, req: ChatRequest, upstream_model: str, options: ChatOptions) -> AnthropicChatCall:
        body = build_anthropic_request(req, upstream_model, self.default_max_tokens)
        return AnthropicChatCall(self.client, req, upstream_model, body, options, self.default_max_tokens)

    def embed(self, model: str, texts: list[str],
              dims: int | None) -> AsyncIterator[tuple[list[str], list[list[float]]]]:
        raise bad_request("Anthropic has no embeddings API; use an embedding model of another provider.",
                          param="model", code="model_not_supported")

    async def count_tokens(self, model: str, texts: list[str]) -> int | None:
        return None

    async def list_models(self) -> list[str]:
        """GET /v1/models, cached (the registry lists them as `anthropic/<id>`: a bare Claude id
        routes nowhere); empty when Anthropic is unreachable."""
        cached = self._models
        if cached and time.monotonic() - cached[0] < MODELS_CACHE_SECONDS:
            return cached[1]
        try:
            page: Any = await self.client.call_json("GET", "models?limit=1000")
            ids = [m["id"] for m in page.get("data", ()) if isinstance(m, dict) and m.get("id")]
        except (ProxyError, AttributeError) as exc:
            log.warning("could not list Anthropic models: %s", getattr(exc, "message", exc))
            return cached[1] if cached else []
        self._models = (time.monotonic(), ids)
        return ids
