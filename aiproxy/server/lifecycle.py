"""Process lifecycle: readiness, draining on SIGTERM/SIGINT, and systemd's notify protocol.

Order on the first SIGTERM or SIGINT: readiness answers 503 at once (load balancers stop sending),
systemd hears STOPPING=1, the listening socket closes, in-flight requests (streams included) get
up to DRAIN_TIMEOUT to finish, then the app's cleanup runs (upstream session closed, ledger and
outbox flushed) and the process exits 0. A second signal during the drain exits at once: the
operator asked twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.appkeys import LIFECYCLE_KEY, PROVIDERS_KEY, READY_CHECKS_KEY, READY_DETAILS_KEY, ReadyCheck
from aiproxy.server import sdnotify

log = logging.getLogger("aiproxy.server.lifecycle")

# A check (appkeys.ReadyCheck) answers True (ok), False (unreachable), or a state of its own: "ok",
# DEGRADED (reported, but this process still serves), anything else (not ready).
READY_CHECK_TIMEOUT = 2.0
DEGRADED = "degraded"


class Lifecycle:
    """Mutable process state read by the readiness probe."""

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False



async def _run_check(check: ReadyCheck) -> str:
    try:
        result = await asyncio.wait_for(check(), READY_CHECK_TIMEOUT)
    except Exception:  # noqa: BLE001 - an unreachable dependency is "not ready", not a crash
        return "unreachable"
    if isinstance(result, str):
        return result
    return "ok" if result else "unreachable"


async def readiness(request: web.Request) -> web.Response:
    """GET /health/ready: 200 when this process can serve ("ready", or "degraded" when a check
    says it serves with a dependency down), 503 (try elsewhere) otherwise."""
    app = request.app
    checks: dict[str, str] = {"upstream": "ok" if app[PROVIDERS_KEY].is_open else "closed"}
    extra = app[READY_CHECKS_KEY]
    if extra:
        results = await asyncio.gather(*(_run_check(c) for c in extra.values()))
        checks.update(zip(extra, results, strict=True))
    if app[LIFECYCLE_KEY].draining:
        status = "draining"
    elif all(v == "ok" for v in checks.values()):
        status = "ready"
    else:
        status = DEGRADED if all(v in ("ok", DEGRADED) for v in checks.values()) else "not_ready"
    body: dict[str, object] = {"status": status, "checks": checks, "pid": os.getpid()}
    body.update((name, detail()) for name, detail in app[READY_DETAILS_KEY].items())
    return web.Response(status=200 if status in ("ready", DEGRADED) else 503, body=jsonutil.dumps(body),
                        content_type="application/json")


async def serve_until_signalled(app: web.Application, runner: web.AppRunner, drain_timeout: float,
                                ready_status: str) -> None:
    """Announce readiness, wait for SIGTERM/SIGINT, then drain and clean up (see module doc).

    The runner must have been created with `shutdown_timeout=drain_timeout`: aiohttp's own
    graceful shutdown closes the listener and waits that long for running handlers.
    """
    loop = asyncio.get_running_loop()
    lifecycle = app[LIFECYCLE_KEY]
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if lifecycle.draining:
            log.warning("second %s during the drain: exiting now", signal.Signals(signum).name)
            os._exit(128 + signum)
        lifecycle.draining = True
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    sdnotify.notify(f"READY=1\nSTATUS={ready_status}\nMAINPID={os.getpid()}")
    interval = sdnotify.watchdog_interval()
    watchdog = asyncio.create_task(sdnotify.watchdog_loop(interval), name="sd-watchdog") if interval else None
    try:
        await stop.wait()
        sdnotify.notify("STOPPING=1\nSTATUS=draining")
        log.info("shutting down: not accepting new connections; draining in-flight requests for up to %.0fs",
                 drain_timeout)
        await runner.cleanup()
        log.info("shutdown complete")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
