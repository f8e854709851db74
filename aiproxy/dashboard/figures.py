"""The dashboard's figures, read from the ledger: totals, time series, breakdowns, latency, latest.

Sums come from SQL (aiproxy/billing/dashboard_queries.py) with the same filters and the same exact
money sum as `GET /v1/usage`, so the page and the report agree to the last digit. Money leaves
as the project's decimal string (`format_usd`), never a float. Latency percentiles are computed
here from the newest LATENCY_SAMPLE_CAP rows of the range (SQLite has no percentile function);
the answer says how many rows it used and whether the cap cut the range.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from aiproxy.billing.dashboard_queries import (
    LATEST_COLUMNS,
    UsageFilter,
    aggregate_query,
    aggregate_rows,
    latency_query,
    latest_query,
    savings_query,
)
from aiproxy.billing.ledger_sql import Dialect
from aiproxy.billing.pricing import format_usd
from aiproxy.dashboard.ranges import bucket_keys, bucket_of

LATENCY_SAMPLE_CAP = 10_000  # rows ranked for p50/p95 (the newest of the range)
LATEST_LIMIT = 25  # rows in "latest requests"
BREAKDOWN_LIMIT = 100  # rows per breakdown (largest cost first); `truncated` says when more exist
BREAKDOWNS = ("user", "model", "provider")
SUM_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors")


class DashboardSource(Protocol):
    """What the dashboard needs of a ledger backend: its dialect and a read-only SELECT."""

    dialect: Dialect

    async def select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]: ...


def money(row: dict[str, Any]) -> dict[str, Any]:
    """A figures row with its Decimal cost as the project's exact decimal string."""
    return {k: format_usd(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def _with_rate(row: dict[str, Any]) -> dict[str, Any]:
    row["error_rate"] = round(row["errors"] / row["requests"], 4) if row["requests"] else 0.0
    return row


async def _aggregate(src: DashboardSource, f: UsageFilter, group: str | None) -> list[dict[str, Any]]:
    sql, params = aggregate_query(src.dialect, f, group)
    return aggregate_rows(await src.select(sql, params))


async def totals(src: DashboardSource, f: UsageFilter, cache: str = "off") -> dict[str, Any]:
    """Requests, tokens in/out, exact cost, errors and error rate over the range, and what
    response-cache hits saved (`cache`: the RESPONSE_CACHE mode, "off" shows as such)."""
    (row,) = await _aggregate(src, f, None)
    row.pop("key")
    sql, params = savings_query(src.dialect, f)
    ((saved,),) = await src.select(sql, params)
    row["cache_savings_usd"] = Decimal(str(saved))
    row["cache"] = cache
    return _with_rate(row)


async def timeseries(src: DashboardSource, f: UsageFilter) -> tuple[str, list[dict[str, Any]]]:
    """(bucket size, one row per hour or day of the range, empty buckets included)."""
    bucket = bucket_of(f)
    found = {r["key"]: r for r in await _aggregate(src, f, bucket)}
    rows = []
    for key in bucket_keys(f, bucket):
        row = found.get(key) or {"key": key, **dict.fromkeys(SUM_FIELDS, 0), "cost_usd": Decimal(0)}
        rows.append({"bucket": key, **{k: v for k, v in row.items() if k != "key"}})
    return bucket, rows


async def breakdown(src: DashboardSource, f: UsageFilter, by: str) -> tuple[list[dict[str, Any]], bool]:
    """(rows by user, requested model or provider, largest cost first; whether more were cut)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of: {', '.join(BREAKDOWNS)}")
    rows = await _aggregate(src, f, by)  # "provider": the ledger's column (migration 5), who served
    rows.sort(key=lambda r: (-r["cost_usd"], -r["requests"], str(r["key"])))
    return [_with_rate({by: r.pop("key"), **r}) for r in rows[:BREAKDOWN_LIMIT]], len(rows) > BREAKDOWN_LIMIT


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


async def latency(src: DashboardSource, f: UsageFilter, cap: int = LATENCY_SAMPLE_CAP) -> dict[str, Any]:
    """p50/p95 of time to first token (streamed rows that saw one) and of total duration."""
    sql, params = latency_query(src.dialect, f, cap)
    rows = await src.select(sql, params)
    ttft = [float(r[0]) for r in rows if r[0] is not None]
    duration = [float(r[1]) for r in rows if r[1] is not None]
    return {
        "ttft_ms": {"p50": percentile(ttft, 50), "p95": percentile(ttft, 95), "count": len(ttft)},
        "duration_ms": {"p50": percentile(duration, 50), "p95": percentile(duration, 95), "count": len(duration)},
        "sampled_rows": len(rows),
        "capped": len(rows) >= cap,
    }


def _iso(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def latest(src: DashboardSource, f: UsageFilter, limit: int = LATEST_LIMIT) -> list[dict[str, Any]]:
    """The newest requests of the range with their status, newest first."""
    sql, params = latest_query(src.dialect, f, limit)
    out = []
    for row in await src.select(sql, params):
        item = dict(zip(LATEST_COLUMNS, row, strict=True))
        item["started_at"] = _iso(item["started_at"])
        item["cost_usd"] = Decimal(str(item["cost_usd"]))
        item["prompt_tokens"], item["completion_tokens"] = int(item["prompt_tokens"]), int(item["completion_tokens"])
        for name in ("ttft_ms", "duration_ms"):
            item[name] = None if item[name] is None else round(float(item[name]), 1)
        out.append(item)
    return out


CSV_AGGREGATE_COLUMNS = ("section", "key", *SUM_FIELDS, "cost_usd")


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([format_usd(v) if isinstance(v, Decimal) else ("" if v is None else v) for v in row])
    return buf.getvalue()


def aggregate_csv_rows(section: str, rows: list[dict[str, Any]], key: str) -> list[list[Any]]:
    return [[section, r.get(key, ""), *(r[n] for n in SUM_FIELDS), r["cost_usd"]] for r in rows]
