"""sd_notify datagrams reach a socket bound like systemd's, by path and in the abstract namespace."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from aiproxy.server import sdnotify


def test_path_socket_receives_the_state(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        assert sdnotify.notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": str(path)})
        assert server.recv(4096) == b"READY=1\nSTATUS=ok"


def test_abstract_socket_with_at_sign() -> None:
    name = f"aiproxy-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        assert sdnotify.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert server.recv(4096) == b"STOPPING=1"


def test_outside_systemd_is_a_no_op(tmp_path: Path) -> None:
    assert sdnotify.notify("READY=1", {}) is False
    assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False  # never raises


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "x"}, None),
])
def test_watchdog_interval_is_half_of_watchdog_sec(env: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval(env, pid=4242) == expected
