"""The processes under test: emulator, bare pass-through, proxies, optional peer, static ceiling server.

Each is a subprocess this benchmark starts and ends itself, by PID (a shell-started peer by
its own process group), on a free loopback port. Each proxy gets its own temporary data
directory (ledger, spool), deleted when it stops, so runs neither share nor grow ./data.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.procinfo import process_tree

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "bench-gemini-key"

# Run a module's main() under uvloop without changing that module: the emulator uses plain
# asyncio.run, and a floor measured on a slower loop than the proxy's would flatter the proxy.
_UVLOOP_MAIN = ("import asyncio, sys\n"
                "try:\n import uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n"
                "except ImportError: pass\n"
                "import runpy; sys.argv[0] = {mod!r}; runpy.run_module({mod!r}, run_name='__main__')\n")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None
    group: bool = False  # started in its own session (shell command): signal the group
    pids: list[int] = field(default_factory=list)
    data_dir: Path | None = None  # its own ledger and spool, deleted by stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> list[int]:
        """The process and its workers (refreshed: WORKERS=N forks after start)."""
        self.pids = process_tree(self.popen.pid)
        return self.pids

    def stop(self) -> None:
        try:
            self._end()
        finally:
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def _end(self) -> None:
        if self.popen.poll() is not None:
            return
        try:
            if self.group:
                os.killpg(self.popen.pid, signal.SIGTERM)
            else:
                self.popen.terminate()
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            if self.group:
                os.killpg(self.popen.pid, signal.SIGKILL)
            else:
                self.popen.kill()
            self.popen.wait(timeout=5)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_file(name: str) -> Path:
    fd, path = tempfile.mkstemp(prefix=f"aiproxy-bench-{name}-", suffix=".log")
    os.close(fd)
    return Path(path)


def _start_announcing(name: str, argv: list[str]) -> Proc:
    """A server that binds port 0 and prints one `... listening on http://host:port` line."""
    popen = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert popen.stdout is not None
    line = popen.stdout.readline().decode()
    if "listening on" not in line:
        popen.kill()
        popen.wait()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return Proc(name, popen, int(line.rsplit(":", 1)[1]))


def start_emulator(words: int, chunks: int) -> Proc:
    args = ["--port", "0", "--words", str(words), "--chunks", str(chunks), "--record-requests", "0", "--quiet"]
    return _start_announcing("emulator", [PY, "-c", _UVLOOP_MAIN.format(mod="aiproxy.emulator"), *args])


def start_static() -> Proc:
    return _start_announcing("static", [PY, "-m", "bench.static_server"])


def start_bare(upstream: str, api_key: str = UPSTREAM_KEY) -> Proc:
    """The bare aiohttp pass-through (bench/bare.py): the reference every figure is also compared to."""
    return _start_announcing("bare", [PY, "-m", "bench.bare", "--upstream", upstream, "--api-key", api_key])


def new_data_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"aiproxy-bench-{name}-"))


def shipped_env(data_dir: Path) -> dict[str, str]:
    """The shipped defaults (on-disk SQLite ledger, billing line at INFO), inside `data_dir`."""
    return {"USAGE_DB_URL": f"sqlite:///{data_dir}/usage.db", "SPOOL_DIR": str(data_dir / "spool"),
            "LOG_LEVEL": "INFO"}


def create_client_key(db_url: str, user: str, limits: dict[str, str]) -> str:
    """A client key made by `python -m aiproxy keys create` in `db_url`; the key itself is returned."""
    args = [f"--{flag}={value}" for flag, value in limits.items()]
    out = subprocess.run([PY, "-m", "aiproxy", "keys", "--db", db_url, "create", "--user", user, *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"could not create a client key: {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def start_proxy(name: str, upstream: str, extra_env: dict[str, str], data_dir: Path) -> Proc:
    """`python -m aiproxy` with the shipped defaults in `data_dir`, then `extra_env` over them."""
    port = free_port()
    env = {**os.environ, "GEMINI_BASE_URL": upstream, "GEMINI_API_KEY": UPSTREAM_KEY, "HOST": "127.0.0.1",
           "PORT": str(port), **shipped_env(data_dir), **extra_env}
    log = _log_file(name)
    with log.open("wb") as out:
        popen = subprocess.Popen([PY, "-m", "aiproxy", "--port", str(port)], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    proc = Proc(name, popen, port, log, data_dir=data_dir)
    _wait_ready(proc, "/health")
    return proc


def start_peer(command: str, upstream: str, extra_env: dict[str, str]) -> Proc:
    """BENCH_PEER_CMD, with {port}, {upstream} and {key} filled in (also given as env)."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "GEMINI_BASE_URL": upstream, "GEMINI_API_KEY": UPSTREAM_KEY,
           **extra_env}
    log = _log_file("peer")
    cmd = command.format(port=port, upstream=shlex.quote(upstream), key=UPSTREAM_KEY)
    with log.open("wb") as out:
        popen = subprocess.Popen(cmd, shell=True, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    proc = Proc("peer", popen, port, log, group=True)
    _wait_ready(proc, None, timeout=float(os.environ.get("BENCH_PEER_TIMEOUT", "90")))
    return proc


def _wait_ready(proc: Proc, health_path: str | None, timeout: float = 30.0) -> None:
    """Until the port answers (and `health_path` gives 200); the process log on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            break
        try:
            if health_path is None:
                with socket.create_connection(("127.0.0.1", proc.port), timeout=1):
                    return
            with urllib.request.urlopen(proc.url + health_path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    tail = proc.log_tail()
    proc.stop()
    raise RuntimeError(f"{proc.name} did not become ready on port {proc.port}:\n{tail}")


def raise_fd_limit() -> int:
    """1,000 open streams need ~3,000 descriptors across the processes; children inherit this."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want
