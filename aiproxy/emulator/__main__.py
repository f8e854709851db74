"""``python -m aiproxy.emulator --port N``: serve the emulator; prints one parseable line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from aiproxy.emulator import EmulatorConfig, create_emulator_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m aiproxy.emulator", description="Gemini API emulator")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--api-key", default=None, help="accept only this key (default: any non-empty key)")
    p.add_argument("--words", type=int, default=12)
    p.add_argument("--chunks", type=int, default=3)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--chunk-delay-ms", type=float, default=0)
    p.add_argument("--record-requests", type=int, default=200)
    p.add_argument("--quiet", action="store_true", help="no access log")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    cfg = EmulatorConfig(
        api_key=args.api_key,
        words=args.words,
        chunks=args.chunks,
        delay_ms=args.delay_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        record_requests=args.record_requests,
    )
    runner = web.AppRunner(create_emulator_app(cfg),
                           access_log=None if args.quiet else logging.getLogger("aiohttp.access"))
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site.port  # the bound port (PORT 0 = any free port)
    sys.stdout.write(f"Gemini emulator listening on http://{args.host}:{port}\n")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
