"""Routing above the providers: cross-provider fallbacks, route strategies and the circuit breaker.

Scripted providers (no HTTP) stand in for OpenAI and Anthropic beside the real Gemini provider
and its emulator; what the client reads, the ledger row and /metrics are asserted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import METER_KEY, PROVIDERS_KEY
from aiproxy.billing.pricing import parse_price_table
from aiproxy.billing.record import UsageRecord
from aiproxy.errors import ProxyError
from aiproxy.observability.metrics import RouterMetrics
from aiproxy.openai.sse import DONE
from aiproxy.openai.types import ChatRequest
from aiproxy.providers.base import ChatOptions
from aiproxy.providers.registry import Providers
from aiproxy.providers.router import Circuits, Route, routes_from_toml
from tests.integration.opshelp import chat, metric, upstream_paths
from tests.integration.test_provider_seam_handlers import ScriptedProvider, ScriptedStream

PRO = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
PRO_BUFFERED = "/v1beta/models/gemini-2.5-pro:generateContent"  # a buffered request asks for one body


class FakeProvider(ScriptedProvider):
    """A provider answering from a script: per call, "ok" or an HTTP status to fail with."""

    owned_by = "fake"

    def __init__(self, name: str, script: list[Any] | None = None) -> None:
        super().__init__()
        self.name = name
        self.script = list(script or [])
        self.opened: list[str] = []  # the model of every call sent upstream

    def prepare_chat(self, req: ChatRequest, upstream_model: str, options: ChatOptions) -> Any:
        provider = self

        class Call:
            async def open(self) -> ScriptedStream:
                provider.opened.append(upstream_model)
                outcome = provider.script.pop(0) if provider.script else "ok"
                if outcome != "ok":
                    raise ProxyError(outcome, f"{provider.name} failed", type="api_error", code="upstream_error")
                stream = ScriptedStream(options, req.model)
                stream.model = upstream_model
                return stream

        return Call()

    async def list_models(self) -> list[str]:
        return [f"{self.name}-model"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records_of(server: TestServer) -> list[UsageRecord]:
    records: list[UsageRecord] = []
    server.app[METER_KEY].hooks.append(records.append)
    return records


async def with_providers(proxy: TestServer, *extra: FakeProvider, routes: dict[str, Route] | None = None,
                         circuits: Circuits | None = None) -> Providers:
    """Put the fakes beside the app's own Gemini provider, keeping its configuration."""
    old: Providers = proxy.app[PROVIDERS_KEY]
    gemini = next(iter(old))
    new = Providers(old.models, [gemini, *extra], routes, circuits or old.router.circuits)
    new.fallbacks = old.fallbacks
    new.router.events, new.router.prices = old.router.events, old.router.prices
    new.router.deadline = old.router.deadline
    proxy.app[PROVIDERS_KEY] = new
    return new


async def test_gemini_overloaded_falls_through_to_another_provider(proxy_factory: Any, emulator: TestServer,
                                                                   http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0, model_fallbacks="gemini-2.5-pro=anthropic/claude-sonnet-4-5")
    anthropic = FakeProvider("anthropic")
    await with_providers(proxy, anthropic)
    records = records_of(proxy)
    before = metric("aiproxy_model_fallbacks_total", from_model="gemini-2.5-pro", to_model="claude-sonnet-4-5",
                    reason="503")
    for stream in (True, False):
        answer = await chat(http, str(proxy.make_url("")), stream=stream, error=503, error_times=1, key=f"x-{stream}")
        assert answer.status == 200 and answer.headers["X-Upstream-Model"] == "claude-sonnet-4-5"
    assert answer.body.startswith(b"{") and b"Hello, world" in answer.body
    assert await upstream_paths(http, emulator) == [PRO, PRO_BUFFERED]
    assert anthropic.opened == ["claude-sonnet-4-5"] * 2
    assert [(r.provider, r.upstream_model, r.requested_model) for r in records] == [
        ("anthropic", "claude-sonnet-4-5", "gpt-4")] * 2
    assert metric("aiproxy_model_fallbacks_total", from_model="gemini-2.5-pro", to_model="claude-sonnet-4-5",
                  reason="503") - before == 2


