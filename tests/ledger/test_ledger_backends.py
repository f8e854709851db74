"""The ledger contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from aiproxy.billing.ledger import open_ledger
from tests.ledger.factories import make_record

NOV = datetime(2026, 11, 1, tzinfo=UTC)


async def test_record_reads_back_exactly(ledger) -> None:
    rec = make_record(
        request_id="req-exact",
        user="bob@example.com",
        key_id="key-7",
        end_user="device-3",
        requested_model="gpt-4o-mini",
        upstream_model="gemini-3.5-flash",
        endpoint="embeddings",
        streamed=False,
        prompt_tokens=123_457,
        completion_tokens=89,
        reasoning_tokens=40,
        cached_tokens=1024,
        audio_tokens=17,
        total_tokens=123_546,
        cost_usd=Decimal("0.000000123456789012345"),
        status="client_disconnected",
        estimated=True,
        price_fallback=True,
        started_at=datetime(2026, 11, 3, 23, 59, 59, 999_999, tzinfo=UTC),
        duration_ms=1.5,
        ttft_ms=None,
    )
    await ledger.record(rec)
    (row,) = await ledger.rows()
    assert row["request_id"] == "req-exact"
    assert (row["user_id"], row["key_id"], row["end_user"]) == ("bob@example.com", "key-7", "device-3")
    assert ((row["requested_model"], row["upstream_model"], row["endpoint"])
            == ("gpt-4o-mini", "gemini-3.5-flash", "embeddings"))
    assert not row["streamed"] and row["estimated"] and row["price_fallback"]
    counts = [row[k] for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")]
    assert counts == [123_457, 89, 40, 1024]
    assert (row["audio_tokens"], row["total_tokens"], row["status"]) == (17, 123_546, "client_disconnected")
    assert Decimal(str(row["cost_usd"])) == Decimal("0.000000123456789012345")
    assert (row["duration_ms"], row["ttft_ms"]) == (1.5, None)
    (total,) = await ledger.report()
    assert total["cost_usd"] == Decimal("0.000000123456789012345")
    assert total["requests"] == 1 and total["total_tokens"] == 123_546


async def test_same_request_id_is_counted_once(ledger) -> None:
    rec = make_record(request_id="req-dup", cost_usd=Decimal("0.5"))
    await ledger.record(rec)
    await ledger.record(rec)
    await asyncio.gather(*(ledger.record(make_record(request_id="req-dup", cost_usd=Decimal("9"))) for _ in range(5)))
    (total,) = await ledger.report()
    assert (total["requests"], total["cost_usd"]) == (1, Decimal("0.5"))


async def test_concurrent_records_share_few_transactions(ledger) -> None:
    n = 300
    recs = [make_record(cost_usd=Decimal("0.00005")) for _ in range(n)]
    await asyncio.gather(*(ledger.record(r) for r in recs))
    (total,) = await ledger.report()
    assert total["requests"] == n
    assert total["cost_usd"] == Decimal("0.01500")
    assert ledger.transactions <= 10, f"{ledger.transactions} commits for {n} rows: no group commit"


async def test_close_commits_rows_still_pending(ledger_url: str) -> None:
    led = open_ledger(ledger_url)
    await led.open()
    tasks = [asyncio.create_task(led.record(make_record())) for _ in range(50)]
    await asyncio.sleep(0)  # submitted, not yet awaited by anyone
    await led.close()
    assert all(t.done() and t.exception() is None for t in tasks)
    again = open_ledger(ledger_url)
    await again.open()
    try:
        assert (await again.report())[0]["requests"] == 50
    finally:
        await again.close()


async def test_cancelled_caller_still_gets_its_row(ledger) -> None:
    """A handler cancelled mid-record (client gone) must not lose the row it submitted."""
    task = asyncio.create_task(ledger.record(make_record(request_id="req-cancel")))
    await asyncio.sleep(0)
    task.cancel()
    await ledger.record(make_record(request_id="req-after"))
    assert sorted(r["request_id"] for r in await ledger.rows()) == ["req-after", "req-cancel"]


async def test_reopen_keeps_schema_and_rows(ledger_url: str) -> None:
    for _ in range(2):  # the second open finds version 2 and migrates nothing
        led = open_ledger(ledger_url)
        await led.open()
        await led.record(make_record())
        await led.close()
    led = open_ledger(ledger_url)
    await led.open()
    try:
        assert (await led.report())[0]["requests"] == 2
        assert await led.ping()
    finally:
        await led.close()


@pytest.fixture
async def month(ledger):
    """alice and bob over three days of November on two models, plus one October row."""
    rows = [
        make_record(user="alice", requested_model="gpt-4", upstream_model="gemini-2.5-pro",
                    started_at=NOV + timedelta(days=1, hours=1),
                    prompt_tokens=1000, completion_tokens=1000, total_tokens=2000, cost_usd=Decimal("0.00075")),
        make_record(user="alice", requested_model="gpt-4", upstream_model="gemini-2.5-pro",
                    started_at=NOV + timedelta(days=1, hours=23),
                    prompt_tokens=100, completion_tokens=50, total_tokens=150, cost_usd=Decimal("0.00005")),
        make_record(user="alice", requested_model="gemini-flash", upstream_model="gemini-3.5-flash",
                    started_at=NOV + timedelta(days=2),
                    prompt_tokens=5000, completion_tokens=2000, reasoning_tokens=500, cached_tokens=1000,
                    total_tokens=7000,
                    cost_usd=Decimal("0.00225")),
        make_record(user="bob", requested_model="gemini-flash", upstream_model="gemini-3.5-flash",
                    started_at=NOV + timedelta(days=3),
                    prompt_tokens=10, completion_tokens=10, total_tokens=20, cost_usd=Decimal("0.0000001")),
        make_record(user="alice", started_at=NOV - timedelta(seconds=1), cost_usd=Decimal("1")),
    ]  # fmt: skip
    for rec in rows:
        await ledger.record(rec)
    return ledger


async def test_report_totals_and_user_filter(month) -> None:
    (everything,) = await month.report()
    assert everything["requests"] == 5
    assert everything["cost_usd"] == Decimal("1.0030501")
    (alice,) = await month.report(user="alice", since=NOV)
    assert alice == {
        "requests": 3,
        "prompt_tokens": 6100,
        "completion_tokens": 3050,
        "reasoning_tokens": 500,
        "cached_tokens": 1000,
        "total_tokens": 9150,
        "cost_usd": Decimal("0.00305"),
        "cache_hits": 0,
        "cache_savings_usd": Decimal(0),
    }


async def test_report_time_range_is_since_inclusive_until_exclusive(month) -> None:
    (day2,) = await month.report(since=NOV + timedelta(days=1), until=NOV + timedelta(days=2))
    assert (day2["requests"], day2["cost_usd"]) == (2, Decimal("0.00080"))
    (none,) = await month.report(user="carol")
    assert none["requests"] == 0 and none["cost_usd"] == 0


async def test_report_model_filter_matches_requested_or_upstream(month) -> None:
    (by_alias,) = await month.report(model="gemini-flash")
    (by_upstream,) = await month.report(model="gemini-3.5-flash")
    assert by_alias == by_upstream
    assert by_alias["requests"] == 2 and by_alias["cost_usd"] == Decimal("0.0022501")


async def test_report_groupings(month) -> None:
    by_day = await month.report(since=NOV, group_by="day")
    assert [(r["day"], r["requests"], r["cost_usd"]) for r in by_day] == [
        ("2026-11-02", 2, Decimal("0.00080")),
        ("2026-11-03", 1, Decimal("0.00225")),
        ("2026-11-04", 1, Decimal("0.0000001")),
    ]
    by_model = await month.report(user="alice", since=NOV, group_by="model")
    assert ([(r["model"], r["requests"], r["total_tokens"]) for r in by_model]
            == [("gemini-flash", 1, 7000), ("gpt-4", 2, 2150)])
    by_user = await month.report(group_by="user")
    assert ([(r["user"], r["cost_usd"]) for r in by_user]
            == [("alice", Decimal("1.00305")), ("bob", Decimal("0.0000001"))])
    with pytest.raises(ValueError):
        await month.report(group_by="week")


async def test_spent_since(month) -> None:
    assert await month.spent("alice", NOV) == Decimal("0.00305")
    assert await month.spent("alice", NOV - timedelta(days=1)) == Decimal("1.00305")
    assert await month.spent("nobody", NOV) == 0


async def test_outbox_enqueues_priced_rows_once(outbox_ledger) -> None:
    await outbox_ledger.record(make_record(request_id="req-a", cost_usd=Decimal("0.00075")))
    await outbox_ledger.record(make_record(request_id="req-a", cost_usd=Decimal("0.00075")))
    await outbox_ledger.record(make_record(request_id="req-free", cost_usd=Decimal("0")))
    (charge,) = await outbox_ledger.charges()
    assert ((charge.request_id, charge.user, charge.amount, charge.state)
            == ("req-a", "alice", Decimal("0.00075"), "pending"))
    assert "req-a" in charge.description
    now = datetime.now(UTC)
    claimed = await outbox_ledger.claim_charges(now, timedelta(seconds=30))
    assert [c.request_id for c in claimed] == ["req-a"]
    assert await outbox_ledger.claim_charges(now, timedelta(seconds=30)) == []  # leased meanwhile
    assert await outbox_ledger.update_charge(claimed[0], state="sent", attempts=1, next_attempt_at=None, error=None)
    assert await outbox_ledger.claim_charges(now + timedelta(minutes=5), timedelta(seconds=30)) == []
    assert [c.state for c in await outbox_ledger.charges("sent")] == ["sent"]


async def test_update_with_a_lost_lease_writes_nothing(outbox_ledger) -> None:
    await outbox_ledger.record(make_record(request_id="req-l", cost_usd=Decimal("0.1")))
    now = datetime.now(UTC)
    [stale] = await outbox_ledger.claim_charges(now, timedelta(seconds=1))
    [fresh] = await outbox_ledger.claim_charges(now + timedelta(seconds=2), timedelta(seconds=30))  # lease expired
    assert stale.lease_token and fresh.lease_token and stale.lease_token != fresh.lease_token
    assert not await outbox_ledger.update_charge(stale, state="unpaid", attempts=1, next_attempt_at=None, error="x")
    assert [(c.state, c.attempts) for c in await outbox_ledger.charges()] == [("pending", 0)]
    assert await outbox_ledger.update_charge(fresh, state="sent", attempts=1, next_attempt_at=None, error=None)
    assert [(c.state, c.attempts) for c in await outbox_ledger.charges()] == [("sent", 1)]


async def test_charge_counts_by_state_are_counted_by_the_database(outbox_ledger) -> None:
    assert await outbox_ledger.charge_counts() == {"pending": 0, "sent": 0, "unpaid": 0, "rejected": 0}
    for i in range(5):
        await outbox_ledger.record(make_record(request_id=f"req-c{i}", cost_usd=Decimal("0.1")))
    claimed = await outbox_ledger.claim_charges(datetime.now(UTC), timedelta(seconds=30), limit=3)
    for charge, state in zip(claimed, ("sent", "sent", "rejected"), strict=True):
        await outbox_ledger.update_charge(charge, state=state, attempts=1, next_attempt_at=None, error=None)
    assert await outbox_ledger.charge_counts() == {"pending": 2, "sent": 2, "unpaid": 0, "rejected": 1}


async def test_outbox_of_an_older_ledger_gains_lease_tokens(ledger_url, monkeypatch) -> None:
    from aiproxy.billing import ledger_pg, ledger_sqlite
    from aiproxy.billing.ledger_sql import USAGE_COLUMNS, _insert

    for module in (ledger_pg, ledger_sqlite):  # a ledger created (and a row written) before migration 4
        original = module.migrations
        monkeypatch.setattr(module, "migrations", lambda d, original=original: [m for m in original(d) if m[0] <= 3])
        # that code's row had no provider column (migration 5)
        before_5 = USAGE_COLUMNS.removesuffix(", provider, cache_hit, cache_savings_usd")
        monkeypatch.setattr(module, "INSERT_USAGE", _insert(module.DIALECT, "usage", before_5, "request_id"))
        values = module.usage_values
        monkeypatch.setattr(module, "usage_values", lambda d, r, values=values: values(d, r)[:-3])
    old = open_ledger(ledger_url, outbox=True)
    await old.open()
    await old.record(make_record(request_id="req-old", cost_usd=Decimal("0.1")))
    await old.close()
    monkeypatch.undo()
    upgraded = open_ledger(ledger_url, outbox=True)
    await upgraded.open()
    try:
        [charge] = await upgraded.claim_charges(datetime.now(UTC), timedelta(seconds=30))
        assert charge.request_id == "req-old" and charge.lease_token
        assert await upgraded.update_charge(charge, state="sent", attempts=1, next_attempt_at=None, error=None)
        assert await upgraded.charge_counts() == {"pending": 0, "sent": 1, "unpaid": 0, "rejected": 0}
    finally:
        await upgraded.close()
