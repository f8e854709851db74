"""Usage reports, pure: query parameters in, JSON-ready dicts, CSV or an aligned table out.

Both `GET /v1/usage` and `python -m aiproxy usage` go through here, so a report reads the same
whichever way it was asked for. Money leaves as an exact decimal string, never a float.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from aiproxy.billing.ledger import GROUPS, TOTAL_FIELDS
from aiproxy.billing.pricing import format_usd

COST = "cost_usd"
SAVINGS = "cache_savings_usd"  # response-cache hits: what they did not cost (aiproxy/cache)


@dataclass(frozen=True)
class ReportQuery:
    user: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    group_by: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"user": self.user, "model": self.model, "since": self.since, "until": self.until,
                "group_by": self.group_by}


def parse_time(text: str, *, end: bool = False) -> datetime:
    """`2026-11-01` or an ISO 8601 time (UTC when no offset). A bare date as an `end` means the
    whole of that day is included: `--until 2026-11-30` covers the 30th."""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(), tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a date or ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_query(params: Mapping[str, str]) -> ReportQuery:
    """Validate report parameters (`user`, `model`, `since`, `until`, `group_by`); ValueError
    names the bad one in its first word."""

    def text(name: str) -> str | None:
        value = params.get(name)
        return value.strip() or None if value is not None else None

    group_by = text("group_by")
    if group_by is not None and group_by not in GROUPS:
        raise ValueError(f"group_by must be one of: {', '.join(GROUPS)}")
    times: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        raw = text(name)
        try:
            times[name] = parse_time(raw, end=name == "until") if raw is not None else None
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    if times["since"] and times["until"] and times["until"] <= times["since"]:
        raise ValueError("until: must be after since")
    return ReportQuery(user=text("user"), model=text("model"), group_by=group_by, **times)


def columns(group_by: str | None) -> list[str]:
    return ([group_by] if group_by else []) + list(TOTAL_FIELDS) + [COST]


def totals(rows: list[dict]) -> dict[str, Any]:
    """Grand totals over report rows (the rows of a grouping add up to it)."""
    out: dict[str, Any] = {name: sum(int(r[name]) for r in rows) for name in TOTAL_FIELDS}
    out[COST] = sum((Decimal(r[COST]) for r in rows), Decimal(0))
    out["cache_hits"] = sum(int(r.get("cache_hits", 0)) for r in rows)
    out[SAVINGS] = sum((Decimal(r.get(SAVINGS, 0)) for r in rows), Decimal(0))
    return out


def json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: format_usd(v) if k in (COST, SAVINGS) else v for k, v in row.items()}


def report_json(rows: list[dict], query: ReportQuery) -> dict[str, Any]:
    """The /v1/usage body: filters echoed back, one entry per group, and the grand total."""
    filters = {
        "user": query.user,
        "model": query.model,
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
    }
    return {
        "object": "usage.report",
        "group_by": query.group_by,
        "filters": filters,
        "data": [json_row(r) for r in rows],  # ungrouped: one row, equal to total
        "total": json_row(totals(rows)),
        "currency": "USD",
    }


def _cells(rows: list[dict], group_by: str | None) -> list[list[str]]:
    cols = columns(group_by)
    body = rows if group_by else [totals(rows)]
    return [[format_usd(r[c]) if c == COST else str(r[c]) for c in cols] for r in body]


def report_csv(rows: list[dict], group_by: str | None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns(group_by))
    writer.writerows(_cells(rows, group_by))
    return buf.getvalue()


def report_table(rows: list[dict], group_by: str | None) -> str:
    """Aligned text for a terminal: group keys left, numbers right, a TOTAL line when grouped."""
    header = columns(group_by)
    body = _cells(rows, group_by)
    if group_by:
        body.append(["TOTAL"] + _cells(rows, None)[0])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    key_cols = 1 if group_by else 0

    def fmt(line: list[str]) -> str:
        cells = enumerate(zip(line, widths, strict=True))
        return "  ".join(c.ljust(w) if i < key_cols else c.rjust(w) for i, (c, w) in cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [fmt(header), rule, *map(fmt, body[:-1] if group_by else body)]
    if group_by:
        lines += [rule, fmt(body[-1])]
    return "\n".join(lines) + "\n"
