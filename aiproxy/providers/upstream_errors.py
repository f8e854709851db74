"""The parts every provider's error mapping shares: what a client sees when an upstream refuses.

Each provider's mapper (gemini/client.py, anthropic/client.py, openai/client.py) reads its own
error body and decides by status; the answers that are the same for every upstream are built
here, so a 429's Retry-After or the operator-facing key message cannot drift between providers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aiproxy.errors import ProxyError
from aiproxy.providers.retry import upstream_retry_after


def upstream_message(err: Mapping[str, Any], upstream: str, status: int, secret: str) -> str:
    """The upstream's own error message (or a plain one), with the proxy's key never echoed."""
    message = str(err.get("message") or f"{upstream} answered HTTP {status}")
    return message.replace(secret, "[redacted]") if secret and secret in message else message


def key_rejected(upstream: str) -> ProxyError:
    """401/403 from the upstream blame the proxy's key: a 502 for the operator, not the client."""
    return ProxyError(502, f"The proxy's {upstream} API key was rejected by {upstream}; the operator must fix the "
                      "server configuration (this is not a problem with your request).", type="api_error",
                      code="upstream_auth_error")


def rate_limited(message: str, body: Mapping[str, Any], headers: Mapping[str, str],
                 code: str = "rate_limit_exceeded") -> ProxyError:
    """A 429 with the wait the upstream asked for, as Retry-After in whole seconds (at least 1)."""
    seconds = upstream_retry_after(body, headers)
    after = None if seconds is None else str(max(1, math.ceil(seconds)))
    return ProxyError(429, message, type="rate_limit_error", code=code,
                      headers={"Retry-After": after} if after else None)


def timed_out(upstream: str, message: str) -> ProxyError:
    return ProxyError(504, f"{upstream} timed out. {message}", type="api_error", code="upstream_timeout")


def failed(upstream: str, status: int, message: str) -> ProxyError:
    """Any other upstream failure: a 502 that names the upstream's status."""
    return ProxyError(502, f"{upstream} failed (HTTP {status}): {message}", type="api_error", code="upstream_error")
