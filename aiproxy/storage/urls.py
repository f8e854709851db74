"""The one parser of USAGE_DB_URL, shared by the ledger, the key store and the settings check.

Forms: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `memory://` (SQLite in
memory, for tests and demos), `postgresql://…` or `postgres://…` with an optional `?schema=name`.
`schema` puts every table in that schema (tests use a fresh one per run); it is our parameter, not
libpq's, so it is taken out before the URL reaches asyncpg.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """Where a store lives: a SQLite file (`sqlite_path`, None in memory) or a Postgres DSN."""

    backend: str  # "sqlite" or "postgres"
    sqlite_path: str | None = None
    dsn: str | None = None
    schema: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"


def parse_database_url(url: str) -> DatabaseURL:
    """Split USAGE_DB_URL into backend and location; ValueError for any other scheme."""
    if url.startswith(("postgresql://", "postgres://")):
        dsn, schema = split_schema(url)
        return DatabaseURL("postgres", dsn=dsn, schema=schema)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        return DatabaseURL("sqlite", sqlite_path=path[1:] if path.startswith("/") else path)
    if url.startswith("memory://"):
        return DatabaseURL("sqlite")
    raise ValueError(f"unsupported USAGE_DB_URL scheme: {url.split(':', 1)[0]}")


def split_schema(url: str) -> tuple[str, str | None]:
    """Take our own `schema` query parameter out of the URL (asyncpg would send it as a setting)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
