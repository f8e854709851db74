"""Serving: the event loop (uvloop when installed), the listening socket, demo mode."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys

from aiohttp import web
from pydantic import SecretStr

from aiproxy.access.hardening import server_limits
from aiproxy.appkeys import SETTINGS_KEY
from aiproxy.config import ConfigError, Settings
from aiproxy.connlimit import CappedTCPSite
from aiproxy.lifecycle import serve_until_signalled

log = logging.getLogger("aiproxy")
DEMO_KEY = "demo-key"  # shared only by the in-process emulator and the proxy


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                 drain_timeout: float = 30.0) -> web.AppRunner:
    # handler_cancellation: a client that leaves cancels its handler at once, so the upstream
    # request is dropped and Gemini stops generating tokens nobody will read.
    # shutdown_timeout: how long aiohttp's graceful shutdown lets running handlers finish.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=logging.getLogger("aiohttp.access"),
                           shutdown_timeout=drain_timeout, **server_limits(app[SETTINGS_KEY]))
    try:
        await runner.setup()
    except ConfigError:  # a startup check refused (e.g. open proxy on a public address)
        await runner.cleanup()  # closes what the startups before it opened
        raise
    site = CappedTCPSite(runner, host, port, backlog=1024, reuse_port=reuse_port,
                         max_connections=app[SETTINGS_KEY].max_connections)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()  # closes the upstream session opened by the app's startup
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return server.sockets[0].getsockname()[1]
    raise RuntimeError("not listening")


async def _run(settings: Settings) -> None:
    # Imported here: a WORKERS>1 supervisor never builds an app (nor creates metrics before
    # PROMETHEUS_MULTIPROC_DIR exists); only its workers do.
    from aiproxy.app import create_app

    app = create_app(settings)
    runner = await _serve(app, settings.host, settings.port, reuse_port=settings.reuse_port,
                          drain_timeout=settings.drain_timeout)
    url = f"http://{settings.host}:{bound_port(runner)}"
    log.info("aiproxy listening on %s (upstream %s, pid %d)", url, settings.gemini_base_url, os.getpid())
    await serve_until_signalled(app, runner, settings.drain_timeout, f"serving on {url}")


async def _run_demo(settings: Settings) -> None:
    from aiproxy.emulator import EmulatorConfig, create_emulator_app

    emu = web.AppRunner(create_emulator_app(EmulatorConfig(api_key=DEMO_KEY)))
    await emu.setup()
    emu_site = web.TCPSite(emu, "127.0.0.1", 0)
    await emu_site.start()
    emu_url = f"http://127.0.0.1:{bound_port(emu)}"
    settings = settings.model_copy(
        update={"gemini_base_url": emu_url, "gemini_api_key": SecretStr(DEMO_KEY), "demo": True})
    log.info("demo mode: Gemini emulator at %s (no key, no network)", emu_url)
    try:
        await _run(settings)
    finally:
        await emu.cleanup()


def serve(settings: Settings, demo: bool = False) -> None:
    if settings.workers > 1 and not demo:
        from aiproxy.workers import supervise

        raise SystemExit(supervise(settings))
    _use_uvloop()
    try:
        asyncio.run(_run_demo(settings) if demo else _run(settings))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:  # e.g. refusing to serve an open proxy on a public address
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
