"""WORKERS=N: a small supervisor running N server processes on one port, to use every core.

Each worker is an ordinary `python -m aiproxy` with REUSE_PORT set: every one binds the same
port with SO_REUSEPORT and the kernel spreads new connections across them, so no socket is passed
around and no process proxies another's traffic. Workers share nothing in memory; what must be
global (the usage ledger, rate limits) already lives in the ledger database and Redis.

The supervisor forwards SIGTERM/SIGINT (each worker drains on its own, see lifecycle.py), restarts
a worker that dies while not stopping, points the workers' Prometheus files at one directory so
any worker's /metrics covers all of them, and speaks systemd's notify protocol for the group:
workers report READY to the supervisor's own datagram socket, and the supervisor tells systemd
READY=1 once every worker is serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from aiproxy.config import Settings
from aiproxy.server import sdnotify

log = logging.getLogger("aiproxy.server.workers")

RESTART_DELAY = 1.0  # seconds before a crashed worker is started again (doubles per quick crash, max 30)
STABLE_AFTER = 30.0  # a worker that lived this long resets the restart delay


def pick_port(host: str, port: int) -> int:
    """PORT=0 means "any free port", which must be chosen once for all workers."""
    if port:
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def metrics_dir() -> tuple[Path, bool]:
    """PROMETHEUS_MULTIPROC_DIR (emptied: stale files would add old counts), or a fresh temp dir."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    return Path(tempfile.mkdtemp(prefix="aiproxy-metrics-")), True


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.workers
        self.port = pick_port(settings.host, settings.port)
        # OPS_PORT is bound by every worker with SO_REUSEPORT too (see listen.py); 0 is chosen once here.
        self.ops_port = None if settings.ops_port is None else pick_port(settings.ops_listen_host, settings.ops_port)
        self.procs: dict[int, asyncio.subprocess.Process] = {}  # worker index -> process
        self.stopping = False
        self.ready: set[int] = set()  # pids that sent READY=1
        self.all_ready = asyncio.Event()
        self._notify_name = f"aiproxy-workers-{os.getpid()}-{os.urandom(4).hex()}"
        self._metrics_dir, self._own_metrics_dir = metrics_dir()

    def _worker_env(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
        env.update({
            "WORKERS": "1", "REUSE_PORT": "true", "HOST": self.settings.host, "PORT": str(self.port),
            "AIPROXY_WORKER_ID": str(index), "NOTIFY_SOCKET": "@" + self._notify_name,
            "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir),
        })
        if self.ops_port is not None:
            env["OPS_PORT"] = str(self.ops_port)
        return env

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "aiproxy", "serve",
                                                    env=self._worker_env(index))
        self.procs[index] = proc
        log.info("worker %d started (pid %d)", index, proc.pid)
        return proc

    async def _keep(self, index: int) -> int:
        """Run worker `index` until the supervisor stops; restart it whenever it dies before that."""
        delay = RESTART_DELAY
        loop = asyncio.get_running_loop()
        while True:
            proc = await self._spawn(index)
            started = loop.time()
            code = await proc.wait()
            self.ready.discard(proc.pid)
            self._mark_dead(proc.pid)
            if self.stopping:
                return code
            if loop.time() - started > STABLE_AFTER:
                delay = RESTART_DELAY
            log.error("worker %d (pid %d) exited with code %d; restarting in %.0fs", index, proc.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)
            if self.stopping:
                return code

    def _mark_dead(self, pid: int) -> None:
        """Drop a dead worker's live gauges (in-flight, queue depth) from the merged metrics."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self._metrics_dir))

    def _on_notify(self, sock: socket.socket) -> None:
        try:
            data, _ = sock.recvfrom(4096)
        except OSError:
            return
        fields = dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
        if fields.get("READY") == "1" and fields.get("MAINPID", "").isdigit():
            self.ready.add(int(fields["MAINPID"]))
            if len(self.ready) >= self.count and not self.all_ready.is_set():
                self.all_ready.set()
                sdnotify.notify(f"READY=1\nSTATUS={self.count} workers serving on port {self.port}\n"
                                f"MAINPID={os.getpid()}")

    def _on_signal(self, signum: int) -> None:
        if self.stopping:
            log.warning("second %s: workers exit now", signal.Signals(signum).name)
            self._forward(signum)
            os._exit(128 + signum)
        self.stopping = True
        sdnotify.notify("STOPPING=1\nSTATUS=draining")
        log.info("%s: draining %d workers", signal.Signals(signum).name, len(self.procs))
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.bind("\0" + self._notify_name)
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_notify, sock)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        interval = sdnotify.watchdog_interval()
        watchdog = asyncio.create_task(sdnotify.watchdog_loop(interval)) if interval else None
        log.info("supervisor pid %d: %d workers on http://%s:%d", os.getpid(), self.count, self.settings.host,
                 self.port)
        try:
            codes = await asyncio.gather(*(self._keep(i) for i in range(self.count)))
        finally:
            if watchdog is not None:
                watchdog.cancel()
            loop.remove_reader(sock.fileno())
            sock.close()
            if self._own_metrics_dir:
                shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log.info("all workers stopped (exit codes %s)", list(codes))
        return 0 if all(code == 0 for code in codes) else 1


def supervise(settings: Settings) -> int:
    return asyncio.run(Supervisor(settings).run())
