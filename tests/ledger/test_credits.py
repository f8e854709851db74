"""Credits credits_service: pre-flight balance checks and the charge outbox, against the emulator.

Outbox tests run on both ledger backends: outages lose no charge, recovery applies each charge
exactly once, a restart re-sends what was pending, and 402/404 end as `unpaid`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.billing.credits import CreditGate, CreditsClient, CreditsUnavailable
from aiproxy.billing.credits_outbox import OutboxWorker
from aiproxy.billing.ledger import open_ledger
from aiproxy.emulator.credits import STATE_KEY, CreditsState
from aiproxy.errors import ProxyError
from tests.ledger.factories import CREDITS_API_KEY as KEY
from tests.ledger.factories import make_record


def state(server: TestServer) -> CreditsState:
    return server.app[STATE_KEY]


@pytest.fixture
async def client(credits_service: TestServer) -> AsyncIterator[CreditsClient]:
    c = CreditsClient(str(credits_service.make_url("")), KEY, timeout=0.3)
    yield c
    await c.close()


def worker_for(ledger, client: CreditsClient) -> OutboxWorker:
    return OutboxWorker(ledger, client, poll_interval=0.01, base_delay=0.01, max_delay=0.05)


async def settle(worker: OutboxWorker, ledger, passes: int = 200) -> None:
    """Run outbox passes until nothing is pending (or give up after `passes`)."""
    for _ in range(passes):
        await worker.run_once()
        if not await ledger.charges("pending"):
            return
        await asyncio.sleep(0.01)


# -- pre-flight -------------------------------------------------------------------------------


async def test_preflight_allows_covered_and_refuses_uncovered(credits_service, client) -> None:
    state(credits_service).balances.update(alice=Decimal("0.01"))
    gate = CreditGate(client, ttl=60)
    await gate.preflight("alice", Decimal("0.01"))  # exactly covered
    with pytest.raises(ProxyError) as err:
        await gate.preflight("alice", Decimal("0.0100001"))
    assert err.value.status == 402
    assert err.value.body()["error"]["code"] == "insufficient_quota"
    assert err.value.body()["error"]["type"] == "insufficient_quota"
    with pytest.raises(ProxyError) as err:
        await gate.preflight("mallory", Decimal("0"))
    assert err.value.status == 402 and "No credit account" in err.value.message


async def test_balance_is_cached_and_lowered_by_charges(credits_service, client) -> None:
    state(credits_service).balances.update(alice=Decimal("1"))
    now = [0.0]
    gate = CreditGate(client, ttl=5, clock=lambda: now[0])
    await asyncio.gather(*(gate.preflight("alice", Decimal("0.5")) for _ in range(20)))
    state(credits_service).balances["alice"] = Decimal("0")  # the credits_service changed; the cache has not expired
    await gate.preflight("alice", Decimal("0.5"))
    gate.note_charge("alice", Decimal("0.75"))
    with pytest.raises(ProxyError):
        await gate.preflight("alice", Decimal("0.5"))  # 1 - 0.75 < 0.5, without asking the credits_service
    now[0] = 6.0  # expired: asks again and sees 0
    with pytest.raises(ProxyError):
        await gate.preflight("alice", Decimal("0.000001"))


@pytest.mark.parametrize("mode", ["down", "500", "slow"])
async def test_unreachable_service_follows_policy(credits_service, client, mode: str) -> None:
    state(credits_service).balances.update(alice=Decimal("0"))
    state(credits_service).mode = mode
    await CreditGate(client, fail_policy="open").preflight("alice", Decimal("99"))  # allowed, logged
    with pytest.raises(ProxyError) as err:
        await CreditGate(client, fail_policy="closed").preflight("alice", Decimal("99"))
    assert err.value.status == 503


async def test_client_sends_exact_amounts_and_idempotency_key(credits_service, client) -> None:
    state(credits_service).balances.update(bob=Decimal("1"))
    assert await client.bill("bob", Decimal("0.00000075"), "gpt-4 - 2 tokens - request r1",
                             idempotency_key="r1") == "charged"
    assert await client.bill("bob", Decimal("0.00000075"), "again", idempotency_key="r1") == "charged"
    assert state(credits_service).balances["bob"] == Decimal("0.99999925")
    assert [c["key"] for c in state(credits_service).charges] == ["r1"]
    assert await client.balance("bob") == Decimal("0.99999925")
    assert await client.balance("nobody") is None
    state(credits_service).mode = "down"
    with pytest.raises(CreditsUnavailable):
        await client.balance("bob")


async def test_emulator_writes_money_as_plain_exact_numbers(credits_service, client) -> None:
    """Both sides of the credits API use the proxy's one money formatter: no `1E-7` on the wire."""
    state(credits_service).balances.update(carol=Decimal("0.0000003"))
    assert await client.bill("carol", Decimal("0.0000002"), "tiny", idempotency_key="r-tiny") == "charged"
    async with aiohttp.ClientSession() as http:
        async with http.post(credits_service.make_url("/api/v1/balance"), json={"user_id": "carol"},
                             headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert await resp.read() == b'{"user_id":"carol","balance":0.0000001}'
        async with http.get(credits_service.make_url("/_control"), headers={"Authorization": f"Bearer {KEY}"}) as resp:
            snapshot = await resp.json()
    assert snapshot["balances"]["carol"] == "0.0000001" and snapshot["charges"][-1]["amount"] == "0.0000002"


# -- outbox (both backends) -------------------------------------------------------------------


async def test_outage_loses_nothing_and_recovery_charges_once(credits_service, client, outbox_ledger) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("10"), bob=Decimal("10"))
    st.mode = "down"
    recs = [make_record(user=("alice", "bob")[i % 2], cost_usd=Decimal("0.00075") * (i + 1)) for i in range(12)]
    await asyncio.gather(*(outbox_ledger.record(r) for r in recs))
    worker = worker_for(outbox_ledger, client)
    for _ in range(3):
        await worker.run_once()
        await asyncio.sleep(0.06)
    pending = await outbox_ledger.charges("pending")
    assert len(pending) == 12 and all(c.attempts >= 1 and c.last_error for c in pending)
    assert st.charges == []
    for mode in ("500", "ok"):  # a 5xx phase, then recovery
        st.mode = mode
        await settle(worker, outbox_ledger, passes=3 if mode == "500" else 200)
    assert len(await outbox_ledger.charges("sent")) == 12
    assert sorted(c["key"] for c in st.charges) == sorted(r.request_id for r in recs)
    assert all(c["key"] in c["description"] for c in st.charges)
    alice_total = sum((r.cost_usd for r in recs if r.user == "alice"), Decimal(0))
    assert st.balances["alice"] == Decimal("10") - alice_total
    calls = st.bill_calls
    await worker.run_once()
    assert st.bill_calls == calls  # acknowledged charges are never sent again


