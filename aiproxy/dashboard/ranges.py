"""The dashboard's range selector: `range=today|7d|30d|custom` (+ `from`/`to`), `user`, `model`.

Ranges are whole UTC days (today, the last 7 or 30 days including today, or custom dates), so
the same bounds passed to `GET /v1/usage` as `since`/`until` give the same totals. Short ranges
are charted by the hour, longer ones by the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

from aiproxy.billing.dashboard_queries import UsageFilter
from aiproxy.billing.reports import parse_time

RANGES = {"today": 1, "7d": 7, "30d": 30}
DEFAULT_RANGE = "7d"
MAX_DAYS = 366  # a custom range is bounded: buckets, rows read and the page stay small
HOURLY_UP_TO = timedelta(days=2)


def parse_filter(params: Mapping[str, str], now: datetime) -> tuple[str, UsageFilter]:
    """(range name, filter) from query parameters; ValueError names the bad parameter first."""

    def text(name: str) -> str | None:
        value = params.get(name)
        return value.strip() or None if value is not None else None

    name = text("range") or DEFAULT_RANGE
    tomorrow = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC) + timedelta(days=1)
    if name in RANGES:
        since, until = tomorrow - timedelta(days=RANGES[name]), tomorrow
    elif name == "custom":
        since, until = _custom(text("from"), text("to"), tomorrow)
    else:
        raise ValueError(f"range: must be one of: {', '.join([*RANGES, 'custom'])}")
    return name, UsageFilter(since=since, until=until, user=text("user"), model=text("model"))


def _custom(start: str | None, end: str | None, tomorrow: datetime) -> tuple[datetime, datetime]:
    if start is None:
        raise ValueError("from: required with range=custom (a date such as 2026-11-01)")
    try:
        since = parse_time(start)
    except ValueError as exc:
        raise ValueError(f"from: {exc}") from None
    try:
        until = parse_time(end, end=True) if end is not None else tomorrow
    except ValueError as exc:
        raise ValueError(f"to: {exc}") from None
    if until <= since:
        raise ValueError("to: must be after from")
    if until - since > timedelta(days=MAX_DAYS):
        raise ValueError(f"to: a range spans at most {MAX_DAYS} days")
    return since, until


def bucket_of(f: UsageFilter) -> str:
    return "hour" if f.until - f.since <= HOURLY_UP_TO else "day"


def bucket_keys(f: UsageFilter, bucket: str) -> list[str]:
    """Every bucket of the range, in the ledger's text form ('YYYY-MM-DDTHH' or 'YYYY-MM-DD')."""
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    fmt = "%Y-%m-%dT%H" if bucket == "hour" else "%Y-%m-%d"
    start = f.since.astimezone(UTC)
    start = start.replace(minute=0, second=0, microsecond=0) if bucket == "hour" else \
        start.replace(hour=0, minute=0, second=0, microsecond=0)
    keys: list[str] = []
    while start < f.until:
        keys.append(start.strftime(fmt))
        start += step
    return keys
