"""A local, durable spool for usage rows the ledger cannot take right now.

The ledger is the bill: when it is unreachable (database down, disk full) a finished request's
row must still survive, even a crash of this process, without holding the client's response
hostage. Rows are appended as JSON lines (every UsageRecord field; Decimal as a string, datetimes
ISO 8601) and fsynced before `append` returns. `replay` writes them to the ledger and deletes a
file only once all its rows are in; the ledger skips request ids it already holds, so a file
replayed twice (a crash between the write and the delete) still counts each row once.

Files: each process appends to its own `rows-<pid>-<random>.jsonl` and holds an exclusive flock on
it while it is open. Replay takes every file it can lock: this process's closed files and files
left by a process that is gone (a previous run, a crashed worker); a live worker's open file stays
locked and is skipped. Rows the ledger refuses for their own values (and torn lines) go to
`rejected.jsonl` with an ERROR log, for an operator: never dropped, never retried forever.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from aiproxy.backoff import RetryPolicy
from aiproxy.billing.ledger import GroupCommit, is_row_fault
from aiproxy.billing.pricing import format_usd
from aiproxy.billing.record import UsageRecord

log = logging.getLogger("aiproxy.billing")

ROWS_GLOB = "rows-*.jsonl"
REJECTED = "rejected.jsonl"
APPEND_RETRY = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.1)

T = TypeVar("T")
# Writes rows to the ledger; one outcome per row, in order (None: committed).
RowWriter = Callable[[list[UsageRecord]], Awaitable[list[BaseException | None]]]


def dump_record(rec: UsageRecord) -> bytes:
    """One JSON line holding every field of `rec`; exact (Decimal as text, aware ISO datetimes)."""
    values: dict[str, Any] = {}
    for f in fields(UsageRecord):
        value = getattr(rec, f.name)
        if isinstance(value, Decimal):
            value = format_usd(value)  # exact, and never in exponent form
        elif isinstance(value, datetime):
            value = value.isoformat()
        values[f.name] = value
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def load_record(line: bytes) -> UsageRecord:
    """The UsageRecord of one spool line; fields unknown to this version are ignored."""
    data = json.loads(line)
    values: dict[str, Any] = {}
    for f in fields(UsageRecord):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = str(f.type)
        if value is not None and "Decimal" in kind:
            value = Decimal(value)
        elif value is not None and "datetime" in kind:
            value = datetime.fromisoformat(value)
        values[f.name] = value
    return UsageRecord(**values)


class Spool:
    """Append-only row files under `directory`, created on the first row (nothing on disk before)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.rejected = 0  # rows moved to rejected.jsonl by this process
        self._io = ThreadPoolExecutor(1, thread_name_prefix="ledger-spool")  # every file op, in order
        self._fd: int | None = None
        self._path: Path | None = None
        self._rows: dict[Path, int] = {}  # rows waiting, per file this process knows (loop thread only)
        self._appends = GroupCommit(self._append_batch, retry=APPEND_RETRY)  # one fsync per group

    @property
    def depth(self) -> int:
        """Rows waiting to be replayed (this process's files and the orphans it found)."""
        return sum(self._rows.values())

    async def append(self, rec: UsageRecord) -> None:
        """Return once `rec` is on disk (fsynced); raise if it could not be written."""
        await self._appends.submit(rec)

    async def scan(self) -> int:
        """Count the rows of files left by earlier runs (for readiness and metrics before replay)."""
        for path in await self._on(self._candidates):
            claimed = await self._on(self._claim, path)
            if claimed is not None:
                fd, data = claimed
                await self._on(os.close, fd)
                self._rows[path] = data.count(b"\n")
        return self.depth

    async def replay(self, write: RowWriter, chunk: int = 500) -> int:
        """Write every spooled row this process can claim through `write`, deleting each file once
        all its rows are in. The first failure that is not a row's own fault is raised and leaves
        the file for the next pass. Returns the rows replayed."""
        await self._on(self._close_active)  # rows arriving from now on start a new file
        candidates = await self._on(self._candidates)
        for gone in await self._on(_missing, list(self._rows)):
            self._rows.pop(gone, None)  # an orphan another process replayed meanwhile
        replayed = 0
        for path in candidates:
            claimed = await self._on(self._claim, path)
            if claimed is None:
                continue
            fd, data = claimed
            try:
                recs = await self._parse(path, data)
                self._rows[path] = len(recs)
                for start in range(0, len(recs), chunk):
                    part = recs[start:start + chunk]
                    for rec, exc in zip(part, await write(part), strict=True):
                        if exc is None:
                            continue
                        if not is_row_fault(exc):
                            raise exc
                        await self.reject(dump_record(rec), f"{type(exc).__name__}: {exc}")
                await self._on(path.unlink)
                self._rows.pop(path, None)
                replayed += len(recs)
            finally:
                await self._on(os.close, fd)
        return replayed

    async def reject(self, line: bytes, reason: str) -> None:
        """Keep a row the ledger refuses (or a torn line) in rejected.jsonl, fsynced, and say so."""
        entry: dict[str, Any] = {"error": reason}
        try:
            entry["row"] = json.loads(line)
        except ValueError:
            entry["raw"] = line.decode("utf-8", "replace").rstrip("\n")
        data = json.dumps(entry, ensure_ascii=False).encode() + b"\n"
        await self._on(self._append_to, self.directory / REJECTED, data)
        self.rejected += 1
        log.error("usage row refused by the ledger (%s); kept in %s for review", reason, self.directory / REJECTED)

    async def close(self) -> None:
        await self._appends.drain()
        await self._on(self._close_active)
        self._io.shutdown(wait=True)

    # -- on the spool thread -------------------------------------------------------------------
    async def _on(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def _append_batch(self, recs: list[UsageRecord]) -> None:
        path = await self._on(self._append_lines, b"".join(map(dump_record, recs)))
        self._rows[path] = self._rows.get(path, 0) + len(recs)

    def _append_lines(self, data: bytes) -> Path:
        if self._fd is None or self._path is None:
            self._open_active()
        assert self._fd is not None and self._path is not None
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except BaseException:
            self._close_active()  # a partial line must not prefix the next row: start a new file
            raise
        return self._path

    def _open_active(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"rows-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while open: no other process replays it
        _fsync_dir(self.directory)  # the new name survives a crash too
        self._fd, self._path = fd, path

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._path = None

    def _candidates(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(ROWS_GLOB))

    @staticmethod
    def _claim(path: Path) -> tuple[int, bytes] | None:
        """Lock `path` and read it; None when another live process holds it or it is gone."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if os.fstat(fd).st_nlink == 0:  # replayed and deleted while we waited for the lock
            os.close(fd)
            return None
        chunks = []
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
        return fd, b"".join(chunks)

    def _append_to(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    async def _parse(self, path: Path, data: bytes) -> list[UsageRecord]:
        recs: list[UsageRecord] = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                recs.append(load_record(line))
            except (ValueError, TypeError) as exc:  # a line torn by a crash mid-append
                await self.reject(line, f"unreadable line in {path.name}: {exc}")
        return recs


def _missing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not p.exists()]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
