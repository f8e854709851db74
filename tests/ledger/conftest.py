"""Fixtures for the ledger, reports and credits tests: one suite, run against both backends."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, AsyncIterator

import asyncpg
import pytest

from aiproxy.billing.ledger import Ledger, open_ledger
from aiproxy.billing.record import UsageRecord

PG_ROOT = "postgresql://postgres@127.0.0.1:5432/test"


def make_record(**overrides: Any) -> UsageRecord:
    """A plausible finished request; tests override what they assert on."""
    values: dict[str, Any] = dict(
        request_id=f"req-{uuid.uuid4().hex[:12]}",
        user="alice",
        key_id=None,
        requested_model="gpt-4",
        upstream_model="gemini-2.5-pro",
        endpoint="chat",
        streamed=True,
        prompt_tokens=1000,
        completion_tokens=1000,
        reasoning_tokens=0,
        cached_tokens=0,
        total_tokens=2000,
        cost_usd=Decimal("0.00075"),
        status="ok",
        estimated=False,
        price_fallback=False,
        started_at=datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc),
        duration_ms=812.5,
        ttft_ms=120.25,
    )
    values.update(overrides)
    return UsageRecord(**values)


@pytest.fixture
def record_factory():
    return make_record


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
