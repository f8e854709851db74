"""One error type for everything a client can be told, rendered as OpenAI's error JSON.

Clients (the openai SDKs, Lotti) branch on the HTTP status and on ``error.code``/``error.type``,
so the mapping from cause to status lives here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aiproxy import jsonutil

# OpenAI's error "type" per status, as the official API sends them.
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ProxyError(Exception):
    """An error with everything needed to answer the client; safe to show (no secrets)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        headers = {"Content-Type": "application/json", **self.headers}
        return web.Response(status=self.status, body=jsonutil.dumps(self.body()), headers=headers)


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> ProxyError:
    return ProxyError(400, message, param=param, code=code)

