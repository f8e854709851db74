"""Group commit isolates bad rows and retries blips; the spool keeps rows exactly and replays them
into either backend idempotently (twice, or after a crash mid-replay, each row still counts once,
with its credits charge); a failing sink never breaks the meter."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aiproxy.billing.ledger import GroupCommit, open_ledger
from aiproxy.billing.ledger_guard import LedgerGuard
from aiproxy.billing.meter import Meter
from aiproxy.billing.pricing import parse_price_table
from aiproxy.billing.record import Metering, UsageRecord
from aiproxy.billing.spool import Spool, dump_record, load_record
from aiproxy.providers.retry import RetryPolicy
from tests.ledger.factories import make_record

TOO_BIG = 10**30  # no integer column takes it: a row that fails for its own values


async def ledger_ids(ledger: Any) -> list[str]:
    return sorted(r["request_id"] for r in await ledger.rows())


async def test_one_bad_row_does_not_fail_its_batch(ledger) -> None:
    good = [make_record(request_id=f"req-good-{i}") for i in range(5)]
    bad = make_record(request_id="req-bad", prompt_tokens=TOO_BIG)
    outcomes = await asyncio.gather(*(ledger.record(r) for r in [*good[:2], bad, *good[2:]]), return_exceptions=True)
    assert [o is None for o in outcomes] == [True, True, False, True, True, True]
    assert await ledger_ids(ledger) == [r.request_id for r in good]


async def test_a_failed_write_is_retried_before_anyone_is_told() -> None:
    written: list[str] = []
    failures = [ConnectionResetError("blip"), ConnectionResetError("blip")]

    async def write(recs: list[UsageRecord]) -> None:
        if failures:
            raise failures.pop()
        written.extend(r.request_id for r in recs)

    commits = GroupCommit(write, retry=RetryPolicy(retries=2, base_delay=0.001, max_delay=0.001))
    await asyncio.gather(*(commits.submit(make_record(request_id=f"r{i}")) for i in range(3)))
    assert written == ["r0", "r1", "r2"]


def test_spool_line_keeps_every_field_exactly() -> None:
    rec = make_record(cost_usd=Decimal("0.000000123456789012345678"), ttft_ms=None, end_user="bob\n🙂",
                      started_at=datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC), audio_tokens=7)
    line = dump_record(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b'"cost_usd":"0.000000123456789012345678"' in line
    assert b'"started_at":"2026-12-02T01:02:03.456789+00:00"' in line
    assert load_record(line) == rec


async def spool_rows(directory: Path, recs: list[UsageRecord]) -> None:
    spool = Spool(directory)
    await asyncio.gather(*(spool.append(r) for r in recs))
    assert spool.depth == len(recs)
    await spool.close()


async def test_replaying_twice_counts_each_row_once_with_its_charge(outbox_ledger, tmp_path: Path) -> None:
    recs = [make_record(cost_usd=Decimal("0.0001") * (i + 1)) for i in range(4)]
    await spool_rows(tmp_path / "spool", recs)
    (copy,) = [shutil.copy(p, tmp_path) for p in (tmp_path / "spool").glob("rows-*.jsonl")]
    guard = LedgerGuard(outbox_ledger, Spool(tmp_path / "spool"))
    assert await guard.spool.scan() == 4
    assert await guard.replay_once() == 4
    shutil.copy(copy, tmp_path / "spool")  # as if the process died between the commit and the delete
    assert await guard.replay_once() == 4
    assert guard.depth == 0 and not list((tmp_path / "spool").glob("rows-*.jsonl"))
    assert await ledger_ids(outbox_ledger) == sorted(r.request_id for r in recs)
    charges = await outbox_ledger.charges()
    assert sorted((c.request_id, c.amount) for c in charges) == sorted((r.request_id, r.cost_usd) for r in recs)
    await guard.spool.close()


async def test_crash_mid_replay_loses_nothing(ledger, tmp_path: Path) -> None:
    recs = [make_record() for _ in range(6)]
    await spool_rows(tmp_path, recs)
    spool = Spool(tmp_path)
    calls = 0

    async def dies_after_the_first_chunk(part: list[UsageRecord]) -> list[BaseException | None]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionResetError("the database went away")
        return list(await asyncio.gather(*(ledger.record(r) for r in part), return_exceptions=True))

    with pytest.raises(ConnectionResetError):
        await spool.replay(dies_after_the_first_chunk, chunk=2)
    assert len(await ledger_ids(ledger)) == 2
    assert spool.depth == 6 and len(list(tmp_path.glob("rows-*.jsonl"))) == 1  # the file stays whole
    guard = LedgerGuard(ledger, spool)
    assert await guard.replay_once() == 6
    assert await ledger_ids(ledger) == sorted(r.request_id for r in recs)
    assert guard.depth == 0
    await spool.close()


async def test_row_the_ledger_refuses_is_kept_for_review_not_lost(ledger, tmp_path: Path, caplog) -> None:
    good, bad = make_record(), make_record(request_id="req-refused", completion_tokens=TOO_BIG)
    await spool_rows(tmp_path, [good, bad])
    guard = LedgerGuard(ledger, Spool(tmp_path))
    with caplog.at_level(logging.ERROR, logger="aiproxy.billing"):
        assert await guard.replay_once() == 2
    assert await ledger_ids(ledger) == [good.request_id]
    assert guard.depth == 0 and not guard.down
    (kept,) = (tmp_path / "rejected.jsonl").read_text().splitlines()
    entry = json.loads(kept)
    assert load_record(json.dumps(entry["row"]).encode()) == bad and "Error" in entry["error"]
    assert any("refused by the ledger" in r.getMessage() for r in caplog.records)
    await guard.spool.close()


async def test_ledger_down_spools_at_once_and_replays_when_back(ledger_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(ledger_url)
    await ledger.open()
    write = ledger._commits._write  # a store that refuses every write, then heals
    broken = [True]

    async def flaky(recs: list[UsageRecord]) -> None:
        if broken[0]:
            raise ConnectionRefusedError("database is down")
        await write(recs)

    ledger._commits._write = flaky
    guard = LedgerGuard(ledger, Spool(tmp_path), replay_backoff=RetryPolicy(base_delay=0.01, max_delay=0.02))
    await guard.start()
    try:
        recs = [make_record() for _ in range(3)]
        for rec in recs:
            await guard.record(rec)  # returns (never raises) once the row is safe on disk
        assert guard.down and guard.depth == 3
        broken[0] = False
        for _ in range(300):
            if guard.depth == 0 and not guard.down:
                break
            await asyncio.sleep(0.01)
        assert await ledger_ids(ledger) == sorted(r.request_id for r in recs)
        assert not guard.down and guard.depth == 0
    finally:
        await guard.stop()
        await ledger.close()


async def test_meter_finish_survives_a_failing_sink(caplog) -> None:
    caplog.set_level(logging.INFO, logger="aiproxy.billing")
    hooked: list[UsageRecord] = []

    class BrokenSink:
        async def record(self, rec: UsageRecord) -> None:
            raise RuntimeError("ledger exploded")

    meter = Meter(parse_price_table('[models."m"]\ninput = "1"\noutput = "1"\n'), [BrokenSink()])
    meter.hooks.append(hooked.append)
    rec = await meter.finish(Metering(request_id="req-1", user="alice", requested_model="m", upstream_model="m"))
    assert rec is not None and hooked == [rec]
    assert sum(r.getMessage().startswith("💰 BILLING") for r in caplog.records) == 1
