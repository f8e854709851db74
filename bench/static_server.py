"""A trivial aiohttp endpoint (uvloop) answering every POST with 1 KB: the load generator's ceiling.

Whatever rate the generator reaches here, with the server doing almost nothing, bounds every
figure it reports; `python -m bench` measures and prints it.
"""

from __future__ import annotations

from aiohttp import web

from bench.serving import serve_forever

BODY = b'{"ok": true, "pad": "' + b"x" * 1000 + b'"}'


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    serve_forever("static", app)


if __name__ == "__main__":
    main()
