"""`--reload` for `make run-dev`: restart the server whenever a source or data file changes.

A parent process polls file modification times (no extra dependency, works everywhere) and
runs the real server as a child, which it stops by PID and starts again after a change.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
POLL_SECONDS = 0.5


def snapshot(roots: list[Path]) -> dict[Path, float]:
    """Modification times of every .py/.toml file under `roots` (and of the files given)."""
    out: dict[Path, float] = {}
    for root in roots:
        paths = [root] if root.is_file() else [*root.rglob("*.py"), *root.rglob("*.toml")]
        for path in paths:
            try:
                out[path] = path.stat().st_mtime
            except FileNotFoundError:
                continue
    return out


def run_with_reload(argv: list[str]) -> int:
    """Run `python -m aiproxy <argv>` and restart it on every change; Ctrl-C stops both."""
    roots = [PACKAGE_DIR, Path(".env")]
    while True:
        before = snapshot(roots)
        child = subprocess.Popen([sys.executable, "-m", "aiproxy", *argv])
        try:
            while snapshot(roots) == before:
                if child.poll() is not None and child.returncode == 2:
                    return 2  # a configuration error: restarting would only repeat it
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            child.terminate()
            child.wait()
            return 0
        print("aiproxy: change detected, restarting", file=sys.stderr)
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
