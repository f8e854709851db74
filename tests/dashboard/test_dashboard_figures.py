"""The dashboard's figures equal `GET /v1/usage` and the ledger rows, on both backends."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.billing.pricing import format_usd
from tests.dashboard.seed import ADMIN, seeded_records, start_seeded_proxy, today

AUTH = {"Authorization": f"Bearer {ADMIN}"}
USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")


@pytest.fixture
async def proxy(ledger_url: str) -> AsyncIterator[TestServer]:
    server = await start_seeded_proxy(ledger_url)
    yield server
    await server.close()


async def get_json(http: aiohttp.ClientSession, server: TestServer, path: str, **params: str) -> Any:
    async with http.get(server.make_url(path), params=params, headers=AUTH) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def expected_rows(ledger_rows: list[dict], since: str, until: str, user: str | None, model: str | None) -> list[dict]:
    t0, t1 = today().fromisoformat(since), today().fromisoformat(until)
    recs = [r for r in seeded_records() if t0 <= r.started_at < t1]
    if user:
        recs = [r for r in recs if r.user == user]
    if model:
        recs = [r for r in recs if model in (r.requested_model, r.upstream_model)]
    ids = {r.request_id for r in recs}
    return [r for r in ledger_rows if r["request_id"] in ids]


def nearest_rank(values: list[float], pct: int) -> float | None:
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1], 1) if ordered else None


CASES = [
    {"range": "today"},
    {"range": "7d"},
    {"range": "30d"},
    {"range": "30d", "user": "bob"},
    {"range": "7d", "model": "gemini-2.5-flash"},  # matches the upstream model too, like /v1/usage
    {"range": "custom", "from": (today() - timedelta(days=45)).date().isoformat(),
     "to": (today() - timedelta(days=1)).date().isoformat()},
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: "-".join(p.values()))
async def test_figures_equal_v1_usage_and_the_ledger(proxy: TestServer, params: dict[str, str]) -> None:
    ledger_rows = await proxy.app[LEDGER_KEY].rows()
    async with aiohttp.ClientSession() as http:
        summary = await get_json(http, proxy, "/dashboard/api/summary", **params)
        flt = {k: params[k] for k in ("user", "model") if k in params}
        usage = await get_json(http, proxy, "/v1/usage", since=summary["since"], until=summary["until"], **flt)
        rows = expected_rows(ledger_rows, summary["since"], summary["until"], params.get("user"), params.get("model"))
        assert rows, "each case covers some seeded rows"
        totals = summary["totals"]
        assert {k: totals[k] for k in USAGE_FIELDS} == {k: usage["total"][k] for k in USAGE_FIELDS}
        assert totals["requests"] == len(rows)
        assert totals["cost_usd"] == format_usd(sum((Decimal(str(r["cost_usd"])) for r in rows), Decimal(0)))
        errors = sum(r["status"] in ("upstream_error", "internal_error") for r in rows)
        assert totals["errors"] == errors and totals["error_rate"] == round(errors / len(rows), 4)
        assert (totals["cache_savings_usd"], totals["cache"]) == ("0", "off")

        lat = summary["latency"]
        ttft = [r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]
        duration = [r["duration_ms"] for r in rows]
        assert lat["ttft_ms"] == {"p50": nearest_rank(ttft, 50), "p95": nearest_rank(ttft, 95), "count": len(ttft)}
        assert lat["duration_ms"]["p50"] == nearest_rank(duration, 50)
        assert lat["duration_ms"]["p95"] == nearest_rank(duration, 95)

        for by, group_by in (("user", "user"), ("model", "model")):
            mine = await get_json(http, proxy, "/dashboard/api/breakdown", by=by, **params)
            theirs = await get_json(http, proxy, "/v1/usage", since=summary["since"], until=summary["until"],
                                    group_by=group_by, **flt)
            assert {r[by]: {k: r[k] for k in USAGE_FIELDS} for r in mine["data"]} == \
                {r[group_by]: {k: r[k] for k in USAGE_FIELDS} for r in theirs["data"]}
            costs = [Decimal(r["cost_usd"]) for r in mine["data"]]
            assert costs == sorted(costs, reverse=True)  # top users / models first

        providers = await get_json(http, proxy, "/dashboard/api/breakdown", by="provider", **params)
        assert [r["provider"] for r in providers["data"]] == ["gemini"]
        assert {k: providers["data"][0][k] for k in USAGE_FIELDS} == {k: usage["total"][k] for k in USAGE_FIELDS}

        series = await get_json(http, proxy, "/dashboard/api/timeseries", **params)
        assert series["bucket"] == ("hour" if params["range"] == "today" else "day")
        assert len(series["data"]) == {"today": 24, "7d": 7, "30d": 30, "custom": 45}[params["range"]]
        assert sum(b["requests"] for b in series["data"]) == totals["requests"]
        assert format_usd(sum((Decimal(b["cost_usd"]) for b in series["data"]), Decimal(0))) == totals["cost_usd"]
        if series["bucket"] == "day":
            by_day = await get_json(http, proxy, "/v1/usage", since=summary["since"], until=summary["until"],
                                    group_by="day", **flt)
            assert {b["bucket"]: b["cost_usd"] for b in series["data"] if b["requests"]} == \
                {d["day"]: d["cost_usd"] for d in by_day["data"]}

        latest = await get_json(http, proxy, "/dashboard/api/latest", **params)
        newest_first = sorted(rows, key=lambda r: str(r["started_at"]), reverse=True)
        assert [(r["request_id"], r["status"]) for r in latest["data"]] == \
            [(r["request_id"], r["status"]) for r in newest_first]


async def test_hourly_buckets_put_each_row_in_its_utc_hour(proxy: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        series = await get_json(http, proxy, "/dashboard/api/timeseries", range="today")
    day = today().date().isoformat()
    busy = {b["bucket"]: (b["requests"], b["cost_usd"], b["errors"]) for b in series["data"] if b["requests"]}
    assert busy == {f"{day}T00": (1, "0.0000155", 0), f"{day}T01": (1, "0.00125", 1), f"{day}T02": (1, "0.000333", 0)}


async def test_csv_export_is_what_the_page_shows(proxy: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        summary = await get_json(http, proxy, "/dashboard/api/summary", range="7d")
        users = await get_json(http, proxy, "/dashboard/api/breakdown", range="7d", by="user")
        latest = await get_json(http, proxy, "/dashboard/api/latest", range="7d")
        async with http.get(proxy.make_url("/dashboard/api/export.csv"), params={"range": "7d"}, headers=AUTH) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert resp.headers["Content-Disposition"].startswith('attachment; filename="aiproxy-usage-figures-')
            figures = list(csv.DictReader(io.StringIO(await resp.text())))
        async with http.get(proxy.make_url("/dashboard/api/export.csv"), params={"range": "7d", "section": "latest"},
                            headers=AUTH) as resp:
            assert resp.status == 200
            latest_csv = list(csv.DictReader(io.StringIO(await resp.text())))
        async with http.get(proxy.make_url("/dashboard/api/export.csv"), params={"section": "nope"},
                            headers=AUTH) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "section"
    (total,) = [r for r in figures if r["section"] == "total"]
    assert {k: total[k] for k in USAGE_FIELDS} == {k: str(summary["totals"][k]) for k in USAGE_FIELDS}
    assert total["errors"] == str(summary["totals"]["errors"])
    assert [(r["key"], r["cost_usd"], r["requests"]) for r in figures if r["section"] == "user"] == \
        [(u["user"], u["cost_usd"], str(u["requests"])) for u in users["data"]]
    assert len([r for r in figures if r["section"] == "day"]) == 7
    assert [r["section"] for r in figures if r["section"] == "provider"] == ["provider"]
    assert [(r["request_id"], r["status"], r["cost_usd"]) for r in latest_csv] == \
        [(r["request_id"], r["status"], r["cost_usd"]) for r in latest["data"]]


@pytest.mark.parametrize("params, param", [
    ({"range": "fortnight"}, "range"),
    ({"range": "custom"}, "from"),
    ({"range": "custom", "from": "yesterday"}, "from"),
    ({"range": "custom", "from": "2026-11-10", "to": "2026-11-01"}, "to"),
    ({"range": "custom", "from": "2020-01-01", "to": "2026-01-01"}, "to"),
])
async def test_bad_ranges_are_openai_style_400s(proxy: TestServer, params: dict[str, str], param: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(proxy.make_url("/dashboard/api/summary"), params=params, headers=AUTH) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, "invalid_value")
