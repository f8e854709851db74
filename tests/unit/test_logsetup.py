"""A malformed request must cost the log one plain line, not a traceback (log flooding)."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import LineTooLong

from aiproxy.observability.logsetup import MalformedRequestFilter


def _record(exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                             ("127.0.0.1",), (type(exc), exc, None))


def test_parser_errors_become_one_warning_line_without_traceback() -> None:
    record = _record(LineTooLong(b"x" * 10, "8190"))
    assert MalformedRequestFilter().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "rejected a malformed request: LineTooLong"


def test_other_server_errors_keep_their_traceback() -> None:
    record = _record(RuntimeError("bug"))
    MalformedRequestFilter().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
