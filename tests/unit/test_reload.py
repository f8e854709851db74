"""`make run-dev`: the reloader notices changes and does not loop on a configuration error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiproxy.server.reload import snapshot

REPO = Path(__file__).resolve().parents[2]


def test_snapshot_sees_new_changed_and_removed_files(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1")
    (tmp_path / "notes.txt").write_text("ignored")
    first = snapshot([tmp_path, tmp_path / "missing.env"])
    assert set(first) == {tmp_path / "a.py"}
    os.utime(tmp_path / "a.py", (1, 1))
    assert snapshot([tmp_path]) != first
    (tmp_path / "b.toml").write_text("")
    assert tmp_path / "b.toml" in snapshot([tmp_path])


def test_reload_stops_on_a_configuration_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "aiproxy", "serve", "--reload"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "GEMINI_API_KEY environment variable is required" in done.stderr
