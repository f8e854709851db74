"""A seeded ledger for the dashboard tests: rows today, this week, this month and older."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestServer

from aiproxy.app import create_app
from aiproxy.billing.record import UsageRecord
from aiproxy.config import load_settings
from tests.ledger.factories import make_record

ADMIN = "dashboard-admin-token"


def today() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)


def seeded_records() -> list[UsageRecord]:
    """Distinct costs, users, models, statuses and latencies, spread over 40 days."""
    t0 = today()
    spec: list[dict[str, Any]] = [
        dict(days=0, minute=5, user="alice", requested_model="gpt-4o", upstream_model="gemini-2.5-flash",
             cost_usd=Decimal("0.0000155"), prompt_tokens=10, completion_tokens=5, ttft_ms=80.0, duration_ms=300.0),
        dict(days=0, minute=65, user="bob", requested_model="gemini-2.5-pro", upstream_model="gemini-2.5-pro",
             cost_usd=Decimal("0.00125"), prompt_tokens=400, completion_tokens=50, ttft_ms=None, duration_ms=900.5,
             status="upstream_error"),
        dict(days=0, minute=125, user="alice", requested_model="gpt-4o", upstream_model="gemini-2.5-flash",
             cost_usd=Decimal("0.000333"), prompt_tokens=100, completion_tokens=120, ttft_ms=140.0, duration_ms=1500.0,
             status="client_disconnected"),
        dict(days=2, minute=30, user="carol", requested_model="gemini-2.5-flash", upstream_model="gemini-2.5-flash",
             cost_usd=Decimal("0.01"), prompt_tokens=3000, completion_tokens=3000, ttft_ms=200.0, duration_ms=2500.0),
        dict(days=6, minute=1, user="bob", requested_model="gpt-4o", upstream_model="gemini-2.5-flash",
             cost_usd=Decimal("0.0000001"), prompt_tokens=1, completion_tokens=1, ttft_ms=60.0, duration_ms=100.0,
             status="internal_error"),
        dict(days=12, minute=0, user="dave", requested_model="gemini-2.5-pro", upstream_model="gemini-2.5-pro",
             cost_usd=Decimal("1.5"), prompt_tokens=100000, completion_tokens=20000, ttft_ms=300.0, duration_ms=9000.0),
        dict(days=40, minute=0, user="alice", requested_model="gpt-4o", upstream_model="gemini-2.5-flash",
             cost_usd=Decimal("7"), prompt_tokens=7, completion_tokens=7, ttft_ms=10.0, duration_ms=10.0),
    ]
    out = []
    for i, s in enumerate(spec):
        started = t0 - timedelta(days=s.pop("days")) + timedelta(minutes=s.pop("minute"))
        s["total_tokens"] = s["prompt_tokens"] + s["completion_tokens"]
        out.append(make_record(request_id=f"req-dash-{i}", started_at=started, **s))
    return out


async def start_seeded_proxy(ledger_url: str, seed: bool = True, **env: str) -> TestServer:
    settings = load_settings({"GEMINI_API_KEY": "k", "GEMINI_BASE_URL": "http://127.0.0.1:9",
                              "USAGE_DB_URL": ledger_url,
                              "ADMIN_TOKEN": ADMIN, **env})
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    if seed:
        from aiproxy.appkeys import LEDGER_KEY

        for rec in seeded_records():
            await server.app[LEDGER_KEY].record(rec)
    return server
