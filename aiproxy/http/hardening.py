"""Hostile-input limits and response hygiene.

- Requests in flight are capped (MAX_CONCURRENT_REQUESTS): beyond it the answer is an immediate
  503 (clients retry), never a queue, so a flood cannot grow memory.
- Bodies: a Content-Length over MAX_BODY_BYTES is refused before reading; a chunked body is cut
  at the same size; the whole body must arrive within CLIENT_BODY_TIMEOUT (slow-body slowloris).
  Headers and idle connections are bounded by the server's handler arguments (`server_limits`):
  aiohttp closes a connection whose headers do not arrive within KEEPALIVE_TIMEOUT.
- JSON: more than MAX_JSON_VALUES values or nesting deeper than MAX_JSON_DEPTH are 400s found by
  counting the raw bytes before parsing (access/json_shape.py), so neither orjson nor pydantic
  ever spends seconds on a hostile body and recursive code never sees hostile depth; then more
  than MAX_MESSAGES messages, MAX_CONTENT_PARTS content parts or MAX_CONTENT_PARTS_PER_MESSAGE
  parts in one message are 400s, checked on the parsed body before validation.
- Every response gets security headers and `Server: aiproxy` instead of aiohttp's version banner
  (aiohttp's own parser-error answers get theirs in aiproxy/server/parse_errors.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.config import ConfigError, Settings
from aiproxy.errors import ProxyError
from aiproxy.http.json_shape import check_json_shape
from aiproxy.server.client_guard import OPS_PATHS

# Request slot: the parsed body, so the handler does not parse it again.
JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Server": "aiproxy",
}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def server_limits(settings: Settings) -> dict[str, Any]:
    """Handler arguments for web.AppRunner / TestServer.start_server: header and idle limits."""
    return {
        "keepalive_timeout": settings.keepalive_timeout,
        "max_line_size": settings.max_header_bytes,
        "max_field_size": settings.max_header_bytes,
        "max_headers": settings.max_headers,
    }


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OpenProxyRefused(ConfigError):
    """No client keys exist and HOST is reachable from other machines."""


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: reaches every response the app makes, streamed ones included."""
    headers = response.headers
    headers.update(SECURITY_HEADERS)
    headers.setdefault("Cache-Control", "no-store")  # SSE sets its own no-cache


def check_raw_shape(raw: bytes, settings: Settings) -> None:
    """Refuse a body with too many JSON values or too deep a nesting before it is parsed."""
    violation = check_json_shape(raw, settings.max_json_values, settings.max_json_depth)
    if violation is None:
        return
    if violation.kind == "depth":
        raise ProxyError(400, f"The JSON body is nested too deeply (at most {violation.limit} levels).",
                         code="json_too_deep")
    raise ProxyError(400, f"The JSON body has too many values (at most {violation.limit} values and keys).",
                     code="too_many_json_values")


def check_body(data: Any, settings: Settings) -> None:
    """Message and content-part counts of a parsed body, before the request models see it."""
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        return
    if len(messages) > settings.max_messages:
        raise ProxyError(400, f"Too many messages: {len(messages)} (at most {settings.max_messages}).",
                         param="messages", code="too_many_messages")
    per_message, total = settings.max_content_parts_per_message, 0
    for i, msg in enumerate(messages):
        parts = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(parts, list):
            continue
        if len(parts) > per_message:
            raise ProxyError(400, f"Too many content parts in 'messages[{i}].content': {len(parts)} (at most "
                                  f"{per_message} per message).", param=f"messages[{i}].content",
                             code="too_many_content_parts")
        total += len(parts)
    if total > settings.max_content_parts:
        raise ProxyError(400,
                         f"Too many content parts: {total} in this request (at most {settings.max_content_parts}).",
                         param="messages", code="too_many_content_parts")


def _closing(exc: ProxyError) -> web.Response:
    """Error response that also closes the connection (the unread body is not worth draining)."""
    resp = exc.response()
    resp.force_close()
    return resp


def too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"The request body is too large (limit {limit // (1024 * 1024)} MB, "
                           f"{limit} bytes).", code="request_too_large")


def hardening_middleware(settings: Settings) -> Any:
    limit, timeout, cap = settings.max_body_bytes, settings.client_body_timeout, settings.max_concurrent_requests
    in_flight = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        nonlocal in_flight
        if request.path in OPS_PATHS:  # probes and scrapes are never refused as "busy"
            return await handler(request)
        if in_flight >= cap:
            raise ProxyError(503, "The server is busy; please retry shortly.", type="api_error",
                             code="server_overloaded", headers={"Retry-After": "1"})
        in_flight += 1
        try:
            if request.method in _BODY_METHODS and request.can_read_body:
                if (request.content_length or 0) > limit:
                    return _closing(too_large(limit))
                try:
                    if request.content.is_eof():  # the whole body arrived with the head: no wait to bound
                        raw = await request.read()
                    else:
                        async with asyncio.timeout(timeout):
                            raw = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    return _closing(too_large(limit))
                except TimeoutError:
                    return _closing(ProxyError(408, "The request body did not arrive in time.", code="request_timeout"))
                if raw:  # whatever the Content-Type: curl -d sends JSON as form data
                    check_raw_shape(raw, settings)
                    try:
                        data = jsonutil.loads(raw)
                    except jsonutil.JSONDecodeError:
                        pass  # the handler answers invalid_json in its own words
                    else:
                        check_body(data, settings)
                        request[JSON_BODY] = data
            return await handler(request)
        finally:
            in_flight -= 1

    return middleware
