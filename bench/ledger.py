"""Ledger micro-benchmark: what recording costs a request, on each backend.

The ledger is never on the per-chunk path (a request records once, when it finishes), so the
figure that matters is the per-request cost of `record()`: its latency (the request waits for
its commit before the last byte) and the throughput group commit sustains under concurrency.

    python -m bench.ledger [--url sqlite:///./data/bench.db] [--requests 5000] [--concurrency 200]

It also prints the process's CPU per row (every thread, kernel time included): with
`--concurrency 1` every commit holds one row, which is what a proxy at low load pays.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from aiproxy.billing.ledger import open_ledger
from aiproxy.billing.record import UsageRecord


def record(i: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"bench-{uuid.uuid4().hex}", user=f"user{i % 50}", key_id=None, requested_model="gpt-4",
        upstream_model="gemini-2.5-pro", endpoint="chat", streamed=True, prompt_tokens=1000, completion_tokens=500,
        reasoning_tokens=0, cached_tokens=0, total_tokens=1500, cost_usd=Decimal("0.00625"), status="ok",
        estimated=False, price_fallback=False, started_at=datetime.now(UTC), duration_ms=900.0, ttft_ms=150.0,
    )  # fmt: skip


async def run(url: str, requests: int, concurrency: int) -> dict[str, float]:
    ledger = open_ledger(url)
    await ledger.open()
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            t0 = time.perf_counter()
            await ledger.record(record(i))
            latencies.append(time.perf_counter() - t0)

    t0, cpu0 = time.perf_counter(), _cpu()
    await asyncio.gather(*(one(i) for i in range(requests)))
    elapsed, cpu1 = time.perf_counter() - t0, _cpu()
    cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
    commits = ledger.transactions
    await ledger.close()
    latencies.sort()
    return {
        "rows_per_s": requests / elapsed,
        "commits": commits,
        "rows_per_commit": requests / max(commits, 1),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu_us_per_row": cpu[0] / requests * 1e6,
        "sys_us_per_row": cpu[1] / requests * 1e6,
    }


def _cpu() -> tuple[float, float]:
    """(user+system, system) CPU seconds of this process, every thread included: the writer
    thread's SQLite work and the kernel's share of each fsync count too."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ledger")
    p.add_argument("--url", action="append", help="ledger URL (repeatable); default: a temp SQLite file")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=200)
    ns = p.parse_args()
    urls = ns.url or [f"sqlite:///{tempfile.mkdtemp(prefix='ledger-bench-')}/usage.db"]
    for url in urls:
        r = asyncio.run(run(url, ns.requests, ns.concurrency))
        print(f"{url.split('://')[0]:>10}: {r['rows_per_s']:8.0f} rows/s  {r['commits']:5d} commits "
              f"({r['rows_per_commit']:.0f} rows each)  "
              f"record() p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
              f"CPU {r['cpu_us_per_row']:.0f} us/row ({r['sys_us_per_row']:.0f} system)")


if __name__ == "__main__":
    main()
