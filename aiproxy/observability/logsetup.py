r"""Logging: the seed's text format by default; secrets never reach a handler; a text line is
always exactly one line.

Client-supplied values (user ids, model names, paths, headers) reach log messages in many
places, and one newline in them would let a client write a well-formed fake line, such as a
`💰 BILLING` line. So the text formatter itself escapes control characters in every rendered
message (shown as `\n`, `\x1b`, …, never executed), and no call site can forget. The traceback a
formatter appends after the message stays multi-line: it is our text, not the client's. JSON
lines are safe by encoding (a newline in a value is written as `\n`).
"""

from __future__ import annotations

import logging
import re
import sys

TEXT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
TEXT_DATEFMT = "%Y-%m-%d %H:%M:%S"

# C0 and C1 controls, DEL, Unicode line/paragraph separators and bidi overrides (which can make
# a line display as something else).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    r"""`text` with every control character written out visibly (`\n`, `\x1b`, `\u2028`)."""
    return _CONTROLS.sub(_shown, text)


class EscapingFormatter(logging.Formatter):
    """The text formatter: the rendered line is escaped, the appended traceback is not."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging's method name
        return escape_controls(super().formatMessage(record))


def text_formatter() -> logging.Formatter:
    return EscapingFormatter(TEXT_FORMAT, datefmt=TEXT_DATEFMT)


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
    # Neither format shows the caller's file and line, thread or process, so records skip
    # gathering them (the logging HOWTO's "Optimization" settings): the billing line is made for
    # every request, and the caller lookup walks the stack each time.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from aiproxy.observability.jsonlog import JsonFormatter, RequestContextFilter

        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestContextFilter())
    else:
        handler.setFormatter(text_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())
    # aiohttp's access log formats a line per request; keep it for DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
