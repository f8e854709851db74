"""End to end: the real server (`python -m aiproxy`, upstream the Gemini emulator) under
concurrent load, killed mid-flight.

Every request whose client saw it complete (`data: [DONE]` or the whole JSON body) must have its
ledger row, on SQLite and on Postgres: the row is committed before the last byte. SIGKILL gives
the process no chance to flush; SIGTERM must shut down gracefully and exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.billing.ledger import open_ledger
from aiproxy.emulator import EmulatorConfig, create_emulator_app
from aiproxy.server.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 24
LOAD_SECONDS = 1.0


async def wait_healthy(http: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            async with http.get(url + "/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server did not become healthy")


async def one_request(http: aiohttp.ClientSession, url: str, rid: str, stream: bool) -> bool:
    """True when the client saw the response complete."""
    body = {"model": "gemini-2.5-flash", "stream": stream, "user": "load",
            "messages": [{"role": "user", "content": "x"}]}
    async with http.post(url + "/v1/chat/completions", json=body, headers={"X-Request-ID": rid}) as resp:
        if resp.status != 200:
            return False
        raw = await resp.read()
    return raw.endswith(b"data: [DONE]\n\n") if stream else b'"usage"' in raw and raw.rstrip().endswith(b"}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_every_completed_request_survives_the_kill(ledger_url: str, tmp_path: Path, sig: signal.Signals) -> None:
    emulator = EmulatorConfig(api_key="k", chunks=4, chunk_delay_ms=5, record_requests=0)
    stub = TestServer(create_emulator_app(emulator), host="127.0.0.1")
    await stub.start_server()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
        "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": str(stub.make_url("")).rstrip("/"),
        "USAGE_DB_URL": ledger_url, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    log = (tmp_path / "server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "aiproxy", cwd=tmp_path, env=env, stdout=log,
                                                stderr=log)
    url = f"http://127.0.0.1:{port}"
    completed: set[str] = set()
    stop = asyncio.Event()

    async def client(http: aiohttp.ClientSession, n: int) -> None:
        i = 0
        while not stop.is_set():
            rid = f"e2e-{n}-{i}"
            i += 1
            try:
                if await one_request(http, url, rid, stream=(i % 3 != 0)):
                    completed.add(rid)
            except (TimeoutError, aiohttp.ClientError):
                if proc.returncode is not None:
                    return
                await asyncio.sleep(0.01)

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await wait_healthy(http, url, proc)
            clients = [asyncio.create_task(client(http, n)) for n in range(CLIENTS)]
            await asyncio.sleep(LOAD_SECONDS)
            proc.send_signal(sig)  # only the PID this test started
            rc = await asyncio.wait_for(proc.wait(), 30)
            stop.set()
            await asyncio.gather(*clients)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await stub.close()

    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 0), (tmp_path / "server.log").read_text()[-2000:]
    ledger = open_ledger(ledger_url)
    await ledger.open()
    try:
        recorded = {r["client_request_id"] for r in await ledger.rows()}
    finally:
        await ledger.close()
    assert len(completed) >= 50, f"load too light to mean anything: {len(completed)} completed"
    missing = completed - recorded
    assert not missing, f"{len(missing)} of {len(completed)} completed requests have no ledger row"
