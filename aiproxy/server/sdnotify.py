"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per state change.

With `Type=notify` systemd waits for `READY=1` before it counts the service as started, shows
`STATUS=` in `systemctl status`, learns of a stop in progress from `STOPPING=1`, and restarts a
process whose `WATCHDOG=1` pings stop (`WatchdogSec=`). The socket path comes from
`$NOTIFY_SOCKET`; a leading '@' names a socket in the abstract namespace. Outside systemd the
variable is unset and every call is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping


def socket_address(value: str) -> str:
    """`$NOTIFY_SOCKET` as an AF_UNIX address: '@name' is the abstract socket '\\0name'."""
    return "\0" + value[1:] if value.startswith("@") else value


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=serving") to systemd; False when not under systemd.

    Errors are swallowed: a missing notify socket must never take the service down.
    """
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not value:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(socket_address(value))
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec, as sd_watchdog_enabled advises),
    or None when systemd asked for no watchdog or asked another process of the unit."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    wanted_pid = env.get("WATCHDOG_PID")
    if wanted_pid and int(wanted_pid) != (os.getpid() if pid is None else pid):
        return None
    try:
        return max(0.001, int(usec) / 2_000_000)
    except ValueError:
        return None


async def watchdog_loop(interval: float) -> None:
    """WATCHDOG=1 from the event loop itself: a wedged loop stops the pings and systemd restarts us."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
