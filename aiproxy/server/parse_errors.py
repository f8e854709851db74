"""Requests aiohttp cannot parse (bad header bytes, oversized lines, garbage) answered as OpenAI JSON.

aiohttp answers these itself, before any middleware or signal runs, in text/plain with the parser's
message, which quotes the rejected line back (a client key included), and logs that message with
a traceback. aiohttp documents no hook for it (aio-libs/aiohttp#3287 is open), so the protocol our
listeners create is `web.RequestHandler` (exported by aiohttp.web) with its public `handle_error`
method overridden: a fixed message per status, no echo, `Server: aiproxy`, one log line naming
the exception type only. tests/access/test_parse_errors.py fails loudly if an aiohttp upgrade
stops calling it. Behind the shipped nginx, nginx's own 400s are normalised too (deploy/nginx.conf).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from aiproxy import jsonutil

log = logging.getLogger("aiproxy")

_MESSAGES = {
    400: "The request could not be parsed as HTTP (malformed request line or header).",
    413: "The request is too large.",
    431: "The request headers are too large.",
}


def error_body(status: int) -> bytes:
    message = _MESSAGES.get(status, "The server could not handle the request." if status >= 500
                            else "The request could not be parsed as HTTP.")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    code = "internal_error" if status >= 500 else "malformed_request"
    return jsonutil.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class JsonErrorRequestHandler(web.RequestHandler):
    """aiohttp's HTTP protocol, whose own error responses are OpenAI JSON without echo."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # The parser's message quotes the offending bytes: log the exception's type, never its text.
        log.warning("rejected a request aiohttp could not handle (status %d): %s", status, type(exc).__name__)
        if request.writer.output_size > 0:  # as aiohttp: a response already began, the connection is broken
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = web.Response(status=status, body=error_body(status), content_type="application/json",
                            headers={"Server": "aiproxy", "Cache-Control": "no-store",
                                     "X-Content-Type-Options": "nosniff"})
        resp.force_close()
        return resp