async def test_fallbacks_walk_the_chain_across_providers_in_order(proxy_factory: Any, emulator: TestServer,
                                                                  http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0, model_fallbacks=(
        "gemini-2.5-pro=anthropic/claude-sonnet-4-5,openai/gpt-4.1-mini"))
    anthropic, openai = FakeProvider("anthropic", [529]), FakeProvider("openai")
    await with_providers(proxy, anthropic, openai)
    records = records_of(proxy)
    answer = await chat(http, str(proxy.make_url("")), error=429, error_times=1, key="chain")
    assert answer.status == 200 and answer.body.endswith(DONE)
    assert answer.headers["X-Upstream-Model"] == "gpt-4.1-mini"
    assert (anthropic.opened, openai.opened) == (["claude-sonnet-4-5"], ["gpt-4.1-mini"])
    assert [(r.provider, r.upstream_model) for r in records] == [("openai", "gpt-4.1-mini")]


async def test_a_client_error_is_not_fallen_back(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0, model_fallbacks="gemini-2.5-pro=openai/gpt-4.1-mini")
    openai = FakeProvider("openai")
    await with_providers(proxy, openai)
    answer = await chat(http, str(proxy.make_url("")), error=400, error_times=1, key="bad")
    assert answer.status == 400 and openai.opened == []


async def test_a_fallback_on_a_provider_without_a_key_is_skipped(proxy_factory: Any, emulator: TestServer,
                                                                 http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0,
                                model_fallbacks="gemini-2.5-pro=anthropic/claude-sonnet-4-5,gemini-3.5-flash")
    answer = await chat(http, str(proxy.make_url("")), error=503, error_times=1, key="nokey")
    assert answer.status == 200 and answer.headers["X-Upstream-Model"] == "gemini-3.5-flash"


ROUTES = {
    "smart": Route("ordered", ("anthropic/claude-sonnet-4-5", "openai/gpt-4.1")),
    "cheap": Route("cheapest", ("openai/gpt-4.1", "anthropic/claude-haiku-4-5", "openai/gpt-4.1-mini")),
    "quick": Route("fastest", ("openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5")),
}
PRICES = parse_price_table("""
[models."gpt-4.1"]
input = "2.00"
output = "8.00"
[models."gpt-4.1-mini"]
input = "0.40"
output = "1.60"
[models."claude-haiku-4-5"]
input = "1.00"
output = "5.00"
""")


@pytest.fixture
async def routed(proxy_factory: Any) -> tuple[TestServer, FakeProvider, FakeProvider, Providers]:
    proxy = await proxy_factory(upstream_retries=0)
    openai, anthropic = FakeProvider("openai"), FakeProvider("anthropic")
    providers = await with_providers(proxy, openai, anthropic, routes=ROUTES)
    providers.router.prices = PRICES
    return proxy, openai, anthropic, providers


async def test_ordered_route_serves_from_its_first_candidate_and_falls_back(routed: Any,
                                                                            http: aiohttp.ClientSession) -> None:
    proxy, openai, anthropic, _ = routed
    before = metric("aiproxy_route_choices_total", route="smart", strategy="ordered", candidate="openai/gpt-4.1")
    answer = await chat(http, str(proxy.make_url("")), model="smart")
    assert answer.headers["X-Upstream-Model"] == "claude-sonnet-4-5"
    anthropic.script = [503]
    answer = await chat(http, str(proxy.make_url("")), model="smart")
    assert answer.status == 200 and answer.headers["X-Upstream-Model"] == "gpt-4.1"
    assert answer.body.endswith(DONE) and b'"model":"smart"' in answer.body  # the client's name echoed
    assert (anthropic.opened, openai.opened) == (["claude-sonnet-4-5"] * 2, ["gpt-4.1"])
    assert metric("aiproxy_route_choices_total", route="smart", strategy="ordered",
                  candidate="openai/gpt-4.1") - before == 1


