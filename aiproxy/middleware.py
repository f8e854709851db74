"""Request ids and the error boundary: every failure leaves as OpenAI error JSON."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from aiohttp import web

from aiproxy.appkeys import REQUEST_ID_KEY
from aiproxy.errors import ProxyError

log = logging.getLogger("aiproxy")

_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id_for(request: web.Request) -> str:
    """The client's X-Request-ID when it is short and plain, else a fresh one."""
    given = request.headers.get("X-Request-ID")
    if given and _SANE_ID.fullmatch(given):
        return given
    return "req-" + os.urandom(12).hex()


@web.middleware
async def request_id_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    request[REQUEST_ID_KEY] = request_id_for(request)
    return await handler(request)


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed responses, whose headers go out early."""
    rid = request.get(REQUEST_ID_KEY)
    if rid:
        response.headers["X-Request-ID"] = rid


_HTTP_ERRORS = {
    404: ("Unknown request URL: {method} {path}. Please check the URL for typos.", "unknown_url"),
    405: ("Method {method} is not allowed for {path}.", "method_not_allowed"),
    413: ("The request body is too large.", "request_too_large"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
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
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, request.get(REQUEST_ID_KEY))
        return ProxyError(500, "The server had an error while processing your request.", type="server_error",
                          code="internal_error").response()
