"""`Providers`: every enabled provider, which one serves a model name, and their sessions.

A name whose prefix is an enabled provider's (`openai/gpt-4o`, `ollama/llama3.2`) goes to
that provider with the rest as its model id. Everything else goes through the model map
(aliases, `gemini/` and `models/` prefixes, Gemini ids) to Gemini, the first provider; so a
prefix of a provider that is not enabled is the map's 404 `model_not_found`, before anything is
spent. A new provider is one entry in `load_providers`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from aiproxy.errors import ProxyError
from aiproxy.observability import redact
from aiproxy.providers.anthropic.provider import AnthropicProvider
from aiproxy.providers.base import Provider, UpstreamEvents
from aiproxy.providers.declared import load_declared_providers, process_environment
from aiproxy.providers.gemini.provider import GeminiProvider
from aiproxy.providers.modelmap import DEFAULT_MODELS_FILE, ModelMap
from aiproxy.providers.modelnames import parse_model_name
from aiproxy.providers.openai.client import OpenAIClient
from aiproxy.providers.openai.provider import OpenAIProvider, timeouts_from
from aiproxy.providers.router import Candidate, Circuits, Route, RoutedCall, Router, routes_from_toml

log = logging.getLogger("aiproxy.providers")

if TYPE_CHECKING:
    from aiohttp import web

    from aiproxy.config import Settings
    from aiproxy.openai.types import ChatRequest
    from aiproxy.providers.base import ChatOptions
    from aiproxy.providers.retry import Fallbacks, RetryPolicy


class Providers:
    def __init__(self, models: ModelMap, providers: Sequence[Provider], routes: dict[str, Route] | None = None,
                 circuits: Circuits | None = None) -> None:
        if not providers:
            raise ValueError("at least one provider is needed")
        self.models = models
        self._providers = tuple(providers)
        self._default = self._providers[0]
        self._by_prefix = {p.name: p for p in self._providers[1:]}
        self.routes = routes or {}  # `[routes.<alias>]` of the models files: candidates with a strategy
        self.fallbacks: Fallbacks = {}
        self.router = Router(circuits or Circuits(failures=0, open_seconds=0))

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

    def route_chat(self, name: str) -> tuple[list[Candidate], str | None, str]:
        """(candidates, route alias or None, strategy) for a client's chat model name: a route's
        enabled candidates, else the model and its MODEL_FALLBACKS chain; 400/404 ProxyError
        before anything is spent."""
        route = self.routes.get(name)
        if route is not None:
            found = [c for c in map(self._candidate, route.candidates) if c is not None]
            if not found:
                raise ProxyError(404, f"No enabled provider serves the model `{name}`.", param="model",
                                 code="model_not_found")
            return found, name, route.strategy
        provider, model = self.resolve_chat(name)
        chain = [Candidate(provider, model, name)]
        targets = self.fallbacks.get(model) or self.fallbacks.get(f"{provider.name}/{model}") or ()
        for cand in map(self._candidate, targets):
            if cand is not None and all((c.provider, c.model) != (cand.provider, cand.model) for c in chain):
                chain.append(cand)
        return chain, None, "ordered"

    def _candidate(self, name: str) -> Candidate | None:
        """A configured candidate (`provider/model` or a mapped name); None when its provider is
        not enabled (no key) or the name resolves nowhere."""
        prefix, sep, rest = name.partition("/")
        by_name = {p.name: p for p in self._providers}
        if sep and prefix in by_name and prefix != self._default.name:
            return Candidate(by_name[prefix], rest, name)
        try:
            provider, model = self.resolve_chat(name)
        except ProxyError:
            return None
        return Candidate(provider, model, name)

    def open_chat(self, req: ChatRequest, options: ChatOptions, candidates: list[Candidate], alias: str | None,
                  strategy: str) -> RoutedCall:
        """The candidates in the strategy's order, the first translated now (a 400 before metering)."""
        return self.router.call(req, options, candidates, alias, strategy)

    async def list_models(self) -> list[tuple[str, str]]:
        """(model id, owner) of every provider's own models, provider by provider: the default
        provider's ids as they are, the others' as `provider/id` (how a client routes to them, and
        no clash with an alias of the same name). A provider that cannot list is left out."""
        found: list[tuple[str, str]] = []
        for p in self._providers:
            try:
                ids = await p.list_models()
            except Exception:  # one provider's listing must not break the others' (logged)
                log.warning("provider %s could not list its models", p.name, exc_info=True)
                continue
            prefix = "" if p is self._default else f"{p.name}/"
            found += [(prefix + model_id, p.owned_by) for model_id in ids]
        return found

    def configure(self, retry_policy: RetryPolicy, fallbacks: Fallbacks, events: UpstreamEvents) -> None:
        """Fallback chains are walked by the router, across providers; each provider keeps its
        retries on one model."""
        self.fallbacks = fallbacks
        self.router.events, self.router.deadline = events, retry_policy.deadline
        for p in self._providers:
            p.configure(retry_policy, {}, events)

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
    OpenAI when OPENAI_API_KEY is set; Anthropic when ANTHROPIC_API_KEY is set; every provider
    declared in the models files), with the
    models files' routes and the circuit breaker's settings."""
    providers: list[Provider] = [GeminiProvider.from_settings(settings)]
    if settings.openai_key:
        providers.append(OpenAIProvider.from_settings(settings))
    if settings.anthropic_key:
        providers.append(AnthropicProvider.from_settings(settings))
    env = process_environment() if environ is None else environ
    for declared in load_declared_providers(DEFAULT_MODELS_FILE, settings.models_file):
        key = declared.api_key(env)
        redact.REDACTOR.add([key])
        providers.append(OpenAIProvider(declared.name, OpenAIClient(declared.base_url, key, declared.name,
                                                                    timeouts_from(settings))))
    routes = routes_from_toml(DEFAULT_MODELS_FILE)
    if settings.models_file is not None:
        routes.update(routes_from_toml(settings.models_file))
    circuits = Circuits(failures=settings.circuit_failures, open_seconds=settings.circuit_open_seconds)
    return Providers(models, providers, routes, circuits)
