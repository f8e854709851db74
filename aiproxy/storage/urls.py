"""PostgreSQL URL conventions the ledger and the key store share.

`?schema=name` in USAGE_DB_URL puts every table in that schema (tests use a fresh one per run);
it is our parameter, not libpq's, so it is taken out before the URL reaches asyncpg.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def split_schema(url: str) -> tuple[str, str | None]:
    """Take our own `schema` query parameter out of the URL (asyncpg would send it as a setting)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
