"""Serving: the event loop (uvloop when installed), the listening socket, demo mode."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys

from aiohttp import web
from pydantic import SecretStr

from aiproxy.appkeys import LISTEN_PORTS_KEY, SETTINGS_KEY
from aiproxy.config import ConfigError, Settings
from aiproxy.http.hardening import server_limits
from aiproxy.server.connlimit import ConnectionGate
from aiproxy.server.lifecycle import serve_until_signalled
from aiproxy.server.listen import ServingRunner

log = logging.getLogger("aiproxy")
DEMO_KEY = "demo-key"  # shared only by the in-process emulator and the proxy
# The demo's fallback chains (unless MODEL_FALLBACKS is set): a Gemini outage falls through to the
# emulator's OpenAI, then Anthropic, wire formats, so `make demo` shows a cross-provider fallback.
DEMO_FALLBACKS = ("gemini-2.5-pro=openai/gpt-4.1,anthropic/claude-sonnet-4-5;"
                  "gemini-3.5-flash=openai/gpt-4.1-mini,anthropic/claude-haiku-4-5")


class ListenError(Exception):
    """Binding a listening socket failed; the message names the address and the OS's reason."""

    def __init__(self, host: str, port: int | None, exc: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                 drain_timeout: float = 30.0, ops_host: str | None = None, ops_port: int | None = None,
                 ) -> ServingRunner:
    """Start the app on the client port (behind the connection caps) and, when given, the ops port."""
    settings = app[SETTINGS_KEY]
    ports = app[LISTEN_PORTS_KEY]  # create_app's guards read the ops port from here once it is bound
    # handler_cancellation: a client that leaves cancels its handler at once, so the upstream
    # request is dropped and Gemini stops generating tokens nobody will read.
    # shutdown_timeout: how long aiohttp's graceful shutdown lets running handlers finish.
    runner = ServingRunner(app, handler_cancellation=True, shutdown_timeout=drain_timeout,
                           handler_args={"access_log": logging.getLogger("aiohttp.access"), **server_limits(settings)})
    try:
        await runner.setup()
    except ConfigError:  # a startup check refused (e.g. open proxy on a public address)
        await runner.cleanup()  # closes what the startups before it opened
        raise
    gate = ConnectionGate(settings.max_connections, settings.max_connections_per_ip, settings.trusted_networks)
    try:
        runner.port = await runner.listen(host, port, gate=gate, reuse_port=reuse_port)
        if ops_port is not None:
            ports.ops_port = await runner.listen(ops_host or host, ops_port, gate=None, reuse_port=reuse_port)
    except OSError as exc:
        await runner.cleanup()  # closes the upstream session opened by the app's startup
        on_ops = bool(runner.port)  # the client port was bound: the ops port failed
        raise ListenError(ops_host or host if on_ops else host, ops_port if on_ops else port, exc) from exc
    return runner


def bound_port(runner: ServingRunner) -> int:
    return runner.port


async def _run(settings: Settings) -> None:
    # Imported here: a WORKERS>1 supervisor never builds an app (nor creates metrics before
    # PROMETHEUS_MULTIPROC_DIR exists); only its workers do.
    from aiproxy.app import create_app

    app = create_app(settings)
    runner = await _serve(app, settings.host, settings.port, reuse_port=settings.reuse_port,
                          drain_timeout=settings.drain_timeout, ops_host=settings.ops_listen_host,
                          ops_port=settings.ops_port)
    url = f"http://{settings.host}:{bound_port(runner)}"
    log.info("aiproxy listening on %s (upstream %s, pid %d)", url, settings.gemini_base_url, os.getpid())
    if settings.ops_port is not None:
        log.info("ops endpoints (/health, /health/ready, /metrics) on http://%s:%d", settings.ops_listen_host,
                 app[LISTEN_PORTS_KEY].ops_port)
    await serve_until_signalled(app, runner, settings.drain_timeout, f"serving on {url}")


async def _run_demo(settings: Settings) -> None:
    from aiproxy.emulator import EmulatorConfig, create_emulator_app

    emu = web.AppRunner(create_emulator_app(EmulatorConfig(api_key=DEMO_KEY)))
    await emu.setup()
    emu_site = web.TCPSite(emu, "127.0.0.1", 0)
    await emu_site.start()
    emu_url = f"http://127.0.0.1:{emu_site.port}"
    settings = settings.model_copy(
        update={"gemini_base_url": emu_url, "gemini_api_key": SecretStr(DEMO_KEY), "demo": True,
                "openai_base_url": f"{emu_url}/openai/v1", "openai_api_key": SecretStr(DEMO_KEY),
                "anthropic_base_url": f"{emu_url}/anthropic", "anthropic_api_key": SecretStr(DEMO_KEY),
                "model_fallbacks": settings.model_fallbacks or DEMO_FALLBACKS})
    log.info("demo mode: Gemini emulator at %s, OpenAI's at %s/openai/v1, Anthropic's at %s/anthropic "
             "(no key, no network); fallbacks %s", emu_url, emu_url, emu_url, settings.model_fallbacks)
    try:
        await _run(settings)
    finally:
        await emu.cleanup()


def serve(settings: Settings, demo: bool = False) -> None:
    from aiproxy.server.workers import metrics_dir, supervise

    if settings.workers > 1 and not demo:
        raise SystemExit(supervise(settings))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not settings.reuse_port:
        # One process with a multiprocess dir (a unit or compose file set it): create it as the
        # supervisor would, before any metric is made; OSError here names the directory.
        metrics_dir()
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
