"""Google's error JSON, byte for byte in shape: ``{"error": {"code", "message", "status", "details"}}``.

Messages are the ones the live Generative Language API sends (collected from public bug reports,
see the package docstring), so a proxy's error mapping is tested against real text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aiproxy import jsonutil

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}

MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
INVALID_KEY = "API key not valid. Please pass a valid API key."
TYPE = "type.googleapis.com/google.rpc."


class GoogleError(Exception):
    """An error answered in Google's shape; raised anywhere on the request path."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message if message is not None else DEFAULT_MESSAGES.get(code, "Unknown error.")
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            err["details"] = self.details
        return {"error": err}

    def response(self, *, array: bool = False) -> web.Response:
        """Streaming without ``alt=sse`` wraps even errors in a JSON array, as Google does."""
        payload = [self.body()] if array else self.body()
        return web.Response(
            status=self.code,
            body=jsonutil.dumps(payload),
            headers={"Content-Type": "application/json; charset=UTF-8", **self.headers},
        )


def invalid(message: str) -> GoogleError:
    return GoogleError(400, message)


def missing_key() -> GoogleError:
    return GoogleError(403, MISSING_KEY)


def invalid_key() -> GoogleError:
    details = [
        _error_info("API_KEY_INVALID"),
        {"@type": TYPE + "LocalizedMessage", "locale": "en-US", "message": INVALID_KEY},
    ]
    return GoogleError(400, INVALID_KEY, details)


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": TYPE + "ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def not_found(model: str, method: str) -> GoogleError:
    return GoogleError(
        404,
        f"models/{model} is not found for API version v1beta, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def unknown_fields(names: list[str], where: str | None) -> GoogleError:
    """Proto JSON parsing: one line and one fieldViolation per unknown name."""
    at = f" at '{where}'" if where else ""
    descs = [f'Invalid JSON payload received. Unknown name "{n}"{at}: Cannot find field.' for n in names]
    violations = [({"field": where} if where else {}) | {"description": d} for d in descs]
    return GoogleError(400, "\n".join(descs), [{"@type": TYPE + "BadRequest", "fieldViolations": violations}])


def missing_signature(function_name: str, position: int) -> GoogleError:
    return invalid(
        "Function call is missing a thought_signature in functionCall parts. This is required for "
        "tools to work correctly, and missing thought_signature may lead to degraded model "
        f"performance. Additional data, function call `default_api:{function_name}` , position "
        f"{position}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for "
        "more details."
    )


def scripted(code: int, retry_after: float | None = None, message: str | None = None) -> GoogleError:
    """The error a directive asks for, with the details Google attaches to that status."""
    details: list[dict[str, Any]] = []
    headers: dict[str, str] = {}
    if code == 429:
        details.append(
            {
                "@type": TYPE + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "10",
                    }
                ],
            }
        )
        details.append(
            {"@type": TYPE + "Help", "links": [{"description": "Learn more about Gemini API quotas",
                                                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}
        )
    if retry_after is not None:
        secs = int(retry_after) if float(retry_after).is_integer() else retry_after
        details.append({"@type": TYPE + "RetryInfo", "retryDelay": f"{secs}s"})
        headers["Retry-After"] = str(max(0, int(-(-float(retry_after) // 1))))
    return GoogleError(code, message, details or None, headers)
