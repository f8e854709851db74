"""Anthropic's error JSON: ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

Status → error type as documented at https://docs.anthropic.com/en/api/errors (400
invalid_request_error, 401 authentication_error, 403 permission_error, 404 not_found_error, 413
request_too_large, 429 rate_limit_error, 500 api_error, 529 overloaded_error).
"""

from __future__ import annotations

import os

from aiohttp import web

from aiproxy import jsonutil

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    401: "invalid x-api-key",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}


def request_id() -> str:
    return "req_emu" + os.urandom(8).hex()


class AnthropicError(Exception):
    """An error answered in Anthropic's shape; raised anywhere on the request path."""

    def __init__(self, status: int, message: str | None = None, retry_after: float | None = None) -> None:
        self.status = status
        self.kind = ERROR_TYPES.get(status, "api_error")
        self.message = message or DEFAULT_MESSAGES.get(status, "Invalid request")
        self.retry_after = retry_after
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        return {"type": "error", "error": {"type": self.kind, "message": self.message}}

    def response(self) -> web.Response:
        rid = request_id()
        headers = {"Content-Type": "application/json", "request-id": rid}
        if self.retry_after is not None:
            headers["retry-after"] = str(int(self.retry_after))
        return web.Response(status=self.status, body=jsonutil.dumps({**self.body(), "request_id": rid}),
                            headers=headers)


def invalid(message: str) -> AnthropicError:
    return AnthropicError(400, message)
