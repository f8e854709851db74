"""Logging: the seed's text format by default; secrets never reach a handler."""

from __future__ import annotations

import logging
import sys

TEXT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from aiproxy.jsonlog import JsonFormatter, RequestContextFilter

        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestContextFilter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log formats a line per request; keep it for DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
