"""SQL for the usage dashboard, pure: filters in, text and parameters out, on both ledger dialects.

The dashboard's totals must equal `GET /v1/usage` to the last digit, so its filters mean exactly
what `ledger_sql.report_query`'s do (`model` matches the requested or the upstream model, `until`
is exclusive) and money is summed by the dialect's exact `cost_sum`. Grouping keys are plain
columns or the dialect's UTC hour/day text, so a bucket is the same string on SQLite and
PostgreSQL. Percentiles are not portable to SQLite, so latency rows are fetched (bounded by a
LIMIT) and ranked in Python (aiproxy/dashboard/report.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiproxy.billing.ledger_sql import Dialect, utc
from aiproxy.billing.record import INTERNAL_ERROR, UPSTREAM_ERROR

# Statuses counted as errors: the service failed. A client that hung up or a content filter
# is not a failure of the proxy; those rows still show in the latest requests with their status.
ERROR_STATUSES = (UPSTREAM_ERROR, INTERNAL_ERROR)
GROUP_KEYS = ("user", "model", "upstream", "provider", "hour", "day")
LATEST_COLUMNS = ("request_id", "started_at", "user_id", "requested_model", "upstream_model", "status",
                  "prompt_tokens", "completion_tokens", "cost_usd", "ttft_ms", "duration_ms")


@dataclass(frozen=True)
class UsageFilter:
    since: datetime
    until: datetime  # exclusive
    user: str | None = None
    model: str | None = None


class _Params:
    def __init__(self, d: Dialect) -> None:
        self.d = d
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return self.d.placeholder(len(self.values))


def _where(p: _Params, f: UsageFilter) -> str:
    d = p.d
    clauses = [f"started_at >= {p(d.time_param(utc(f.since)))}", f"started_at < {p(d.time_param(utc(f.until)))}"]
    if f.user is not None:
        clauses.append(f"user_id = {p(f.user)}")
    if f.model is not None:
        clauses.append(f"(requested_model = {p(f.model)} OR upstream_model = {p(f.model)})")
    return " WHERE " + " AND ".join(clauses)


def _key(d: Dialect, group: str | None) -> str:
    if group is not None and group not in GROUP_KEYS:
        raise ValueError(f"group must be one of {', '.join(GROUP_KEYS)}")
    return {"user": "user_id", "model": "requested_model", "upstream": "upstream_model", "provider": "provider",
            "hour": d.hour_expr, "day": d.day_expr, None: "NULL"}[group]


def aggregate_query(d: Dialect, f: UsageFilter, group: str | None) -> tuple[str, list[Any]]:
    """Per group (or overall): requests, prompt, completion and total tokens, exact cost, errors."""
    p = _Params(d)
    key = _key(d, group)
    errors = ", ".join(p(s) for s in ERROR_STATUSES)
    sql = (f"SELECT {key} AS k, COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
           f" COALESCE(SUM(total_tokens), 0), COALESCE({d.cost_sum}, '0'),"
           f" COALESCE(SUM(CASE WHEN status IN ({errors}) THEN 1 ELSE 0 END), 0) FROM usage")
    sql += _where(p, f)
    if group is not None:
        sql += f" GROUP BY {key} ORDER BY {key}"
    return sql, p.values


def aggregate_rows(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Database tuples -> dicts with ints and an exact Decimal cost, key under "key"."""
    return [{"key": r[0], "requests": int(r[1]), "prompt_tokens": int(r[2]), "completion_tokens": int(r[3]),
             "total_tokens": int(r[4]), "cost_usd": Decimal(str(r[5])), "errors": int(r[6])} for r in rows]


def savings_query(d: Dialect, f: UsageFilter) -> tuple[str, list[Any]]:
    """The exact sum of what response-cache hits saved (migration 7's column) over the range."""
    p = _Params(d)
    savings = d.cost_sum.replace("cost_usd", "cache_savings_usd")  # the dialect's exact sum, of that column
    return f"SELECT COALESCE({savings}, '0') FROM usage" + _where(p, f), p.values


def latency_query(d: Dialect, f: UsageFilter, cap: int) -> tuple[str, list[Any]]:
    """(ttft_ms, duration_ms) of the newest `cap` requests of the range."""
    p = _Params(d)
    sql = f"SELECT ttft_ms, duration_ms FROM usage{_where(p, f)} ORDER BY started_at DESC LIMIT {p(cap)}"
    return sql, p.values


def latest_query(d: Dialect, f: UsageFilter, limit: int) -> tuple[str, list[Any]]:
    """The newest `limit` rows of the range, LATEST_COLUMNS, newest first."""
    p = _Params(d)
    sql = (f"SELECT {', '.join(LATEST_COLUMNS)} FROM usage{_where(p, f)}"
           f" ORDER BY started_at DESC, id DESC LIMIT {p(limit)}")
    return sql, p.values