async def test_cheapest_route_picks_the_lowest_price_for_the_request(routed: Any, http: aiohttp.ClientSession) -> None:
    proxy, openai, anthropic, _ = routed
    records = records_of(proxy)
    answer = await chat(http, str(proxy.make_url("")), model="cheap")
    assert answer.headers["X-Upstream-Model"] == "gpt-4.1-mini"
    assert (openai.opened, anthropic.opened) == (["gpt-4.1-mini"], [])
    openai.script = [429]  # the cheapest is rate limited: the next cheapest, on another provider
    answer = await chat(http, str(proxy.make_url("")), model="cheap")
    assert answer.headers["X-Upstream-Model"] == "claude-haiku-4-5"
    (_, second) = records
    assert (second.provider, second.upstream_model) == ("anthropic", "claude-haiku-4-5")


async def test_fastest_route_tries_unmeasured_first_then_the_quickest(routed: Any,
                                                                      http: aiohttp.ClientSession) -> None:
    proxy, openai, anthropic, providers = routed
    answer = await chat(http, str(proxy.make_url("")), model="quick")
    assert answer.headers["X-Upstream-Model"] == "gpt-4.1-mini"  # none measured: listed order
    providers.router.latencies.observe("openai", "gpt-4.1-mini", 2.0)
    answer = await chat(http, str(proxy.make_url("")), model="quick")
    assert answer.headers["X-Upstream-Model"] == "claude-haiku-4-5"  # unmeasured before measured
    providers.router.latencies.observe("anthropic", "claude-haiku-4-5", 5.0)
    answer = await chat(http, str(proxy.make_url("")), model="quick")
    assert answer.headers["X-Upstream-Model"] == "gpt-4.1-mini"  # now the quicker one


async def test_fastest_route_measures_streamed_requests_only(routed: Any, http: aiohttp.ClientSession) -> None:
    """A buffered Gemini request opens only once its whole answer is ready (generateContent), so
    buffered opens would make a provider look slow: only streams measure the first byte."""
    proxy, _, _, providers = routed
    assert (await chat(http, str(proxy.make_url("")), model="quick", stream=False)).status == 200
    assert providers.router.latencies.get("openai", "gpt-4.1-mini") is None
    assert (await chat(http, str(proxy.make_url("")), model="quick")).status == 200
    assert providers.router.latencies.get("openai", "gpt-4.1-mini") is not None


async def test_circuit_opens_sends_nothing_then_closes_after_a_trial(proxy_factory: Any,
                                                                     http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0)
    clock = Clock()
    anthropic, openai = FakeProvider("anthropic", [503, 503]), FakeProvider("openai")
    providers = await with_providers(proxy, anthropic, openai, routes=ROUTES, circuits=Circuits(2, 30.0, clock=clock))
    providers.router.circuits.events = RouterMetrics(["gemini", "anthropic", "openai"])
    base = str(proxy.make_url(""))
    for _ in range(2):  # two failures in a row open anthropic's circuit
        assert (await chat(http, base, model="smart")).headers["X-Upstream-Model"] == "gpt-4.1"
    assert metric("aiproxy_provider_circuit_state", provider="anthropic") == 2
    for _ in range(3):  # open: nothing is sent to anthropic
        assert (await chat(http, base, model="smart")).headers["X-Upstream-Model"] == "gpt-4.1"
    assert len(anthropic.opened) == 2 and len(openai.opened) == 5
    clock.now += 31  # half open: one trial goes through, succeeds and closes the circuit
    assert (await chat(http, base, model="smart")).headers["X-Upstream-Model"] == "claude-sonnet-4-5"
    assert metric("aiproxy_provider_circuit_state", provider="anthropic") == 0
    assert len(anthropic.opened) == 3


