"""Command line: `python -m aiproxy [serve|demo|usage|keys] ...` (serve is the default)."""

from __future__ import annotations

import argparse
import sys

from aiproxy.config import ConfigError, load_settings
from aiproxy.observability.logsetup import setup_logging


def _serve(argv: list[str], demo: bool) -> int:
    parser = argparse.ArgumentParser(prog="aiproxy" + (" demo" if demo else ""))
    parser.add_argument("--host", help="listen address (default HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default PORT or 8002)")
    parser.add_argument("--reload", action="store_true", help="restart on source changes (make run-dev)")
    args = parser.parse_args(argv)
    if args.reload:
        from aiproxy.server.reload import run_with_reload

        return run_with_reload(["demo" if demo else "serve", *(a for a in argv if a != "--reload")])
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(require_key=not demo, **overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    # DEMO=true in the environment means the same as the `demo` command; without this it would
    # skip the key check and then call Google with no key.
    from aiproxy.server.serve import ListenError, serve

    try:
        serve(settings, demo=demo or settings.demo)
    except ListenError as exc:  # the port is taken or the address is not ours: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # anything else the OS refused at start (a directory, a file): its own words
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else "serve"
    rest = argv[1:] if argv and argv[0] == command else argv
    if command == "serve":
        return _serve(rest, demo=False)
    if command == "demo":
        return _serve(rest, demo=True)
    if command == "usage":
        from aiproxy.billing.cli import main as usage_main

        return usage_main(rest)
    if command == "keys":
        from aiproxy.access.cli import main as keys_main

        return keys_main(rest)
    print(f"error: unknown command {command!r} (expected serve, demo, usage, keys)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