async def test_lost_acknowledgement_is_not_charged_twice(credits_service, client, outbox_ledger) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("1"))
    st.mode, st.delay = "slow", 0.5  # applied, but the 0.3 s client gives up first
    await outbox_ledger.record(make_record(request_id="req-slow", cost_usd=Decimal("0.25")))
    worker = worker_for(outbox_ledger, client)
    await worker.run_once()
    assert (await outbox_ledger.charges("pending"))[0].attempts == 1
    await asyncio.sleep(0.3)
    st.mode = "ok"
    await settle(worker, outbox_ledger)
    assert [c.state for c in await outbox_ledger.charges()] == ["sent"]
    assert st.bill_calls == 2 and len(st.charges) == 1
    assert st.balances["alice"] == Decimal("0.75")


async def test_pending_charges_are_sent_after_restart(credits_service, client, ledger_url) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("1"))
    st.mode = "500"
    first = open_ledger(ledger_url, outbox=True)
    await first.open()
    for i in range(5):
        await first.record(make_record(request_id=f"req-restart-{i}", cost_usd=Decimal("0.01")))
    worker = worker_for(first, client)
    worker.start()
    await asyncio.sleep(0.1)
    await worker.stop()
    await first.close()
    assert st.charges == [] and st.bill_calls >= 5

    st.mode = "ok"
    second = open_ledger(ledger_url, outbox=True)
    await second.open()
    try:
        worker = worker_for(second, client)
        worker.start()
        for _ in range(100):
            if len(await second.charges("sent")) == 5:
                break
            await asyncio.sleep(0.02)
        await worker.stop()
        assert len(await second.charges("sent")) == 5
        assert sorted(c["key"] for c in st.charges) == [f"req-restart-{i}" for i in range(5)]
        assert st.balances["alice"] == Decimal("0.95")
    finally:
        await second.close()


