"""Fixtures for the ledger, reports and credits tests: one suite, run against both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.billing.ledger import Ledger, open_ledger
from aiproxy.emulator.credits import CreditsState, create_credits_app
from tests.ledger.factories import CREDITS_API_KEY

PG_ROOT = "postgresql://postgres@127.0.0.1:5432/test"


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_ROOT)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def ledger_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """A fresh, empty ledger location on each backend; Postgres gets its own schema, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/usage.db"
        return
    schema = f"t_ledger_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{PG_ROOT}?schema={schema}"
    finally:
        await drop_schema(schema)


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
