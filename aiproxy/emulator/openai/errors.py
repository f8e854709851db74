"""OpenAI's error JSON: `{"error": {"message", "type", "param", "code"}}`, with the real texts."""

from __future__ import annotations

import math

from aiproxy.errors import ProxyError

MISSING_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
               "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
               "username) if you're accessing the API from your browser and are prompted for a username and "
               "password. You can obtain an API key from https://platform.openai.com/account/api-keys.")

# status -> (type, code, message) of what OpenAI sends for a scripted `error`.
SCRIPTED = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}


# The proxy's own error class has exactly OpenAI's shape; the emulator raises it with the
# `type`s OpenAI uses (always passed explicitly: OpenAI's 429 type is `requests`/`tokens`).
OpenAIError = ProxyError


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, type="invalid_request_error", param=param, code=code)


def missing_key() -> OpenAIError:
    return OpenAIError(401, MISSING_KEY, type="invalid_request_error")


def invalid_key(key: str) -> OpenAIError:
    shown = f"{key[:3]}*{key[-4:]}" if len(key) > 8 else "****"
    return OpenAIError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", type="invalid_request_error",
                       code="invalid_api_key")


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                       type="invalid_request_error", code="model_not_found")


def scripted(status: int, retry_after: float | None = None, message: str | None = None) -> OpenAIError:
    """The error a directive asks for, typed and coded as OpenAI types and codes that status."""
    kind, code, default = SCRIPTED.get(status, ("server_error", None, f"HTTP {status}"))
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = str(max(0, math.ceil(float(retry_after))))
        headers["retry-after-ms"] = str(max(0, round(float(retry_after) * 1000)))
    return OpenAIError(status, message or default, type=kind, code=code, headers=headers)
