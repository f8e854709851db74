"""`python -m aiproxy usage`: the /v1/usage report in a terminal, read from the ledger directly.

Reads USAGE_DB_URL like the server (environment, then `.env`), so an operator on the box needs
no admin token and no running proxy.

    python -m aiproxy usage --user alice --since 2026-11-01 --by model
    python -m aiproxy usage --since 2026-11-01 --until 2026-11-30 --by day --csv > nov.csv
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from aiproxy.billing.ledger import GROUPS, open_ledger
from aiproxy.billing.reports import ReportQuery, parse_query, report_csv, report_table
from aiproxy.config import ConfigError, load_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aiproxy usage",
        description="Totals of requests, tokens and cost (USD) from the usage ledger.",
    )
    p.add_argument("--user", help="only this billing user")
    p.add_argument("--model", help="only this model (the name clients asked for, or the Gemini model)")
    p.add_argument("--since", help="from this date or ISO time, inclusive (UTC unless an offset is given)")
    p.add_argument("--until", help="up to this ISO time, exclusive; a bare date includes that whole day")
    p.add_argument("--by", choices=GROUPS, dest="group_by", help="one line per day, model, user or provider")
    p.add_argument("--csv", action="store_true", help="CSV instead of a table")
    p.add_argument("--db", help="ledger URL (default: USAGE_DB_URL)")
    return p


async def run(query: ReportQuery, url: str, as_csv: bool, out: TextIO) -> None:
    ledger = open_ledger(url)
    await ledger.open()
    try:
        rows = await ledger.report(**query.kwargs())
    finally:
        await ledger.close()
    out.write(report_csv(rows, query.group_by) if as_csv else report_table(rows, query.group_by))


def main(argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Exit 0 with the report, 2 on bad arguments or settings (one line on stderr)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["usage"]:  # tolerate being handed the subcommand too
        args = args[1:]
    parser = build_parser()
    ns = parser.parse_args(args)
    filters = ("user", "model", "since", "until", "group_by")
    params = {k: v for k, v in vars(ns).items() if k in filters and v is not None}
    try:
        query = parse_query(params)
        url = ns.db or load_settings(require_key=False).usage_db_url
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    asyncio.run(run(query, url, ns.csv, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
