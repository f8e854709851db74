"""The Anthropic client: GeminiClient's session, timeouts, retries and fallbacks, Anthropic's wire.

Only what differs is here: `POST {base}/v1/messages` with `x-api-key` and `anthropic-version`
headers (the key never in a URL), Anthropic's SSE `error` events, and the error mapping
(errors: https://docs.anthropic.com/en/api/errors). 529 overloaded_error and 429
rate_limit_error are retried and fall back like Gemini's 503/429 (providers/retry.py);
overloaded reaches the client as 503 ("try again"), rate limits as 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.providers.base import UpstreamStreamError
from aiproxy.providers.gemini.client import GeminiClient, GeminiStream
from aiproxy.providers.upstream_errors import failed, key_rejected, rate_limited, timed_out, upstream_message

ANTHROPIC_VERSION = "2023-06-01"


def map_anthropic_error(status: int, body: dict[str, Any], headers: Any, secret: str = "") -> ProxyError:
    """Anthropic's HTTP error -> what the client should see (status and OpenAI error JSON)."""
    err: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    message = upstream_message(err, "Anthropic", status, secret)
    if status in (401, 403):
        return key_rejected("Anthropic")
    if status == 404:
        return ProxyError(404, message, param="model", code="model_not_found")
    if status == 429:
        return rate_limited(message, body, headers)
    if status in (400, 413, 422):
        code = str(err.get("type") or "invalid_request_error")
        return ProxyError(400 if status == 422 else status, message, code=code)
    if status in (503, 529):
        return ProxyError(503, "Anthropic is temporarily overloaded; try again. " + message, type="api_error",
                          code="upstream_unavailable")
    if status == 504:
        return timed_out("Anthropic", message)
    return failed("Anthropic", status, message)


class AnthropicStream(GeminiStream):
    """Anthropic's SSE events (dicts with `type`); an `error` event ends the stream."""

    __slots__ = ()
    upstream_name = "Anthropic"

    @staticmethod
    def parse_event(line: bytes) -> dict[str, Any]:
        try:
            event = jsonutil.loads(line[5:])
        except jsonutil.JSONDecodeError:
            raise UpstreamStreamError("Anthropic sent a malformed stream event.") from None
        if not isinstance(event, dict):
            raise UpstreamStreamError("Anthropic sent a malformed stream event.")
        if event.get("type") == "error":
            err: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else {}
            status = 503 if err.get("type") == "overloaded_error" else 502
            raise UpstreamStreamError(f"Anthropic failed mid-stream: {err.get('message', 'unknown error')}", status)
        return event


class AnthropicClient(GeminiClient):
    """One aiohttp session for Anthropic; `stream_generate` opens `POST /v1/messages`."""

    upstream_name = "Anthropic"
    api_version = "v1"

    def session_headers(self) -> dict[str, str]:
        return {"x-api-key": self._key, "anthropic-version": ANTHROPIC_VERSION, "Content-Type": "application/json"}

    def map_error(self, status: int, body: dict[str, Any], headers: Any) -> ProxyError:
        return map_anthropic_error(status, body, headers, self._key)

    def _stream_url(self, model: str) -> str:
        return f"{self.base}/messages"

    def make_stream(self, resp: aiohttp.ClientResponse, model: str) -> AnthropicStream:
        return AnthropicStream(resp, model)
