"""`Providers`: every enabled provider, which one serves a model name, and their sessions.

Resolution goes through the model map (aliases, `gemini/` and `models/` prefixes, Gemini ids);
today every name it accepts is served by Gemini. A new provider is one entry in
`load_providers` and a branch in `_route` (its prefix, or the provider a map entry names).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING

from aiproxy.providers.anthropic.provider import AnthropicProvider
from aiproxy.providers.base import Provider, UpstreamEvents
from aiproxy.providers.gemini.provider import GeminiProvider
from aiproxy.providers.modelmap import ModelMap
from aiproxy.providers.modelnames import parse_model_name

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

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers)

    def resolve_chat(self, name: str) -> tuple[Provider, str]:
        """(the provider, its model id) for a client's chat model name; 400/404 ProxyError otherwise."""
        return self._prefixed(name) or self._route(self.models.resolve_chat(name))

    def resolve_embedding(self, name: str) -> tuple[Provider, str]:
        return self._prefixed(name) or self._route(self.models.resolve_embedding(name))

    def _prefixed(self, name: str) -> tuple[Provider, str] | None:
        """`anthropic/<id>` -> (that enabled provider, <id>); None for names the model map resolves
        (a disabled provider's prefix then ends there as 404 model_not_found)."""
        parsed = parse_model_name(name)
        provider = next((p for p in self._providers if p.name == parsed.provider and p.name == "anthropic"), None)
        return (provider, parsed.name) if provider is not None else None

    def _route(self, upstream_model: str) -> tuple[Provider, str]:
        return self._default, upstream_model

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


def load_providers(settings: Settings, models: ModelMap) -> Providers:
    """The enabled providers, from the settings (Gemini always: keys are checked at start-up;
    Anthropic when ANTHROPIC_API_KEY is set)."""
    providers: list[Provider] = [GeminiProvider.from_settings(settings)]
    if settings.anthropic_key:
        providers.append(AnthropicProvider.from_settings(settings))
    return Providers(models, providers)
