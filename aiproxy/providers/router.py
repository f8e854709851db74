"""Which upstream serves a chat request, and the walk to the next candidate before the first byte.

Above the providers, so fallbacks and strategies cross them: a request's candidates are its
model's MODEL_FALLBACKS chain (`gemini-2.5-flash=anthropic/claude-sonnet-4-5,openai/gpt-4.1-mini`)
or a `[routes.<alias>]` entry of the models file (candidates with a strategy). `RoutedCall.open`
tries them in the strategy's order, skipping providers whose circuit is open, and moves on after a
429, 5xx (overloaded 529 included) or first-byte timeout: all before the client has seen a byte,
so nothing is billed twice. Each provider keeps its own retries on one model.

Strategies (documented in the README's Providers section):
- `ordered`: the listed order.
- `cheapest`: lowest price for this request's estimated prompt tokens and output limit by the
  price table (billing.pricing.worst_case_cost), ties in listed order.
- `fastest`: lowest recent time to the upstream's first byte (an EWMA per provider and model);
  candidates not yet measured go first, in listed order, so each gets measured. Measured on
  streamed requests only: a buffered Gemini request opens once the whole answer is ready
  (generateContent), which says nothing about the first byte.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiproxy.errors import ProxyError
from aiproxy.providers.base import UpstreamEvents

if TYPE_CHECKING:
    from aiproxy.billing.pricing import PriceTable
    from aiproxy.openai.types import ChatRequest
    from aiproxy.providers.base import ChatCall, ChatOptions, ChatStream, Provider

log = logging.getLogger("aiproxy.router")

STRATEGIES = ("ordered", "cheapest", "fastest")
# ProxyError statuses after which the next candidate is tried: rate limits, overload, upstream
# failures and first-byte timeouts (504). Client errors (400, 404) are the request's own.
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
DEFAULT_OUTPUT_TOKENS = 1024  # the output side of `cheapest`'s estimate when the client set no limit
EWMA_WEIGHT = 0.3  # weight of the newest time-to-first-byte sample in `fastest`'s average


@dataclass(frozen=True, slots=True)
class Route:
    """A model-map alias served by one of several candidates (`provider/model` or a mapped name)."""

    strategy: str
    candidates: tuple[str, ...]


def routes_from_toml(path: Path) -> dict[str, Route]:
    """The `[routes.<alias>]` tables of a models file; ValueError naming the bad entry."""
    table = tomllib.loads(path.read_text()).get("routes", {})
    routes: dict[str, Route] = {}
    for alias, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"[routes.{alias}] must be a table with strategy and candidates")
        strategy = entry.get("strategy", "ordered")
        candidates = entry.get("candidates")
        if strategy not in STRATEGIES:
            raise ValueError(f"[routes.{alias}] strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) and c for c in candidates):
            raise ValueError(f"[routes.{alias}] candidates must be a non-empty list of model names")
        routes[str(alias)] = Route(strategy, tuple(dict.fromkeys(candidates)))
    return routes


class CircuitEvents:
    """What the router reports; the metrics module overrides these no-ops."""

    def circuit(self, provider: str, state: str) -> None:
        """`provider`'s circuit is now `state` ("closed", "open" or "half_open")."""

    def chosen(self, alias: str, strategy: str, candidate: str) -> None:
        """`candidate` (as configured) served a request for route `alias`."""


@dataclass
class Circuits:
    """Per provider: `failures` consecutive failures open its circuit for `open_seconds`; then one
    trial request is let through (half open): a success closes it, a failure opens it again."""

    failures: int
    open_seconds: float
    events: CircuitEvents = field(default_factory=CircuitEvents)
    clock: Callable[[], float] = time.monotonic
    _count: dict[str, int] = field(default_factory=dict)
    _open_until: dict[str, float] = field(default_factory=dict)

    def state(self, provider: str) -> str:
        until = self._open_until.get(provider)
        if until is None:
            return "closed"
        return "open" if self.clock() < until else "half_open"

    def allows(self, provider: str) -> bool:
        return self.failures <= 0 or self.state(provider) != "open"

    def succeeded(self, provider: str) -> None:
        self._count[provider] = 0
        if self._open_until.pop(provider, None) is not None:
            self.events.circuit(provider, "closed")

    def failed(self, provider: str) -> None:
        if self.failures <= 0:
            return
        count = self._count.get(provider, 0) + 1
        self._count[provider] = count
        if count >= self.failures or provider in self._open_until:  # a half-open trial failed too
            self._open_until[provider] = self.clock() + self.open_seconds
            log.warning("circuit of provider %s open for %ss after %d failures", provider, self.open_seconds, count)
            self.events.circuit(provider, "open")


