"""Bounded soak: a few minutes of mixed load against a real proxy process, RSS sampled throughout.

    make soak                      # 3 minutes, 16 concurrent clients
    python -m bench.soak --duration 600 --concurrency 32

Starts the Gemini emulator and one `python -m aiproxy` as child processes (ended by their PIDs at
the end), then mixes streaming and buffered chats, retried 429/503 bursts, mid-stream resets and
stalls, and clients that walk away mid-stream. Memory should be flat after warm-up: the figures
printed at the end compare the RSS after the first minute with the last sample. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from aiproxy.emulator import directive_text
from aiproxy.server.serve import free_port

ROOT = Path(__file__).resolve().parents[1]
EMULATOR_KEY = "soak-key"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_up(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            async with http.get(url) as resp:
                if resp.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def scenario(rng: random.Random, n: int) -> tuple[str, bool, dict[str, Any]]:
    """(name, stream, directive) for request number n: mostly healthy, some faults."""
    roll = rng.random()
    words = rng.randint(5, 200)
    if roll < 0.55:
        return "stream", True, {"words": words, "chunks": rng.randint(1, 20)}
    if roll < 0.75:
        return "buffered", False, {"words": words}
    if roll < 0.82:
        return "429-burst", rng.random() < 0.5, {"error": 429, "error_times": 1, "key": f"soak-{n}"}
    if roll < 0.87:
        return "503-burst", True, {"error": 503, "error_times": 1, "key": f"soak-{n}"}
    if roll < 0.91:
        return "reset", True, {"words": 60, "chunks": 6, "fail_after": 2, "fail_mode": "reset"}
    if roll < 0.93:
        return "stall", True, {"words": 60, "chunks": 6, "fail_after": 2, "fail_mode": "stall"}
    return "vanish", True, {"words": 300, "chunks": 60, "chunk_delay_ms": 20}


async def client(worker: int, base: str, stop_at: float, stats: Counter[str]) -> None:
    rng = random.Random(worker)
    n = 0
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < stop_at:
            n += 1
            name, stream, directive = scenario(rng, worker * 1_000_000 + n)
            body = {"model": rng.choice(["gpt-4", "gpt-4o-mini"]), "stream": stream,
                    "messages": [{"role": "user", "content": "soak " + directive_text(**directive)}]}
            try:
                async with http.post(f"{base}/v1/chat/completions", json=body) as resp:
                    if name == "vanish":
                        await resp.content.readuntil(b"\n\n")
                        resp.close()  # walk away mid-stream
                    else:
                        await resp.read()
                    stats[f"{name} {resp.status}"] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                stats[f"{name} {type(exc).__name__}"] += 1


async def sample(pid: int, stop_at: float, every: float, out: list[tuple[float, float]]) -> None:
    t0 = time.monotonic()
    while time.monotonic() < stop_at:
        out.append((time.monotonic() - t0, rss_mib(pid)))
        await asyncio.sleep(every)
    out.append((time.monotonic() - t0, rss_mib(pid)))


async def soak(duration: float, concurrency: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="aiproxy-soak-"))
    emu_port, proxy_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    emu = start(["-m", "aiproxy.emulator", "--port", str(emu_port), "--api-key", EMULATOR_KEY, "--quiet",
                 "--record-requests", "0"], env,
                work / "emulator.log")
    proxy_env = {**env, "GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": f"http://127.0.0.1:{emu_port}",
                 "HOST": "127.0.0.1", "PORT": str(proxy_port), "USAGE_DB_URL": f"sqlite:///{work}/usage.db",
                 "UPSTREAM_IDLE_TIMEOUT": "1", "UPSTREAM_RETRY_BASE_DELAY": "0.05", "LOG_LEVEL": "WARNING"}
    proxy = start(["-m", "aiproxy"], proxy_env, work / "proxy.log")
    base = f"http://127.0.0.1:{proxy_port}"
    stats: Counter[str] = Counter()
    samples: list[tuple[float, float]] = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_up(http, f"http://127.0.0.1:{emu_port}/_emulator/stats", emu)
            await wait_up(http, f"{base}/health/ready", proxy)
            print(f"soak: {duration:.0f}s, {concurrency} clients, proxy pid {proxy.pid}, logs in {work}")
            started = time.monotonic()
            stop_at = started + duration
            await asyncio.gather(sample(proxy.pid, stop_at, 5.0, samples),
                                 *(client(i, base, stop_at, stats) for i in range(concurrency)))
            elapsed = time.monotonic() - started
            await asyncio.sleep(1.5)  # let cut-off streams settle before the leak checks
            async with http.get(f"http://127.0.0.1:{emu_port}/_emulator/stats") as resp:
                emu_stats = await resp.json()
            async with http.get(f"{base}/metrics") as resp:
                inflight = next(line for line in (await resp.text()).splitlines()
                                if line.startswith("aiproxy_inflight_requests "))
    finally:
        for proc in (proxy, emu):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (proxy, emu):
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
    total = sum(stats.values())
    print(f"requests: {total} in {elapsed:.0f}s = {total / elapsed:.1f}/s")
    for key, count in sorted(stats.items()):
        print(f"  {key:28s} {count}")
    warm = next((rss for t, rss in samples if t >= min(60.0, duration / 3)), samples[0][1])
    peak = max(rss for _, rss in samples)
    print(f"proxy RSS MiB: start {samples[0][1]:.1f}, after warm-up {warm:.1f}, end {samples[-1][1]:.1f}, "
          f"peak {peak:.1f}; growth after warm-up {samples[-1][1] - warm:+.1f} MiB")
    print(f"emulator open streams at the end: {emu_stats['open_streams']}; {inflight}")
    print(f"proxy exit code after SIGTERM: {proxy.returncode}")
    return 0 if emu_stats["open_streams"] == 0 and proxy.returncode == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    args = parser.parse_args()
    return asyncio.run(soak(args.duration, args.concurrency))


if __name__ == "__main__":
    sys.exit(main())
