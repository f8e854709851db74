"""Real `python -m aiproxy` processes for the lifecycle, workers and several-instances tests.

Each process is started here and ended by its own PID (never by name); output goes to a file so a
chatty process can never block on a full pipe.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from aiproxy.server.serve import free_port
from tests.conftest import EMULATOR_KEY

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ProxyProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def billing_lines(self) -> list[str]:
        return [line for line in self.log.splitlines() if "💰 BILLING" in line]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    async def wait(self, within: float = 30) -> int:
        """Exit code, polled without blocking the event loop (the test may serve the emulator)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.proc.poll() is None:
            if loop.time() > deadline:
                raise AssertionError(f"process {self.proc.pid} still running after {within}s:\n{self.log[-3000:]}")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def kill(self) -> None:
        """Teardown: end this process (and, for a supervisor, its group) if still running."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def spawn(tmp_path: Path, upstream: str, *, name: str = "proxy", port: int | None = None,
          **env: str) -> ProxyProcess:
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "WATCHDOG_"))}
    full_env.update({"GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": upstream, "HOST": "127.0.0.1",
                     "PORT": str(port), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
    full_env.update(env)
    log_path = tmp_path / f"{name}-{port}.log"
    with open(log_path, "wb") as out:
        # Own process group: teardown can end a supervisor together with its workers.
        proc = subprocess.Popen([sys.executable, "-m", "aiproxy"], cwd=tmp_path, env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return ProxyProcess(proc, port, log_path, full_env)


async def wait_healthy(p: ProxyProcess, within: float = 30, base: str | None = None) -> None:
    """Until /health/ready answers 200 on `base` (default the process's client port)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession() as http:
        while True:
            if p.proc.poll() is not None:
                raise AssertionError(f"proxy exited with {p.proc.returncode}:\n{p.log[-3000:]}")
            try:
                async with http.get(f"{base or p.url}/health/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"proxy not ready within {within}s:\n{p.log[-3000:]}")
            await asyncio.sleep(0.05)
