"""Start-up errors name their real cause (issue 11 item 6): the launcher used to report any OSError
as "cannot listen on HOST:PORT", even a metrics directory that could not be created."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from aiproxy.server.serve import free_port
from tests.conftest import EMULATOR_KEY

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "WATCHDOG_", "PROMETHEUS"))}
    full.update({"PYTHONPATH": str(REPO), "GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": "http://127.0.0.1:9",
                 "HOST": "127.0.0.1", "PORT": str(free_port()), "USAGE_DB_URL": "memory://", **env})
    return subprocess.run([sys.executable, "-m", "aiproxy"], cwd=tmp_path, env=full, capture_output=True, text=True,
                          timeout=60)


def test_a_metrics_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    done = run(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(blocker / "metrics"))
    assert done.returncode == 1
    assert "error: cannot start:" in done.stderr and str(blocker / "metrics") in done.stderr
    assert "cannot listen" not in done.stderr and "Traceback" not in done.stderr


def test_ops_port_in_use_names_the_ops_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ops = taken.getsockname()[1]
        done = run(tmp_path, OPS_PORT=str(ops))
    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{ops}: " in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
