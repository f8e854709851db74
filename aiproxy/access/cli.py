"""`python -m aiproxy keys create|list|revoke`: manage client keys in the ledger's database.

The new key is printed once, on stdout, and never again: only its hash is stored. `list` shows
ids and the first characters of each key so an operator can tell them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from aiproxy.access.keys import KeyRecord, NewKey, generate_key, hash_key, new_key_id, open_keystore, shown_prefix
from aiproxy.config import ConfigError, load_settings


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a USD amount: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive USD amount")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiproxy keys", description="Manage client API keys.")
    parser.add_argument("--db", help="database URL (default USAGE_DB_URL)")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--user", required=True, help="the user this key bills to")
    create.add_argument("--label", default="", help="free text to recognise the key by")
    create.add_argument("--rpm", type=_positive_int, help="requests per minute")
    create.add_argument("--tpm", type=_positive_int, help="tokens per minute")
    create.add_argument("--streams", type=_positive_int, help="concurrent streams")
    create.add_argument("--daily-budget", type=_usd, help="USD per UTC day for the user")
    create.add_argument("--monthly-budget", type=_usd, help="USD per UTC month for the user")
    create.add_argument("--admin", action="store_true", help="may read /v1/usage and admin routes")
    sub.add_parser("list", help="list keys (never shows the keys themselves)")
    revoke = sub.add_parser("revoke", help="disable a key by id")
    revoke.add_argument("key_id")
    return parser


def describe(rec: KeyRecord) -> str:
    """One tab-separated line per key: never the key, only its id and first characters."""
    limits = [f"{name}{value}" for name, value in (
        ("rpm=", rec.rpm), ("tpm=", rec.tpm), ("streams=", rec.max_streams),
        ("daily=$", rec.daily_budget), ("monthly=$", rec.monthly_budget),
    ) if value is not None]  # fmt: skip
    state = "enabled" if rec.enabled else "revoked"
    kind = "admin" if rec.admin else "client"
    return "\t".join([rec.id, rec.prefix + "…", rec.user, kind, state, " ".join(limits) or "-", rec.label])


async def _create(url: str, new: NewKey) -> str:
    key = generate_key()
    rec = KeyRecord(
        id=new_key_id(), key_hash=hash_key(key), prefix=shown_prefix(key), user=new.user, label=new.label,
        admin=new.admin, rpm=new.rpm, tpm=new.tpm, max_streams=new.max_streams, daily_budget=new.daily_budget,
        monthly_budget=new.monthly_budget, created_at=datetime.now(UTC),
    )
    store = open_keystore(url)
    await store.open()
    try:
        await store.insert(rec)
    finally:
        await store.close()
    print(f"created {rec.id} for user {rec.user!r}{' (admin)' if rec.admin else ''}", file=sys.stderr)
    print("store this key now; it cannot be shown again:", file=sys.stderr)
    return key


async def _list(url: str) -> list[KeyRecord]:
    store = open_keystore(url)
    await store.open()
    try:
        return await store.all_keys()
    finally:
        await store.close()


async def _revoke(url: str, key_id: str) -> bool:
    store = open_keystore(url)
    await store.open()
    try:
        return await store.revoke(key_id, datetime.now(UTC))
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        url = args.db or load_settings(require_key=False).usage_db_url
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action == "create":
        new = NewKey(user=args.user, label=args.label, admin=args.admin, rpm=args.rpm, tpm=args.tpm,
                     max_streams=args.streams, daily_budget=args.daily_budget, monthly_budget=args.monthly_budget)
        print(asyncio.run(_create(url, new)))
        return 0
    if args.action == "list":
        rows = asyncio.run(_list(url))
        print("id\tprefix\tuser\tkind\tstate\tlimits\tlabel")
        for rec in rows:
            print(describe(rec))
        return 0
    if asyncio.run(_revoke(url, args.key_id)):
        print(f"revoked {args.key_id} (takes effect within KEY_CACHE_TTL seconds)")
        return 0
    print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
    return 1