async def test_every_circuit_open_is_a_503_without_an_upstream_call(proxy_factory: Any,
                                                                    http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0)
    anthropic, openai = FakeProvider("anthropic", [503]), FakeProvider("openai", [503])
    await with_providers(proxy, anthropic, openai, routes=ROUTES, circuits=Circuits(1, 30.0, clock=Clock()))
    first = await chat(http, str(proxy.make_url("")), model="smart")
    assert first.status == 503  # both failed: the last error
    answer = await chat(http, str(proxy.make_url("")), model="smart")
    assert answer.status == 503 and b"upstream_unavailable" in answer.body
    assert len(anthropic.opened) == len(openai.opened) == 1


def test_routes_are_read_from_the_models_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[routes.fast]\nstrategy = "cheapest"\ncandidates = ["openai/gpt-4.1-mini", "gemini-2.5-flash"]\n'
                    '[routes.plain]\ncandidates = ["anthropic/claude-haiku-4-5"]\n')
    assert routes_from_toml(path) == {"fast": Route("cheapest", ("openai/gpt-4.1-mini", "gemini-2.5-flash")),
                                      "plain": Route("ordered", ("anthropic/claude-haiku-4-5",))}
    path.write_text('[routes.fast]\nstrategy = "random"\ncandidates = ["gemini-2.5-flash"]\n')
    with pytest.raises(ValueError, match="strategy"):
        routes_from_toml(path)
    path.write_text('[routes.fast]\ncandidates = []\n')
    with pytest.raises(ValueError, match="candidates"):
        routes_from_toml(path)


class Unlisting(FakeProvider):
    async def list_models(self) -> list[str]:
        raise RuntimeError("listing failed")


async def test_models_lists_every_providers_models_and_the_routes(routed: Any, emulator: TestServer,
                                                                  http: aiohttp.ClientSession) -> None:
    proxy, *_ = routed
    old: Providers = proxy.app[PROVIDERS_KEY]
    await with_providers(proxy, *list(old)[1:], Unlisting("broken"), routes=ROUTES)
    async with http.get(proxy.make_url("/v1/models")) as resp:
        assert resp.status == 200
        owners = {m["id"]: m["owned_by"] for m in (await resp.json())["data"]}
    assert owners["openai/openai-model"] == "fake" and owners["anthropic/anthropic-model"] == "fake"
    assert {owners[alias] for alias in ("smart", "cheap", "quick", "gpt-4")} == {"aiproxy"}
    assert owners["gemini-2.5-pro"] == "google"
    assert not any(m.startswith("broken/") for m in owners)
    async with http.get(proxy.make_url("/v1/models/smart")) as resp:
        assert (await resp.json())["owned_by"] == "aiproxy"


def test_a_failed_half_open_trial_opens_the_circuit_again_at_once() -> None:
    clock = Clock()
    circuits = Circuits(failures=3, open_seconds=10.0, clock=clock)
    for _ in range(2):
        circuits.failed("openai")
    circuits.succeeded("openai")  # a success resets the count: failures must be consecutive
    for _ in range(2):
        circuits.failed("openai")
    assert circuits.state("openai") == "closed" and circuits.allows("openai")
    circuits.failed("openai")
    assert circuits.state("openai") == "open" and not circuits.allows("openai")
    clock.now += 10
    assert circuits.state("openai") == "half_open" and circuits.allows("openai")
    circuits.failed("openai")  # the trial failed: open again for the full time, not after 3 more
    assert circuits.state("openai") == "open"
    clock.now += 10
    circuits.succeeded("openai")
    assert circuits.state("openai") == "closed"
    assert Circuits(failures=0, open_seconds=1.0).allows("x")  # 0: the breaker is off


async def test_the_app_wires_prices_and_circuit_metrics(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(circuit_failures=3, circuit_open_seconds=12)
    router = proxy.app[PROVIDERS_KEY].router
    assert router.prices is proxy.app[METER_KEY].prices  # `cheapest` compares by the billing table
    assert (router.circuits.failures, router.circuits.open_seconds) == (3, 12.0)
    async with http.get(proxy.make_url("/metrics")) as resp:
        assert 'aiproxy_provider_circuit_state{provider="gemini"} 0.0' in await resp.text()
