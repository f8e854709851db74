"""OpenAI (or any server speaking its API) as a `Provider`: pass-through chat, embeddings, models.

`name` is the routing prefix (`openai/gpt-4o`, `ollama/llama3.2`); one class serves OpenAI
itself (OPENAI_API_KEY / OPENAI_BASE_URL) and every `dialect = "openai"` provider declared in
the models file (aiproxy/providers/declared.py). Fallback chains apply to this provider's own
models when both sides carry its prefix (`openai/gpt-4o=openai/gpt-4o-mini`), so they never mix
with Gemini's chains of bare ids.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.openai.types import ChatRequest
from aiproxy.providers.base import ChatOptions, UpstreamEvents
from aiproxy.providers.openai.client import OpenAIClient
from aiproxy.providers.openai.request import build_openai_request
from aiproxy.providers.openai.stream import OpenAIChatStream
from aiproxy.providers.retry import Fallbacks, RetryPolicy
from aiproxy.providers.upstream import SessionLifecycle, Timeouts

if TYPE_CHECKING:
    from aiproxy.config import Settings

log = logging.getLogger("aiproxy.providers.openai")

MODELS_CACHE_SECONDS = 600.0
COUNTED_EMBEDDINGS = 256  # embedding calls whose upstream token counts wait for count_tokens()


def timeouts_from(settings: Settings) -> Timeouts:
    return Timeouts(settings.upstream_connect_timeout, settings.upstream_timeout, settings.upstream_idle_timeout)


class OpenAIChatCall:
    __slots__ = ("_provider", "_req", "_model", "_body", "_include_usage")

    def __init__(self, provider: OpenAIProvider, req: ChatRequest, model: str, body: dict[str, Any],
                 include_usage: bool) -> None:
        self._provider = provider
        self._req = req
        self._model = model
        self._body = body
        self._include_usage = include_usage

    async def open(self) -> OpenAIChatStream:
        p, body = self._provider, self._body
        first = jsonutil.dumps(body)
        resp, used = await p.client.send(
            "POST", "chat/completions", p.model_chain(self._model),
            lambda m: first if m == self._model else jsonutil.dumps({**body, "model": m}))
        return OpenAIChatStream(resp, used, self._req.model, self._include_usage, p.client.upstream)


class OpenAIProvider(SessionLifecycle):
    owned_by: str
    client: OpenAIClient

    def __init__(self, name: str, client: OpenAIClient, owned_by: str | None = None) -> None:
        self.name = name
        self.owned_by = owned_by or name
        self.client = client
        self._fallbacks: Fallbacks = {}
        self._models: tuple[float, list[str]] | None = None
        self._counted: OrderedDict[tuple[str, tuple[str, ...]], int] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        """OpenAI itself, from OPENAI_API_KEY / OPENAI_BASE_URL."""
        return cls("openai", OpenAIClient(settings.openai_base_url, settings.openai_key, "OpenAI",
                                          timeouts_from(settings)), owned_by="openai")

    def model_chain(self, model: str) -> tuple[str, ...]:
        prefix = self.name + "/"
        chain = [model]
        for target in self._fallbacks.get(prefix + model, ()):
            if target.startswith(prefix) and target[len(prefix):] not in chain:
                chain.append(target[len(prefix):])
        return tuple(chain)

    def prepare_chat(self, req: ChatRequest, upstream_model: str, options: ChatOptions) -> OpenAIChatCall:
        return OpenAIChatCall(self, req, upstream_model, build_openai_request(req, upstream_model),
                              options.include_usage)

    async def embed(self, model: str, texts: list[str], dims: int | None,
                    ) -> AsyncIterator[tuple[list[str], list[list[float]]]]:
        """One upstream call for all texts (OpenAI takes 2048, the proxy's own limit)."""
        body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
        if dims is not None:
            body["dimensions"] = dims
        answer = await self.client.call_json("POST", "embeddings", model, body)
        try:
            data = sorted(answer["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in data]
        except (KeyError, TypeError):
            raise ProxyError(502, f"{self.client.upstream} sent an unreadable embeddings answer.", type="api_error",
                             code="upstream_error") from None
        if len(vectors) != len(texts):
            raise ProxyError(502, f"{self.client.upstream} answered {len(vectors)} embeddings for {len(texts)} "
                             "inputs.", type="api_error", code="upstream_error")
        tokens = (answer.get("usage") or {}).get("prompt_tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            self._counted[(model, tuple(texts))] = tokens
            while len(self._counted) > COUNTED_EMBEDDINGS:
                self._counted.popitem(last=False)
        yield texts, vectors

    async def count_tokens(self, model: str, texts: list[str]) -> int | None:
        """The prompt_tokens the upstream reported when it embedded exactly these texts."""
        return self._counted.pop((model, tuple(texts)), None)

    async def list_models(self) -> list[str]:
        """The upstream's model ids, cached (the registry lists them as `openai/<id>`)."""
        cached = self._models
        if cached and time.monotonic() - cached[0] < MODELS_CACHE_SECONDS:
            return cached[1]
        try:
            page = await self.client.call_json("GET", "models", "models")
            ids = [m["id"] for m in page.get("data", ()) if isinstance(m.get("id"), str)]
        except (ProxyError, AttributeError, TypeError) as exc:
            log.warning("could not list %s models: %s", self.name, getattr(exc, "message", type(exc).__name__))
            return cached[1] if cached else []
        self._models = (time.monotonic(), ids)
        return ids

    def configure(self, retry_policy: RetryPolicy, fallbacks: Fallbacks, events: UpstreamEvents) -> None:
        self.client.retry_policy = retry_policy
        self.client.events = events
        self._fallbacks = fallbacks
