"""SQL the two key stores share: the table, its versioned migrations, and row conversion.

The key tables live in the ledger's database but have their own version table
(`access_schema_version`), so the ledger's migrations and these never step on each other.
Budgets are stored as decimal text (SQLite) / NUMERIC (Postgres) and read back as Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiproxy.access.keys import KeyRecord

VERSION_TABLE = "access_schema_version"

COLUMNS = (
    "id", "key_hash", "prefix", "user_id", "label", "is_admin", "enabled", "rpm", "tpm", "max_streams",
    "daily_budget", "monthly_budget", "created_at", "revoked_at",
)  # fmt: skip


def migrations(money: str, stamp: str, boolean: str) -> list[tuple[int, str]]:
    """Numbered steps; a store at version N applies the steps after N. Append, never edit."""
    return [
        (
            1,
            f"""CREATE TABLE access_keys (
                id TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                user_id TEXT NOT NULL,
                label TEXT NOT NULL DEFAULT '',
                is_admin {boolean} NOT NULL,
                enabled {boolean} NOT NULL,
                rpm INTEGER,
                tpm INTEGER,
                max_streams INTEGER,
                daily_budget {money},
                monthly_budget {money},
                created_at {stamp} NOT NULL,
                revoked_at {stamp}
            )""",
        ),
    ]


def to_params(rec: KeyRecord, stamp: Any) -> tuple[Any, ...]:
    return (
        rec.id, rec.key_hash, rec.prefix, rec.user, rec.label, rec.admin, rec.enabled, rec.rpm, rec.tpm,
        rec.max_streams, rec.daily_budget, rec.monthly_budget, stamp(rec.created_at),
        stamp(rec.revoked_at) if rec.revoked_at else None,
    )  # fmt: skip


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def from_row(row: Mapping[str, Any] | Sequence[Any]) -> KeyRecord:
    v = dict(row) if isinstance(row, Mapping) else dict(zip(COLUMNS, row, strict=True))
    return KeyRecord(
        id=v["id"], key_hash=v["key_hash"], prefix=v["prefix"], user=v["user_id"], label=v["label"],
        admin=bool(v["is_admin"]), enabled=bool(v["enabled"]), rpm=v["rpm"], tpm=v["tpm"],
        max_streams=v["max_streams"], daily_budget=_money(v["daily_budget"]),
        monthly_budget=_money(v["monthly_budget"]), created_at=_dt(v["created_at"]), revoked_at=_dt(v["revoked_at"]),
    )  # fmt: skip
