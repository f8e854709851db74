"""Usage reports as an operator sees them: GET /v1/usage (JSON, CSV, auth) and the CLI."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiohttp import web

from aiproxy.api.usage import usage_handler
from aiproxy.appkeys import LEDGER_KEY, SETTINGS_KEY
from aiproxy.billing.cli import main as usage_main
from aiproxy.billing.ledger import open_ledger
from aiproxy.billing.reports import parse_query, parse_time, report_table
from aiproxy.config import load_settings
from tests.ledger.factories import make_record

ADMIN = "s3cret-admin"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def day(d: int, h: int = 12) -> datetime:
    return datetime(2026, 11, d, h, tzinfo=UTC)


SEED_ROWS = [
    make_record(user="alice", requested_model="gpt-4", started_at=day(1), prompt_tokens=1000, completion_tokens=1000,
                total_tokens=2000, cost_usd=Decimal("0.00075")),
    make_record(user="alice", requested_model="gpt-4", started_at=day(2), prompt_tokens=100, completion_tokens=50,
                total_tokens=150, cost_usd=Decimal("0.00005")),
    make_record(user="alice", requested_model="gemini-flash", upstream_model="gemini-3.5-flash", started_at=day(2),
                prompt_tokens=5000, completion_tokens=2000, total_tokens=7000, cost_usd=Decimal("0.00225")),
    make_record(user="bob", requested_model="gpt-4", started_at=day(3), prompt_tokens=1, completion_tokens=1,
                total_tokens=2, cost_usd=Decimal("0.00000075")),
    make_record(user="alice", requested_model="gpt-4", started_at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC),
                cost_usd=Decimal("5")),
]  # fmt: skip


@pytest.fixture
async def seeded(ledger):
    for rec in SEED_ROWS:
        await ledger.record(rec)
    return ledger


@pytest.fixture
async def client(aiohttp_client, seeded):
    app = web.Application()
    app[LEDGER_KEY] = seeded
    app[SETTINGS_KEY] = load_settings({"ADMIN_TOKEN": ADMIN}, require_key=False)
    app.router.add_get("/v1/usage", usage_handler)
    return await aiohttp_client(app)


async def test_json_totals_for_alice_in_november(client) -> None:
    resp = await client.get("/v1/usage", params={"user": "alice", "since": "2026-11-01"}, headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["total"] == {
        "requests": 3, "prompt_tokens": 6100, "completion_tokens": 3050, "reasoning_tokens": 0,
        "cached_tokens": 0, "total_tokens": 9150, "cost_usd": "0.00305", "cache_hits": 0, "cache_savings_usd": "0",
    }  # fmt: skip
    assert body["filters"]["since"] == "2026-11-01T00:00:00+00:00"


async def test_json_grouped_by_model_and_day(client) -> None:
    resp = await client.get("/v1/usage", params={"user": "alice", "since": "2026-11-01", "group_by": "model"},
                            headers=AUTH)
    body = await resp.json()
    assert [(r["model"], r["requests"], r["cost_usd"]) for r in body["data"]] == [
        ("gemini-flash", 1, "0.00225"),
        ("gpt-4", 2, "0.0008"),
    ]
    resp = await client.get("/v1/usage", params={"since": "2026-11-01", "until": "2026-11-02", "group_by": "day"},
                            headers=AUTH)
    body = await resp.json()
    assert [(r["day"], r["requests"]) for r in body["data"]] == [("2026-11-01", 1), ("2026-11-02", 2)]


async def test_csv_by_user(client) -> None:
    resp = await client.get("/v1/usage", params={"group_by": "user", "model": "gpt-4"},
                            headers={**AUTH, "Accept": "text/csv"})
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert (await resp.text()).splitlines() == [
        "user,requests,prompt_tokens,completion_tokens,reasoning_tokens,cached_tokens,total_tokens,cost_usd",
        "alice,3,2100,2050,0,0,4150,5.0008",
        "bob,1,1,1,0,0,2,0.00000075",
    ]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "missing_api_key"), ({"Authorization": "Bearer wrong"}, 401, "invalid_api_key"),
     ({"Authorization": ADMIN}, 401, "missing_api_key")],
)
async def test_admin_token_required(client, headers: dict, status: int, code: str) -> None:
    resp = await client.get("/v1/usage", headers=headers)
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code and body["error"]["type"] == "authentication_error"


async def test_reports_off_without_admin_token(aiohttp_client, seeded) -> None:
    app = web.Application()
    app[LEDGER_KEY] = seeded
    app[SETTINGS_KEY] = load_settings({}, require_key=False)
    app.router.add_get("/v1/usage", usage_handler)
    resp = await (await aiohttp_client(app)).get("/v1/usage", headers={"Authorization": "Bearer anything"})
    assert resp.status == 403
    assert (await resp.json())["error"]["type"] == "permission_error"


@pytest.mark.parametrize(
    ("params", "param"),
    [({"group_by": "week"}, "group_by"), ({"since": "yesterday"}, "since"),
     ({"since": "2026-11-05", "until": "2026-11-01"}, "until")],
)
async def test_bad_parameters_are_400(client, params: dict, param: str) -> None:
    resp = await client.get("/v1/usage", params=params, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == param


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-30", end=True) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-11-30T10:00:00Z") == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert parse_time("2026-11-30T10:00:00+02:00").astimezone(UTC).hour == 8
    assert parse_query({"user": " ", "group_by": ""}).user is None


def test_table_is_aligned_with_total_line() -> None:
    rows = [
        {"model": "gpt-4", "requests": 2, "prompt_tokens": 1100, "completion_tokens": 1050, "reasoning_tokens": 0,
         "cached_tokens": 0, "total_tokens": 2150, "cost_usd": Decimal("0.0008")},
        {"model": "gemini-flash", "requests": 10, "prompt_tokens": 5, "completion_tokens": 5, "reasoning_tokens": 0,
         "cached_tokens": 0, "total_tokens": 10, "cost_usd": Decimal("0.00225")},
    ]  # fmt: skip
    lines = report_table(rows, "model").splitlines()
    assert lines[0].split() == ["model", "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                                "cached_tokens", "total_tokens", "cost_usd"]  # fmt: skip
    assert lines[-1].split() == ["TOTAL", "12", "1105", "1055", "0", "0", "2160", "0.00305"]
    assert len({len(line) for line in lines if not line.startswith("-")}) == 1  # right-aligned to one width


async def test_cli_reads_the_ledger(ledger_url: str, monkeypatch) -> None:
    led = open_ledger(ledger_url)
    await led.open()
    for rec in SEED_ROWS:
        await led.record(rec)
    await led.close()
    monkeypatch.setenv("USAGE_DB_URL", ledger_url)
    out = io.StringIO()
    # asyncio.run needs a thread without a running loop.
    import asyncio

    code = await asyncio.to_thread(usage_main, ["usage", "--user", "alice", "--since", "2026-11-01", "--by", "model"],
                                   out=out)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[2].split() == ["gemini-flash", "1", "5000", "2000", "0", "0", "7000", "0.00225"]
    assert lines[3].split() == ["gpt-4", "2", "1100", "1050", "0", "0", "2150", "0.0008"]
    assert lines[-1].split()[-1] == "0.00305"
    out = io.StringIO()
    code = await asyncio.to_thread(usage_main, ["--since", "2026-11-01", "--csv"], out=out)
    assert code == 0
    assert out.getvalue().splitlines()[1] == "4,6101,3051,0,0,9152,0.00305075"


def test_cli_rejects_bad_dates() -> None:
    err = io.StringIO()
    assert usage_main(["--since", "soon", "--db", "memory://"], err=err) == 2
    assert "since" in err.getvalue()


def test_python_m_aiproxy_usage_dispatches(capsys) -> None:
    from aiproxy.__main__ import main

    assert main(["usage", "--db", "memory://", "--by", "user"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "user" and lines[-1].split() == ["TOTAL", "0", "0", "0", "0", "0", "0", "0"]
