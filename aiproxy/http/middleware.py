"""Request ids and the error boundary: every failure leaves as OpenAI error JSON."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from aiohttp import web

from aiproxy.appkeys import CLIENT_REQUEST_ID_KEY, REQUEST_ID_KEY
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy")

_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# The server's id for the request: it keys the ledger row, the credits charge (Idempotency-Key)
# and the billing line, so it is never taken from the client. The client's own X-Request-ID is
# only a label (echoed back, stored as client_request_id, logged).
SERVER_ID_HEADER = "X-Aiproxy-Request-ID"
CLIENT_ID_HEADER = "X-Request-ID"


def new_request_id() -> str:
    """A fresh server request id: `req-` and 24 hex digits (96 random bits)."""
    return "req-" + os.urandom(12).hex()


def client_request_id_for(request: web.Request) -> str | None:
    """The client's X-Request-ID when it is short and plain (a label, never a key), else None."""
    given = request.headers.get(CLIENT_ID_HEADER)
    if given and _SANE_ID.fullmatch(given):
        return given
    return None


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare (also reaches streamed responses, whose headers go out early): the
    server id always; X-Request-ID echoes the client's id, or carries the server id when the
    client sent none (or one that was not plain)."""
    rid = request.get(REQUEST_ID_KEY)
    if rid:
        response.headers[SERVER_ID_HEADER] = rid
        response.headers[CLIENT_ID_HEADER] = request.get(CLIENT_REQUEST_ID_KEY) or rid


_HTTP_ERRORS = {
    404: ("Unknown request URL: {method} {path}. Please check the URL for typos.", "unknown_url"),
    405: ("Method {method} is not allowed for {path}.", "method_not_allowed"),
    413: ("The request body is too large.", "request_too_large"),
}


@web.middleware
async def request_boundary_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The server's request id (it keys the ledger row and the charge), then the error boundary:
    any exception becomes OpenAI error JSON. One layer for both, as every request needs both."""
    request[REQUEST_ID_KEY] = new_request_id()
    client_id = client_request_id_for(request)
    if client_id is not None:
        request[CLIENT_REQUEST_ID_KEY] = client_id
    try:
        return await handler(request)
    except ProxyError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        template, code = _HTTP_ERRORS.get(exc.status, (exc.reason or "HTTP error", None))
        message = template.format(method=request.method, path=request.path)
        err = ProxyError(exc.status, message, code=code)
        resp = err.response()
        if exc.status == 405 and "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path,
                      request.get(REQUEST_ID_KEY))
        return ProxyError(500, "The server had an error while processing your request.", type="server_error",
                          code="internal_error").response()
