"""Real ledger faults for the outage tests: a cuttable TCP relay in front of PostgreSQL, and a
SQLite ledger whose writer hits SQLITE_FULL (tests run as root, so file permissions stop nothing).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

from aiproxy.billing.ledger_sql import usage_values
from aiproxy.billing.ledger_sqlite import DIALECT, INSERT_USAGE
from tests.ledger.factories import make_record

SQLITE_MAX_PAGES = 1073741823  # SQLite's default max_page_count


class Relay:
    """127.0.0.1:<port> → 127.0.0.1:<target>. `cut()` closes every connection and refuses new
    ones (accepted, then closed at once: the client sees a reset); `restore()` relays again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.is_cut = False
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.is_cut = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


def _fill(conn: sqlite3.Connection) -> int:
    """Cap the file at its current size and fill its free space, so that the next real row gets
    SQLITE_FULL: first big rows, then tiny ones with scattered keys until none fits any more."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    filled = misses = 0
    while misses < 40:
        big = filled < 10_000 and misses == 0
        rec = make_record(user="filler") if big else make_record(
            request_id=uuid.uuid4().hex[:6], user="f", requested_model="m", upstream_model="m",
            started_at=datetime(2000 + filled % 50, 1, 1, tzinfo=UTC))
        try:
            conn.execute(INSERT_USAGE, usage_values(DIALECT, rec))
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
            misses += 1
        else:
            filled += 1
            misses = 0 if big else misses
    return filled


class LedgerFault:
    """One way to break and heal the ledger of a running proxy, per backend."""

    def __init__(self, ledger_url: str) -> None:
        self.backend = "postgres" if ledger_url.startswith("postgres") else "sqlite"
        self.ledger_url = ledger_url
        self.relay = Relay(5432) if self.backend == "postgres" else None

    async def start(self) -> None:
        if self.relay is not None:
            await self.relay.start()

    @property
    def url(self) -> str:
        """What the proxy under test connects to (through the relay on Postgres)."""
        if self.relay is None:
            return self.ledger_url
        relayed = self.ledger_url.replace("127.0.0.1:5432", f"127.0.0.1:{self.relay.port}")
        return relayed + "&sslmode=disable"  # no SSL probe: asyncpg leaks a future when it is reset

    async def cut(self, ledger: Any) -> None:
        if self.relay is not None:
            self.relay.cut()
        else:
            await ledger._on(ledger._writer, _fill, ledger._wconn)  # the writer connection itself

    async def restore(self, ledger: Any) -> None:
        if self.relay is not None:
            self.relay.restore()
        else:
            await ledger._on(ledger._writer, ledger._wconn.execute,
                             f"PRAGMA max_page_count = {SQLITE_MAX_PAGES}")

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()
