"""Shared fixtures: the Gemini emulator and the proxy, both on real loopback sockets."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.app import create_app
from aiproxy.config import Settings, load_settings

EMULATOR_KEY = "test-gemini-key-XYZ"


@pytest.fixture
async def emulator() -> AsyncIterator[TestServer]:
    from aiproxy.emulator import EmulatorConfig, create_emulator_app

    server = TestServer(create_emulator_app(EmulatorConfig(api_key=EMULATOR_KEY)), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def emulator_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def make_settings(upstream: str, **overrides: Any) -> Settings:
    # A private in-memory ledger per proxy: tests never write ./data/usage.db.
    env = {"GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": upstream, "USAGE_DB_URL": "memory://"}
    return load_settings(env, **overrides)


async def start_proxy(settings: Settings) -> TestServer:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()  # TestServer always sets handler_cancellation=True, like serve()
    return server


@pytest.fixture
async def proxy_factory(emulator: TestServer) -> AsyncIterator[Any]:
    """Build a proxy against the emulator with setting overrides; all closed at teardown."""
    servers: list[TestServer] = []

    async def factory(**overrides: Any) -> TestServer:
        server = await start_proxy(make_settings(emulator_url(emulator), **overrides))
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()


@pytest.fixture
async def proxy(proxy_factory: Any) -> TestServer:
    return await proxy_factory()


@pytest.fixture
def proxy_url(proxy: TestServer) -> str:
    return str(proxy.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def billing_lines(caplog: pytest.LogCaptureFixture) -> Any:
    """Returns a function listing the billing lines logged so far."""
    caplog.set_level(logging.INFO, logger="aiproxy.billing")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("💰 BILLING")]

    return lines


async def recorded_requests(http: aiohttp.ClientSession, emulator: TestServer) -> list[dict[str, Any]]:
    async with http.get(emulator.make_url("/_emulator/requests")) as resp:
        return await resp.json()


async def generation_requests(http: aiohttp.ClientSession, emulator: TestServer) -> list[dict[str, Any]]:
    """The recorded Gemini generations: streamGenerateContent for a streamed request,
    generateContent for a buffered one."""
    return [r for r in await recorded_requests(http, emulator)
            if r["path"].endswith((":streamGenerateContent", ":generateContent"))]


@pytest.fixture
async def openai_client(proxy_url: str) -> AsyncIterator[Any]:
    """The official SDK pointed at the proxy; retries off so every status is seen as sent."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key="any-key-works", max_retries=0, timeout=30)
    yield client
    await client.close()


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
