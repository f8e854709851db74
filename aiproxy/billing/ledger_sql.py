"""SQL both ledger backends share: the schema, its migrations, row values and the report query,
each built once from a small dialect.

Kept pure (text and parameters in, text and parameters out) so that the columns, filters and
groupings mean exactly the same on SQLite and PostgreSQL, and can be read in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiproxy.billing.ledger import GROUPS, TOTAL_FIELDS, Charge
from aiproxy.billing.record import UsageRecord


@dataclass(frozen=True)
class Dialect:
    placeholder: Callable[[int], str]  # 1-based parameter number -> "?" or "$n"
    day_expr: str  # the UTC calendar day of started_at as 'YYYY-MM-DD'
    cost_sum: str  # exact sum of cost_usd
    time_param: Callable[[datetime], Any]  # how a datetime is passed as a parameter
    money_param: Callable[[Decimal], Any]  # how a Decimal is passed (losslessly)
    bool_param: Callable[[bool], Any]
    types: dict[str, str]  # logical column type -> SQL type; "id" is the row id column
    insert_ignore: tuple[str, str]  # (prefix, suffix) that make an INSERT skip a duplicate key
    hour_expr: str = "NULL"  # the UTC hour of started_at as 'YYYY-MM-DDTHH' (dashboard buckets)


# Logical columns; the dialect names their SQL types. Cost is "money": exact decimal storage.
# USAGE is migration 1's table as shipped (never edited); later columns are added by their own
# migration step and listed in USAGE_ADDED, in the order they were added.
USAGE = (
    ("request_id", "text", "NOT NULL UNIQUE"),
    ("user_id", "text", "NOT NULL"),
    ("key_id", "text", ""),
    ("end_user", "text", ""),
    ("requested_model", "text", "NOT NULL"),
    ("upstream_model", "text", "NOT NULL"),
    ("endpoint", "text", "NOT NULL"),
    ("streamed", "bool", "NOT NULL"),
    ("prompt_tokens", "int", "NOT NULL"),
    ("completion_tokens", "int", "NOT NULL"),
    ("reasoning_tokens", "int", "NOT NULL"),
    ("cached_tokens", "int", "NOT NULL"),
    ("audio_tokens", "int", "NOT NULL DEFAULT 0"),
    ("total_tokens", "int", "NOT NULL"),
    ("cost_usd", "money", "NOT NULL"),
    ("status", "text", "NOT NULL"),
    ("estimated", "bool", "NOT NULL"),
    ("price_fallback", "bool", "NOT NULL"),
    ("started_at", "time", "NOT NULL"),
    ("duration_ms", "float", "NOT NULL"),
    ("ttft_ms", "float", ""),
)
OUTBOX = (
    ("request_id", "text", "PRIMARY KEY"),
    ("user_id", "text", "NOT NULL"),
    ("amount", "money", "NOT NULL"),
    ("description", "text", "NOT NULL"),
    ("state", "text", "NOT NULL DEFAULT 'pending'"),
    ("attempts", "int", "NOT NULL DEFAULT 0"),
    ("next_attempt_at", "time", "NOT NULL"),
    ("last_error", "text", ""),
    ("created_at", "time", "NOT NULL"),
)
STORED_RESPONSES = (  # migration 6: aiproxy/responses/store.py
    ("response_id", "text", "PRIMARY KEY"),
    ("user_id", "text", "NOT NULL"),
    ("created_at", "time", "NOT NULL"),
    ("items", "text", "NOT NULL"),  # the conversation so far (input and output items), JSON
    ("response", "text", "NOT NULL"),  # the response object as sent, JSON
)
USAGE_ADDED = (
    ("client_request_id", "text", ""),  # migration 3: the client's X-Request-ID, a label (not unique)
    ("provider", "text", "NOT NULL DEFAULT 'gemini'"),  # migration 5: who served; older rows were Gemini's
    ("cache_hit", "bool", "NOT NULL DEFAULT FALSE"),  # migration 7: served from the response cache
    ("cache_savings_usd", "money", "NOT NULL DEFAULT 0"),  # migration 7: a hit's full cost minus its charge
)
USAGE_COLUMNS = ", ".join(name for name, _, _ in USAGE + USAGE_ADDED)
CHARGE_COLUMNS = ", ".join(name for name, _, _ in OUTBOX[:-1]) + ", lease_token"  # Charge's fields, in order
VERSION_TABLE = "schema_version"  # where aiproxy.storage.migrate records the ledger's steps


def _table(d: Dialect, name: str, columns: tuple[tuple[str, str, str], ...], with_id: bool) -> str:
    cols = [f"id {d.types['id']}"] if with_id else []
    cols += [f"{col} {d.types[kind]} {extra}".rstrip() for col, kind, extra in columns]
    return f"CREATE TABLE {name} ({', '.join(cols)})"


def migrations(d: Dialect) -> list[tuple[int, list[str]]]:
    """Numbered schema steps; a ledger at version N applies the steps after N, in order. Append
    new steps, never edit shipped ones."""
    return [
        (
            1,
            [
                _table(d, "usage", USAGE, with_id=True),
                "CREATE INDEX usage_user_started ON usage (user_id, started_at)",
                "CREATE INDEX usage_started ON usage (started_at)",
            ],
        ),
        (2, [_table(d, "outbox", OUTBOX, with_id=False), "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)"]),
        (
            3,  # request_id became the server's own id; the client's id is kept beside it
            [
                _add_column(d, "usage", USAGE_ADDED[0]),
                "CREATE INDEX usage_client_request_id ON usage (client_request_id)",
            ],
        ),
        (4, [f"ALTER TABLE outbox ADD COLUMN lease_token {d.types['text']}"]),  # lease ownership
        (5, [_add_column(d, "usage", USAGE_ADDED[1])]),  # the provider that served each row
        (6, [_table(d, "responses", STORED_RESPONSES, with_id=False),  # Responses API state (store: true)
             "CREATE INDEX responses_user_created ON responses (user_id, created_at)"]),
        (7, [_add_column(d, "usage", USAGE_ADDED[2]), _add_column(d, "usage", USAGE_ADDED[3])]),  # aiproxy/cache
    ]


def _add_column(d: Dialect, table: str, column: tuple[str, str, str]) -> str:
    name, kind, extra = column
    return f"ALTER TABLE {table} ADD COLUMN {name} {d.types[kind]} {extra}".rstrip()


def _insert(d: Dialect, table: str, columns: str, conflict: str) -> str:
    n = columns.count(",") + 1
    prefix, suffix = d.insert_ignore
    values = ", ".join(d.placeholder(i) for i in range(1, n + 1))
    return f"INSERT {prefix}INTO {table} ({columns}) VALUES ({values}){suffix.format(conflict)}"


def insert_usage(d: Dialect) -> str:
    return _insert(d, "usage", USAGE_COLUMNS, "request_id")


def insert_charge(d: Dialect) -> str:
    return _insert(d, "outbox", "request_id, user_id, amount, description, next_attempt_at, created_at", "request_id")


def usage_values(d: Dialect, rec: UsageRecord) -> tuple[Any, ...]:
    """The row for `rec`, in USAGE_COLUMNS order."""
    return (
        rec.request_id, rec.user, rec.key_id, rec.end_user, rec.requested_model, rec.upstream_model,
        rec.endpoint, d.bool_param(rec.streamed), rec.prompt_tokens, rec.completion_tokens,
        rec.reasoning_tokens, rec.cached_tokens, rec.audio_tokens, rec.total_tokens,
        d.money_param(rec.cost_usd), rec.status, d.bool_param(rec.estimated),
        d.bool_param(rec.price_fallback), d.time_param(utc(rec.started_at)), rec.duration_ms, rec.ttft_ms,
        rec.client_request_id, rec.provider, d.bool_param(rec.cache_hit), d.money_param(rec.cache_savings_usd),
    )  # fmt: skip


def charge_values(d: Dialect, charges: list[Charge], now: datetime) -> list[tuple[Any, ...]]:
    t = d.time_param(utc(now))
    return [(c.request_id, c.user, d.money_param(c.amount), c.description, t, t) for c in charges]


def claim_query(d: Dialect, lock: str) -> str:
    """Lease due pending charges: push next_attempt_at forward, stamp the claim's lease token and
    return them, atomically. Parameters: lease end, token, state, now, limit."""
    p = d.placeholder
    return (
        f"UPDATE outbox SET next_attempt_at = {p(1)}, lease_token = {p(2)} WHERE request_id IN (SELECT request_id"
        f" FROM outbox WHERE state = {p(3)} AND next_attempt_at <= {p(4)} ORDER BY next_attempt_at LIMIT {p(5)}{lock})"
        f" RETURNING {CHARGE_COLUMNS}"
    )


def update_charge_query(d: Dialect) -> str:
    """Record a send's outcome only while the sender's lease token is the row's. Parameters:
    state, attempts, next_attempt_at, last_error, request_id, lease_token."""
    p = d.placeholder
    return (
        f"UPDATE outbox SET state = {p(1)}, attempts = {p(2)}, next_attempt_at = {p(3)}, last_error = {p(4)}"
        f" WHERE request_id = {p(5)} AND lease_token = {p(6)}"
    )


COUNT_CHARGES = "SELECT state, COUNT(*) FROM outbox GROUP BY state"


def utc(dt: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (the ledger never stores local)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def report_query(
    d: Dialect,
    *,
    user: str | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    group_by: str | None,
) -> tuple[str, list[Any]]:
    """SELECT of the totals; `model` matches the requested or the upstream model; `until` is
    exclusive. Grouping by model groups by the model name the client asked for."""
    if group_by is not None and group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    where: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return d.placeholder(len(params))

    if user is not None:
        where.append(f"user_id = {param(user)}")
    if model is not None:
        where.append(f"(requested_model = {param(model)} OR upstream_model = {param(model)})")
    if since is not None:
        where.append(f"started_at >= {param(d.time_param(utc(since)))}")
    if until is not None:
        where.append(f"started_at < {param(d.time_param(utc(until)))}")
    key = {"day": d.day_expr, "model": "requested_model", "user": "user_id", "provider": "provider",
           None: "NULL"}[group_by]
    sums = ", ".join(f"COALESCE(SUM({f}), 0)" for f in TOTAL_FIELDS[1:])
    savings = d.cost_sum.replace("cost_usd", "cache_savings_usd")  # the same exact sum, of another column
    sql = (f"SELECT {key} AS k, COUNT(*), {sums}, COALESCE({d.cost_sum}, '0'),"
           f" COALESCE(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), 0), COALESCE({savings}, '0') FROM usage")
    if where:
        sql += " WHERE " + " AND ".join(where)
    if group_by is not None:
        sql += f" GROUP BY {key} ORDER BY {key}"
    return sql, params


def report_rows(rows: Sequence[Sequence[Any]], group_by: str | None) -> list[dict]:
    """Database tuples -> report dicts with ints and an exact Decimal cost."""
    out: list[dict] = []
    for row in rows:
        item: dict[str, Any] = {}
        if group_by is not None:
            item[group_by] = row[0]
        for name, value in zip(TOTAL_FIELDS, row[1:-3], strict=True):
            item[name] = int(value)
        item["cost_usd"] = Decimal(str(row[-3]))
        item["cache_hits"], item["cache_savings_usd"] = int(row[-2]), Decimal(str(row[-1]))
        out.append(item)
    return out
