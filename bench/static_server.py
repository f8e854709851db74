"""A trivial aiohttp endpoint (uvloop) answering every POST with 1 KB: the load generator's ceiling.

Whatever rate the generator reaches here, with the server doing almost nothing, bounds every
figure it reports; `python -m bench` measures and prints it.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

BODY = b'{"ok": true, "pad": "' + b"x" * 1000 + b'"}'


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


async def serve() -> None:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above, so not None
    sys.stdout.write(f"static listening on http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