async def test_refused_charges_become_unpaid_and_stop(credits_service, client, outbox_ledger) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("0.001"))
    await outbox_ledger.record(make_record(request_id="req-poor", user="alice", cost_usd=Decimal("0.5")))
    await outbox_ledger.record(make_record(request_id="req-ghost", user="ghost", cost_usd=Decimal("0.5")))
    worker = worker_for(outbox_ledger, client)
    await settle(worker, outbox_ledger)
    unpaid = {c.request_id: c for c in await outbox_ledger.charges("unpaid")}
    assert set(unpaid) == {"req-poor", "req-ghost"}
    assert "402" in unpaid["req-poor"].last_error and "404" in unpaid["req-ghost"].last_error
    calls = st.bill_calls
    for _ in range(3):
        await worker.run_once()
    assert st.bill_calls == calls and st.balances["alice"] == Decimal("0.001")


async def test_injected_402_mode_marks_unpaid(credits_service, client, outbox_ledger) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("100"))
    st.mode = "402"
    await outbox_ledger.record(make_record(request_id="req-402", cost_usd=Decimal("0.1")))
    await settle(worker_for(outbox_ledger, client), outbox_ledger)
    assert [c.state for c in await outbox_ledger.charges()] == ["unpaid"]


async def test_charge_leased_by_a_crashed_worker_is_sent_after_its_lease(credits_service, client,
                                                                         outbox_ledger) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("1"))
    await outbox_ledger.record(make_record(request_id="req-orphan", cost_usd=Decimal("0.2")))
    # A worker claimed it and died before posting or recording anything.
    assert len(await outbox_ledger.claim_charges(datetime.now(UTC), timedelta(seconds=0.2))) == 1
    worker = worker_for(outbox_ledger, client)
    await worker.run_once()
    assert st.bill_calls == 0  # still leased
    await asyncio.sleep(0.25)
    await settle(worker, outbox_ledger)
    assert [c.state for c in await outbox_ledger.charges()] == ["sent"]
    assert st.balances["alice"] == Decimal("0.8")


# -- outbox edges (issue 10, item 13) ----------------------------------------------------------


def rejected_count(status: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("aiproxy_credits_charges_rejected_total", {"status": status}) or 0.0


async def test_permanent_4xx_rejects_the_charge_for_good(credits_service, outbox_ledger, caplog) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("1"))
    status = "422"
    st.mode = "422"
    client = CreditsClient(str(credits_service.make_url("")), KEY, timeout=0.3)
    try:
        await outbox_ledger.record(make_record(request_id="req-refused", cost_usd=Decimal("0.1")))
        before = rejected_count(status)
        worker = worker_for(outbox_ledger, client)
        await settle(worker, outbox_ledger)
        [charge] = await outbox_ledger.charges()
        assert (charge.state, charge.attempts, charge.last_error) == ("rejected", 1, f"HTTP {status} from bill")
        assert rejected_count(status) == before + 1
        assert any("req-refused" in r.getMessage() and "REJECTED" in r.getMessage() for r in caplog.records)
        calls = st.bill_calls
        await asyncio.sleep(0.06)  # past any backoff a retry would have used
        for _ in range(3):
            await worker.run_once()
        assert st.bill_calls == calls and st.charges == [] and st.balances["alice"] == Decimal("1")
    finally:
        await client.close()


async def test_wrong_credits_api_key_is_retried_until_fixed_not_rejected(credits_service, outbox_ledger) -> None:
    """A 401 blames the proxy's own key: the charge stays pending and goes through once fixed."""
    st = state(credits_service)
    st.balances.update(alice=Decimal("1"))
    wrong = CreditsClient(str(credits_service.make_url("")), "not-the-key", timeout=0.3)
    try:
        await outbox_ledger.record(make_record(request_id="req-wrong-key", cost_usd=Decimal("0.1")))
        await worker_for(outbox_ledger, wrong).run_once()
        [charge] = await outbox_ledger.charges()
        assert (charge.state, charge.attempts, charge.last_error) == ("pending", 1, "HTTP 401 from bill")
    finally:
        await wrong.close()
    right = CreditsClient(str(credits_service.make_url("")), KEY, timeout=0.3)
    try:
        await asyncio.sleep(0.06)  # past the first backoff
        await settle(worker_for(outbox_ledger, right), outbox_ledger)
    finally:
        await right.close()
    assert [c.state for c in await outbox_ledger.charges()] == ["sent"] and st.balances["alice"] == Decimal("0.9")


