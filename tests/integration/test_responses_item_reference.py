"""`item_reference` input items (how the Vercel AI SDK sends earlier output back with `store: true`)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI, BadRequestError

from aiproxy.emulator import directive_text
from tests.integration.test_tools_sdk import upstream_bodies


@pytest.fixture
async def proxy(proxy_factory: Any, ledger_url: str) -> TestServer:
    """Stored responses live in the ledger's database: both backends."""
    return await proxy_factory(usage_db_url=ledger_url)


async def test_item_reference_resolves_to_the_stored_output_item(
        openai_client: AsyncOpenAI, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    first = await openai_client.responses.create(model="gemini-2.5-flash",
                                                 input="Hi. " + directive_text(reply="Hello, Ann."))
    [message] = [item for item in first.output if item.type == "message"]
    await openai_client.responses.create(model="gemini-2.5-flash", input=[
        {"role": "user", "content": "Hi."}, {"type": "item_reference", "id": message.id},
        {"role": "user", "content": "What did you say?"}])
    contents = (await upstream_bodies(http, emulator))[-1]["contents"]
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "Hi."), ("model", "Hello, Ann."), ("user", "What did you say?")]


async def test_unknown_or_unstored_item_reference_is_a_400(openai_client: AsyncOpenAI) -> None:
    unstored = await openai_client.responses.create(model="gemini-2.5-flash", input="Hi.", store=False)
    for item_id in ["msg_nope", str(unstored.output[-1].id)]:
        with pytest.raises(BadRequestError) as err:
            await openai_client.responses.create(model="gemini-2.5-flash", input=[
                {"role": "user", "content": "Hi."}, {"type": "item_reference", "id": item_id}])
        body: Any = err.value.body
        assert body["message"] == f"Item with id '{item_id}' not found." and body["param"] == "input[1].id"
