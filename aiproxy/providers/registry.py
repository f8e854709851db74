"""`Providers`: every enabled provider, which one serves a model name, and their sessions.

A name whose prefix is an enabled provider's (`openai/gpt-4o`, `ollama/llama3.2`) goes to
that provider with the rest as its model id. Everything else goes through the model map
(aliases, `gemini/` and `models/` prefixes, Gemini ids) to Gemini, the first provider; so a
prefix of a provider that is not enabled is the map's 404 `model_not_found`, before anything is
spent. A new provider is one entry in `load_providers`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from aiproxy.observability import redact
from aiproxy.providers.base import Provider, UpstreamEvents
from aiproxy.providers.declared import load_declared_providers, process_environment
from aiproxy.providers.gemini.provider import GeminiProvider
from aiproxy.providers.modelmap import DEFAULT_MODELS_FILE, ModelMap
from aiproxy.providers.modelnames import parse_model_name
from aiproxy.providers.openai.client import OpenAIClient
from aiproxy.providers.openai.provider import OpenAIProvider, timeouts_from

if TYPE_CHECKING:
    from aiohttp import web

    from aiproxy.config import Settings
    from aiproxy.providers.retry import Fallbacks, RetryPolicy


class Providers:
    def __init__(self, models: ModelMap, providers: Sequence[Provider]) -> None:
        if not providers:
            raise ValueError("at least one provider is needed")
        self.models = models
        self._providers = tuple(providers)
        self._default = self._providers[0]
        self._by_prefix = {p.name: p for p in self._providers[1:]}

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers)

    def resolve_chat(self, name: str) -> tuple[Provider, str]:
        """(the provider, its model id) for a client's chat model name; 400/404 ProxyError otherwise."""
        return self._route(name) or (self._default, self.models.resolve_chat(name))

    def resolve_embedding(self, name: str) -> tuple[Provider, str]:
        return self._route(name) or (self._default, self.models.resolve_embedding(name))

    def _route(self, name: str) -> tuple[Provider, str] | None:
        """The enabled non-default provider a `prefix/id` name names, with its model id."""
        parsed = parse_model_name(name)  # 400 for anything outside the pattern
        provider = self._by_prefix.get(parsed.provider) if parsed.provider else None
        return (provider, parsed.name) if provider is not None else None

    async def list_models(self) -> list[tuple[str, str]]:
        """(model id, owner) of every provider's own models, provider by provider."""
        return [(model_id, p.owned_by) for p in self._providers for model_id in await p.list_models()]

    def configure(self, retry_policy: RetryPolicy, fallbacks: Fallbacks, events: UpstreamEvents) -> None:
        for p in self._providers:
            p.configure(retry_policy, fallbacks, events)

    @property
    def is_open(self) -> bool:
        return all(p.is_open for p in self._providers)

    async def sessions(self, _app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context: every provider's session lives as long as the app."""
        started: list[Provider] = []
        try:
            for p in self._providers:
                await p.start()
                started.append(p)
            yield
        finally:
            for p in reversed(started):
                await p.close()


def load_providers(settings: Settings, models: ModelMap,
                   environ: Mapping[str, str] | None = None) -> Providers:
    """The enabled providers, from the settings (Gemini always: keys are checked at start-up;
    OpenAI when OPENAI_API_KEY is set; every provider declared in the models files)."""
    providers: list[Provider] = [GeminiProvider.from_settings(settings)]
    if settings.openai_key:
        providers.append(OpenAIProvider.from_settings(settings))
    env = process_environment() if environ is None else environ
    for declared in load_declared_providers(DEFAULT_MODELS_FILE, settings.models_file):
        key = declared.api_key(env)
        redact.REDACTOR.add([key])
        providers.append(OpenAIProvider(declared.name, OpenAIClient(declared.base_url, key, declared.name,
                                                                    timeouts_from(settings))))
    return Providers(models, providers)
