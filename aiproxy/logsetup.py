"""Logging: the seed's text format by default; secrets never reach a handler."""

from __future__ import annotations

import logging
import sys

TEXT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs every unparseable request (oversized headers, garbage bytes) at ERROR with
    a traceback; a hostile client could flood the log that way. Keep one plain warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "rejected a malformed request: %s", (type(exc).__name__,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


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
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
    # aiohttp's access log formats a line per request; keep it for DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
