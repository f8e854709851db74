"""The HTTP client of one OpenAI-API server (OpenAI itself, or a declared compatible one).

One aiohttp session per provider; the key travels only in the Authorization header (none is
sent when the provider has no key, as a local Ollama needs none). Attempts, retries, fallbacks
and the SSE reader are the shared ones (aiproxy/providers/upstream.py); this module adds only
OpenAI's URLs and how its error statuses reach the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.providers.base import UpstreamEvents
from aiproxy.providers.retry import Fallbacks, RetryPolicy
from aiproxy.providers.upstream import Timeouts, UpstreamSession, attempt, open_chain, read_json_answer
from aiproxy.providers.upstream_errors import failed, key_rejected, rate_limited, timed_out, upstream_message


def map_openai_error(status: int, body: dict[str, Any], headers: Mapping[str, str], upstream: str,
                     secret: str = "") -> ProxyError:
    """An OpenAI-API error -> the client's error: already OpenAI's shape, so message, param and
    code pass through; the proxy's own key problems become a 502 naming the operator."""
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    assert isinstance(err, dict)
    message = upstream_message(err, upstream, status, secret)
    param = err.get("param") if isinstance(err.get("param"), str) else None
    code = err.get("code") if isinstance(err.get("code"), str) else None
    if status in (401, 403):
        return key_rejected(upstream)
    if status == 404:
        return ProxyError(404, message, param=param or "model", code=code or "model_not_found")
    if status == 429:
        return rate_limited(message, body, headers, code or "rate_limit_exceeded")
    if 400 <= status < 500:
        return ProxyError(status if status in (400, 409, 413, 422) else 400, message, param=param,
                          code=code or "invalid_request")
    if status == 503:
        return ProxyError(503, f"{upstream} is temporarily unavailable; try again. {message}", type="api_error",
                          code="upstream_unavailable")
    if status == 504:
        return timed_out(upstream, message)
    return failed(upstream, status, message)


class OpenAIClient(UpstreamSession):
    def __init__(self, base_url: str, api_key: str, upstream: str, timeouts: Timeouts) -> None:
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__({"Content-Type": "application/json", **auth})
        self.base = base_url.rstrip("/")
        self.upstream = upstream  # the name in error messages: "OpenAI", "ollama"
        self._key = api_key
        self._timeouts = timeouts
        self.retry_policy = RetryPolicy(retries=0)
        self.fallbacks: Fallbacks = {}
        self.events = UpstreamEvents()

    def _map_error(self, status: int, body: dict[str, Any], headers: Mapping[str, str]) -> ProxyError:
        return map_openai_error(status, body, headers, self.upstream, self._key)

    async def send(self, method: str, path: str, models: Sequence[str],
                   body_for: Any = None) -> tuple[aiohttp.ClientResponse, str]:
        """`path` for the first model of `models` that answers 200 (retries and fallbacks
        included); `body_for(model)` is that model's request body (bytes) or None."""
        url = f"{self.base}/{path}"

        def try_model(model: str) -> Any:
            return attempt(self.session, method, url, body_for(model) if body_for else None, None, model=model,
                           upstream=self.upstream, timeouts=self._timeouts, events=self.events,
                           map_error=self._map_error)

        return await open_chain(models, try_model, self.retry_policy, self.events)

    async def call_json(self, method: str, path: str, model: str, body: Any = None) -> Any:
        """A buffered call (embeddings, models): parsed JSON or ProxyError."""
        data = jsonutil.dumps(body) if body is not None else None
        resp, _ = await self.send(method, path, (model,), (lambda _m: data) if data is not None else None)
        return await read_json_answer(resp, self.upstream)
