"""The `provider` column (migration 5): who served each row, on both backends, through the spool,
the meter, the report's `group_by=provider` and the dashboard's provider breakdown."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.billing.dashboard_queries import UsageFilter
from aiproxy.billing.meter import Meter
from aiproxy.billing.pricing import parse_price_table
from aiproxy.billing.record import Metering
from aiproxy.billing.spool import dump_record, load_record
from aiproxy.dashboard.figures import breakdown
from tests.integration.test_provider_seam_handlers import scripted  # noqa: F401 - the fixture
from tests.ledger.factories import make_record

ROWS = [
    make_record(upstream_model="gemini-2.5-pro", cost_usd=Decimal("0.5")),
    make_record(provider="anthropic", upstream_model="claude-sonnet-4-5", cost_usd=Decimal("0.25")),
    make_record(provider="anthropic", upstream_model="claude-haiku-4-5", cost_usd=Decimal("0.125")),
    make_record(provider="openai", upstream_model="gpt-4.1-mini", cost_usd=Decimal("0.0625")),
]


async def test_rows_keep_their_provider_and_report_groups_by_it(ledger) -> None:
    for rec in ROWS:
        await ledger.record(rec)
    assert sorted(r["provider"] for r in await ledger.rows()) == ["anthropic", "anthropic", "gemini", "openai"]
    by_provider = await ledger.report(group_by="provider")
    assert [(r["provider"], r["requests"], r["cost_usd"]) for r in by_provider] == [
        ("anthropic", 2, Decimal("0.375")), ("gemini", 1, Decimal("0.5")), ("openai", 1, Decimal("0.0625"))]


async def test_dashboard_provider_breakdown_reads_the_column(ledger) -> None:
    for rec in ROWS:
        await ledger.record(rec)
    day = ROWS[0].started_at
    rows, cut = await breakdown(ledger, UsageFilter(since=day - timedelta(days=1), until=day + timedelta(days=1)),
                                "provider")
    assert not cut
    assert [(r["provider"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("gemini", 1, Decimal("0.5")), ("anthropic", 2, Decimal("0.375")), ("openai", 1, Decimal("0.0625"))]


def test_the_spool_keeps_the_provider_and_older_lines_were_geminis() -> None:
    rec = make_record(provider="openai", upstream_model="gpt-4.1")
    assert load_record(dump_record(rec)) == rec
    older = json.loads(dump_record(make_record()))
    del older["provider"]  # a line spooled by the code before migration 5
    assert load_record(json.dumps(older).encode()).provider == "gemini"


def test_the_meter_carries_the_serving_provider_to_the_row() -> None:
    m = Metering(request_id="req-1", user="alice", requested_model="fast", upstream_model="claude-haiku-4-5",
                 provider="anthropic")
    assert Meter(parse_price_table("")).to_record(m).provider == "anthropic"


async def test_a_request_served_by_another_provider_is_its_row(scripted, http) -> None:  # noqa: F811
    server, _ = scripted
    async with http.post(server.make_url("/v1/chat/completions"), json={
            "model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200
    (row,) = await server.app[LEDGER_KEY].rows()
    assert (row["provider"], row["upstream_model"], row["requested_model"]) == ("scripted", "scripted-1", "gpt-4")
