"""Serving a benchmark server: uvloop (as the proxy runs), a free port, one parseable start line.

`bench.procs` starts each such server on port 0 and reads its port from the `<name> listening on
http://127.0.0.1:PORT` line, printed only once the socket accepts connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


def use_uvloop() -> None:
    """uvloop when installed: a reference measured on a slower loop than the proxy's would flatter it."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _announce_and_wait(name: str, app: web.Application, port: int, runner_options: dict[str, Any]) -> None:
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)  # hold mode opens 100 connections at once
    await site.start()
    print(f"{name} listening on http://127.0.0.1:{site.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve_forever(name: str, app: web.Application, port: int = 0, **runner_options: Any) -> None:
    """Serve `app` on loopback until the process is ended (SIGTERM, or Ctrl-C)."""
    use_uvloop()
    try:
        asyncio.run(_announce_and_wait(name, app, port, runner_options))
    except KeyboardInterrupt:
        pass
