"""The Responses API goes through the same provider seam as chat: OpenAI and Anthropic serve it
too (their emulators), buffered and streamed, each response one ledger row naming its provider."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.emulator import directive_text
from tests.conftest import EMULATOR_KEY, emulator_url

MODELS = [("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
          ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5")]


@pytest.fixture
async def proxy(proxy_factory: Any, emulator: TestServer, ledger_url: str) -> TestServer:
    root = emulator_url(emulator)
    return await proxy_factory(usage_db_url=ledger_url,
                               openai_api_key=EMULATOR_KEY, openai_base_url=f"{root}/openai/v1",
                               anthropic_api_key=EMULATOR_KEY, anthropic_base_url=f"{root}/anthropic")


@pytest.mark.parametrize(("model", "provider", "upstream"), MODELS)
async def test_responses_are_served_by_every_provider(proxy: TestServer, model: str, provider: str,
                                                      upstream: str) -> None:
    async with AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="any", max_retries=0) as client:
        made = await client.responses.create(model=model, input="Say hi. " + directive_text(reply="Hi from afar"))
        async with client.responses.stream(model=model,
                                           input="Again. " + directive_text(reply="one two three")) as stream:
            events = [event.type async for event in stream]
            streamed = await stream.get_final_response()
    assert made.status == "completed" and made.output_text == "Hi from afar" and made.model == model
    assert events[:2] == ["response.created", "response.in_progress"] and events[-1] == "response.completed"
    assert streamed.output_text == "one two three"
    rows = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]  # both backends have rows()
    assert [(r["endpoint"], r["provider"], r["upstream_model"], r["status"]) for r in rows] == [
        ("responses", provider, upstream, "ok")] * 2
    assert made.usage is not None and streamed.usage is not None
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        (made.usage.input_tokens, made.usage.output_tokens),
        (streamed.usage.input_tokens, streamed.usage.output_tokens)]