async def test_transient_429_is_retried_not_rejected(credits_service, client, outbox_ledger) -> None:
    st = state(credits_service)
    st.balances.update(alice=Decimal("1"))
    st.mode = "429"
    await outbox_ledger.record(make_record(request_id="req-busy", cost_usd=Decimal("0.1")))
    worker = worker_for(outbox_ledger, client)
    await worker.run_once()
    [charge] = await outbox_ledger.charges()
    assert (charge.state, charge.attempts, charge.last_error) == ("pending", 1, "HTTP 429 from bill")
    st.mode = "ok"
    await settle(worker, outbox_ledger)
    assert [c.state for c in await outbox_ledger.charges()] == ["sent"] and st.balances["alice"] == Decimal("0.9")


class ScriptedBill:
    """A credits client whose bill() answers `outcome` once `release` is set (instantly if None)."""

    def __init__(self, outcome: str, release: asyncio.Event | None = None) -> None:
        self.outcome, self.release, self.calls = outcome, release, 0

    async def bill(self, user: str, amount: Decimal, description: str, *, idempotency_key: str) -> str:
        self.calls += 1
        if self.release is not None:
            await self.release.wait()
        return self.outcome


async def test_worker_whose_lease_expired_cannot_overwrite_the_new_owner(outbox_ledger, caplog) -> None:
    await outbox_ledger.record(make_record(request_id="req-lease", cost_usd=Decimal("0.1")))
    release = asyncio.Event()
    stale_client, fresh_client = ScriptedBill("insufficient", release), ScriptedBill("charged")
    # The first worker's lease is over as soon as it is taken (a post that outlives its lease).
    stale = OutboxWorker(outbox_ledger, stale_client, lease=timedelta(0))  # type: ignore[arg-type]  # ScriptedBill stands in for the client
    fresh = OutboxWorker(outbox_ledger, fresh_client, lease=timedelta(seconds=60))  # type: ignore[arg-type]  # ditto
    stale_pass = asyncio.create_task(stale.run_once())
    while stale_client.calls == 0:
        await asyncio.sleep(0.005)
    assert await fresh.run_once() == 1  # the expired lease lets the second worker take the charge
    assert [c.state for c in await outbox_ledger.charges()] == ["sent"]
    release.set()
    await stale_pass  # the stale worker's late "402" must not turn a sent charge into unpaid
    [charge] = await outbox_ledger.charges()
    assert (charge.state, charge.attempts, charge.last_error) == ("sent", 1, None)
    assert any("lease lost" in r.getMessage() and "req-lease" in r.getMessage() for r in caplog.records)


class CountingBalances:
    """A credits client that knows every user (balance 1) and counts balance fetches."""

    def __init__(self) -> None:
        self.fetches = 0

    async def balance(self, user: str) -> Decimal:
        self.fetches += 1
        return Decimal("1")


async def test_balance_cache_stays_bounded_under_many_users() -> None:
    balances = CountingBalances()
    gate = CreditGate(balances, ttl=60, max_users=50)  # type: ignore[arg-type]  # a stand-in: balance() is all it calls
    for i in range(1000):
        await gate.preflight(f"user-{i}", Decimal("0.1"))
        assert gate.cached_users <= 50
    assert gate.cached_users == 50
    fetches = balances.fetches
    await gate.preflight("user-999", Decimal("0.1"))  # recent users stay cached
    assert balances.fetches == fetches
    await gate.preflight("user-0", Decimal("0.1"))  # the least recently used were dropped
    assert balances.fetches == fetches + 1 and gate.cached_users == 50


async def test_metrics_scrape_counts_pending_charges_without_loading_them(proxy_factory, credits_service,
                                                                          ledger_url) -> None:
    import aiohttp

    from aiproxy.appkeys import LEDGER_KEY

    state(credits_service).mode = "500"  # the worker keeps every charge pending
    proxy = await proxy_factory(usage_db_url=ledger_url, credits_service_url=str(credits_service.make_url("")),
                                credits_service_api_key=KEY)
    ledger = proxy.app[LEDGER_KEY]
    for i in range(7):
        await ledger.record(make_record(request_id=f"req-scrape-{i}", cost_usd=Decimal("0.01")))

    async def no_bulk_load(state: str | None = None) -> list:
        raise AssertionError("a scrape must not load the outbox rows")

    ledger.charges = no_bulk_load
    async with aiohttp.ClientSession() as http, http.get(proxy.make_url("/metrics")) as resp:
        text = await resp.text()
    assert "aiproxy_outbox_pending 7.0" in text.splitlines()
