"""Serving: the event loop (uvloop when installed), the listening socket, demo mode."""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web
from pydantic import SecretStr

from aiproxy.app import create_app
from aiproxy.config import Settings

log = logging.getLogger("aiproxy")
DEMO_KEY = "demo-key"  # shared only by the in-process emulator and the proxy


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    # handler_cancellation: a client that leaves cancels its handler at once, so the upstream
    # request is dropped and Gemini stops generating tokens nobody will read.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=logging.getLogger("aiohttp.access"))
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_port=False)
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
    runner = await _serve(create_app(settings), settings.host, settings.port)
    log.info("aiproxy listening on http://%s:%d (upstream %s)", settings.host, bound_port(runner),
             settings.gemini_base_url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


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
    _use_uvloop()
    try:
        asyncio.run(_run_demo(settings) if demo else _run(settings))
    except KeyboardInterrupt:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
