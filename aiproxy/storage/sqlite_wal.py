"""Switching a SQLite file to WAL while other processes open it too.

The switch needs the file to itself for a moment. When it meets another connection's lock SQLite
answers "database is locked" AT ONCE, without waiting out the busy timeout (waiting there could
deadlock), so several workers opening a fresh ledger together made some of them fail. Here it is
retried until it goes through (the mode is persistent: once one opener switched, the others'
switch is a no-op).
"""

from __future__ import annotations

import sqlite3
import time

from aiproxy.storage.migrate import BUSY_TIMEOUT_MS


def enable_wal(conn: sqlite3.Connection, wait_s: float = BUSY_TIMEOUT_MS / 1000) -> str:
    """Put the database in WAL mode, retrying while other connections hold it; returns the mode
    SQLite reports (a filesystem without WAL support keeps its old mode)."""
    deadline = time.monotonic() + wait_s
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
