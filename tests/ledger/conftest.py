"""Fixtures for the ledger, reports and credits tests: one suite, run against both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from aiproxy.billing.ledger import Ledger, open_ledger
from aiproxy.emulator.credits import CreditsState, create_credits_app
from tests.conftest import PG_ROOT, drop_schema  # noqa: F401 - re-exported for the ledger tests
from tests.ledger.factories import CREDITS_API_KEY


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[Ledger]:
    led = open_ledger(ledger_url)
    await led.open()
    try:
        yield led
    finally:
        await led.close()


@pytest.fixture
async def outbox_ledger(ledger_url: str) -> AsyncIterator[Ledger]:
    led = open_ledger(ledger_url, outbox=True)
    await led.open()
    try:
        yield led
    finally:
        await led.close()


@pytest.fixture
async def credits_service() -> AsyncIterator[TestServer]:
    """The credits-service emulator on a loopback port, with no users until a test adds them."""
    server = TestServer(create_credits_app(CreditsState(api_key=CREDITS_API_KEY)), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()