@dataclass
class Latencies:
    """Recent time to the upstream's first byte per (provider, model): an exponential average."""

    weight: float = EWMA_WEIGHT
    _ewma: dict[tuple[str, str], float] = field(default_factory=dict)

    def observe(self, provider: str, model: str, seconds: float) -> None:
        key = (provider, model)
        old = self._ewma.get(key)
        self._ewma[key] = seconds if old is None else old + self.weight * (seconds - old)

    def get(self, provider: str, model: str) -> float | None:
        return self._ewma.get((provider, model))


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: Provider
    model: str  # the provider's own model id
    label: str  # as configured (for logs and the `chosen` metric)


class RoutedCall:
    """The candidates of one request, in the order to try them; `open` walks them."""

    def __init__(self, router: Router, req: ChatRequest, options: ChatOptions, candidates: Sequence[Candidate],
                 alias: str | None, strategy: str) -> None:
        self._router, self._req, self._options = router, req, options
        self._candidates = list(candidates)
        self._alias, self._strategy = alias, strategy
        self.provider = self._candidates[0].provider.name  # who served, once open() returned
        # The first candidate is translated now: a request no provider could take is a 400 before
        # anything is metered. Later ones are translated only when reached.
        self._first: ChatCall = self._candidates[0].provider.prepare_chat(req, self._candidates[0].model, options)

    @property
    def first(self) -> Candidate:
        return self._candidates[0]

    async def open(self) -> ChatStream:
        router = self._router
        deadline = time.monotonic() + router.deadline
        error: ProxyError | None = None
        for index, cand in enumerate(self._candidates):
            name = cand.provider.name
            if not router.circuits.allows(name):
                continue
            if error is not None and time.monotonic() >= deadline:
                break
            if index == 0:
                call = self._first
            else:
                try:
                    call = cand.provider.prepare_chat(self._req, cand.model, self._options)
                except ProxyError as exc:  # this candidate cannot take the request: the next may
                    log.warning("fallback %s cannot take the request: %s", cand.label, exc.message)
                    continue
            started = time.monotonic()
            try:
                stream = await call.open()
            except ProxyError as exc:
                if exc.status not in FALLBACK_STATUSES:
                    raise
                router.circuits.failed(name)
                error = exc
                nxt = self._next_allowed(index)
                if nxt is not None:
                    reason = "timeout" if exc.status == 504 else str(exc.status)
                    log.warning("model %s failed (%s); falling back to %s", cand.label, reason, nxt.label)
                    router.events.fallback(cand.model, nxt.model, reason)
                continue
            router.circuits.succeeded(name)
            if self._options.stream:  # a buffered open may include the whole generation
                router.latencies.observe(name, cand.model, time.monotonic() - started)
            if self._alias is not None:
                router.circuits.events.chosen(self._alias, self._strategy, cand.label)
            self.provider = name
            return stream
        if error is not None:
            raise error
        raise ProxyError(503, "Every upstream for this model is unavailable right now (circuit open); try again.",
                         type="api_error", code="upstream_unavailable")

    def _next_allowed(self, index: int) -> Candidate | None:
        return next((c for c in self._candidates[index + 1:] if self._router.circuits.allows(c.provider.name)), None)


class Router:
    """Orders a request's candidates by strategy; shared by all requests of a process."""

    def __init__(self, circuits: Circuits, prices: PriceTable | None = None, deadline: float = 60.0) -> None:
        self.circuits = circuits
        self.latencies = Latencies()
        self.prices = prices  # for `cheapest`; set by the composition root
        self.deadline = deadline  # seconds for the whole walk, as the retry policy's deadline
        self.events = UpstreamEvents()  # fallbacks reported like a provider's own

    def order(self, req: ChatRequest, candidates: Sequence[Candidate], strategy: str) -> list[Candidate]:
        if strategy == "cheapest" and self.prices is not None:
            from aiproxy.billing.estimate import estimate_prompt_tokens
            from aiproxy.billing.pricing import worst_case_cost

            prices = self.prices
            prompt, output = estimate_prompt_tokens(req), req.output_limit or DEFAULT_OUTPUT_TOKENS
            return sorted(candidates, key=lambda c: worst_case_cost(prices, c.model, prompt, output))
        if strategy == "fastest":
            def recent(c: Candidate) -> float:
                seconds = self.latencies.get(c.provider.name, c.model)
                return -1.0 if seconds is None else seconds

            return sorted(candidates, key=recent)
        return list(candidates)

    def call(self, req: ChatRequest, options: ChatOptions, candidates: Sequence[Candidate], alias: str | None,
             strategy: str) -> RoutedCall:
        return RoutedCall(self, req, options, self.order(req, candidates, strategy), alias, strategy)
