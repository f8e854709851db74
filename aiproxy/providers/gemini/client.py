"""The Gemini client: one aiohttp session per process, Gemini's SSE read into plain dicts.

google-genai's response types cost ~80 µs to parse one streamed chunk here against 2.4 µs for
orjson, and the proxy's whole per-chunk budget is 40 µs, so the hot path reads the REST API
directly; the SDK's `types` stay the reference the tests validate field names against.
The API key travels only in the `x-goog-api-key` header, never in a URL that could be logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.providers.base import UpstreamEvents, UpstreamStreamError
from aiproxy.providers.retry import (
    FALLBACK_STATUSES,
    RETRY_STATUSES,
    Fallbacks,
    RetryPolicy,
    model_chain,
    upstream_retry_after,
)

log = logging.getLogger("aiproxy.providers.gemini.client")

API_VERSION = "v1beta"


def model_path(model: str, method: str) -> str:
    """`models/{model}:{method}` with the model percent-quoted: even a name that slipped past
    validation stays one path segment and cannot pick another method or add a query."""
    return f"models/{quote(model, safe='')}:{method}"


def _retry_after(body: dict[str, Any], headers: Any) -> str | None:
    """The Retry-After to pass on to the client: whole seconds, at least 1."""
    seconds = upstream_retry_after(body, headers)
    return None if seconds is None else str(max(1, math.ceil(seconds)))


def map_upstream_error(status: int, body: dict[str, Any], headers: Any, secret: str = "") -> ProxyError:
    """Gemini's HTTP error -> what the client should see (status and OpenAI error JSON)."""
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = str(err.get("message") or f"Gemini answered HTTP {status}")
    if secret and secret in message:
        message = message.replace(secret, "[redacted]")
    if status in (401, 403):
        return ProxyError(502, "The proxy's Gemini API key was rejected by Gemini; the operator must fix the server "
                          "configuration (this is not a problem with your request).", type="api_error",
                          code="upstream_auth_error")
    if status == 400 and "API key not valid" in message:
        return ProxyError(502, "The proxy's Gemini API key is not valid; the operator must fix the server configuration.",
                          type="api_error", code="upstream_auth_error")
    if status == 404:
        return ProxyError(404, message, param="model", code="model_not_found")
    if status == 429:
        after = _retry_after(body, headers)
        return ProxyError(429, message, type="rate_limit_error", code="rate_limit_exceeded",
                          headers={"Retry-After": after} if after else None)
    if status == 400:
        return ProxyError(400, message, code=str(err.get("status") or "invalid_request").lower())
    if status == 503:
        return ProxyError(503, "Gemini is temporarily unavailable; try again. " + message, type="api_error",
                          code="upstream_unavailable")
    if status == 504:
        return ProxyError(504, "Gemini timed out. " + message, type="api_error", code="upstream_timeout")
    return ProxyError(502, f"Gemini failed (HTTP {status}): {message}", type="api_error", code="upstream_error")


class _AttemptFailed(Exception):
    """One attempt failed before the first byte; carries what the retry loop decides on."""

    def __init__(self, error: ProxyError, reason: str, retryable: bool, fallback: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason
        self.retryable = retryable
        self.fallback = fallback
        self.retry_after = retry_after


class GeminiClient:
    """Holds the process-wide session; every call is a coroutine over plain JSON.

    Timeouts: `connect_timeout` for the TCP/TLS connect, `first_byte_timeout` until Gemini's
    status line, then `idle_timeout` as the longest silence between two reads of the body (set on
    the connection once the headers are in, so the hot per-chunk path pays nothing extra: aiohttp
    re-arms its read timer on every received packet anyway).
    """

    # What a subclass for another upstream changes (providers/anthropic/client.py): its name in
    # error messages, the path after the base URL, the stream reader and the error mapping.
    upstream_name = "Gemini"
    api_version = API_VERSION

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 10.0,
        first_byte_timeout: float = 120.0,
        idle_timeout: float = 60.0,
    ) -> None:
        self.base = f"{base_url.rstrip('/')}/{self.api_version}"
        self._key = api_key
        self._connect_timeout = connect_timeout
        self._first_byte_timeout = first_byte_timeout
        self._idle_timeout = idle_timeout
        self._session: aiohttp.ClientSession | None = None
        # Set by create_app from the settings; the defaults make one attempt only.
        self.retry_policy = RetryPolicy(retries=0)
        self.fallbacks: Fallbacks = {}
        self.events = UpstreamEvents()

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self.session_headers(),
                json_serialize=jsonutil.dumps_str,
                # No cookie jar: Gemini sets none we need, and one shared jar would carry a
                # cookie from one user's request into the next (also ~µs saved per request).
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )

    def session_headers(self) -> dict[str, str]:
        """Headers on every request: the key (never in the URL) and the body type."""
        return {"x-goog-api-key": self._key, "Content-Type": "application/json"}

    def map_error(self, status: int, body: dict[str, Any], headers: Any) -> ProxyError:
        return map_upstream_error(status, body, headers, self._key)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def is_open(self) -> bool:
        """For readiness: the session exists and has not been closed."""
        return self._session is not None and not self._session.closed

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("GeminiClient.start() was not awaited")
        return self._session

    async def _attempt(self, method: str, url: str, body: bytes | None, headers: dict[str, str] | None,
                       model: str) -> aiohttp.ClientResponse:
        """One request up to Gemini's status line; failures become `_AttemptFailed`."""
        started = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=None, connect=self._connect_timeout,
                                            sock_connect=self._connect_timeout, sock_read=self._first_byte_timeout)
            resp = await self.session.request(method, url, data=body, headers=headers, timeout=timeout)
        except TimeoutError:  # aiohttp's connect and first-byte (sock_read) timeouts
            err = ProxyError(504, f"{self.upstream_name} did not answer in time.", type="api_error",
                             code="upstream_timeout")
            raise _AttemptFailed(err, "timeout", retryable=False, fallback=True) from None
        except aiohttp.ClientError as exc:
            log.warning("upstream connection failed: %s", type(exc).__name__)
            err = ProxyError(502, f"Could not reach {self.upstream_name}.", type="api_error",
                             code="upstream_unreachable")
            raise _AttemptFailed(err, "connect", retryable=True, fallback=False) from None
        if resp.status == 200 or resp.status in RETRY_STATUSES:
            # Not for 400/404: a client-chosen bogus model name must not become a metric label.
            self.events.latency(model, time.monotonic() - started)
        if resp.status == 200:
            conn = resp.connection
            if conn is not None and conn.protocol is not None:
                conn.protocol.read_timeout = self._idle_timeout  # the idle gap from now on (test_aiohttp_pins.py)
                conn.protocol.start_timeout()  # re-arm now, or a stall right after the headers waits the old timer
            return resp
        try:
            raw = await resp.read()
            body_json = jsonutil.loads(raw) if raw else {}
            if not isinstance(body_json, dict):
                body_json = body_json[0] if isinstance(body_json, list) and body_json else {}
        except Exception:
            body_json = {}
        finally:
            resp.release()
        status = resp.status
        raise _AttemptFailed(self.map_error(status, body_json, resp.headers), str(status),
                             retryable=status in RETRY_STATUSES, fallback=status in FALLBACK_STATUSES,
                             retry_after=upstream_retry_after(body_json, resp.headers) if status in RETRY_STATUSES else None)

    async def _open(self, method: str, models: Sequence[str], url_for: Callable[[str], str],
                    body_for: Callable[[str], bytes | None], headers: dict[str, str] | None = None,
                    ) -> tuple[aiohttp.ClientResponse, str]:
        """Try each model of the chain, retrying each per the policy; the response and its model.

        Runs entirely before the first byte reaches the client, which is what makes a retry safe.
        Raises the last attempt's ProxyError when every model and retry is used up.
        """
        policy = self.retry_policy
        deadline = time.monotonic() + policy.deadline
        failure: _AttemptFailed | None = None
        for index, model in enumerate(models):
            url, body = url_for(model), body_for(model)
            attempt = 0
            while True:
                try:
                    return await self._attempt(method, url, body, headers, model), model
                except _AttemptFailed as exc:
                    failure = exc
                if failure.retryable or failure.fallback:  # bounded labels, as above
                    self.events.failure(model, failure.reason)
                if not failure.retryable or attempt >= policy.retries:
                    break
                wait = policy.delay(attempt, failure.retry_after)
                if wait is None or time.monotonic() + wait > deadline:
                    break
                self.events.retry(model, failure.reason)
                await asyncio.sleep(wait)
                attempt += 1
            if not failure.fallback or index + 1 >= len(models) or time.monotonic() >= deadline:
                break
            log.warning("model %s failed (%s); falling back to %s", model, failure.reason, models[index + 1])
            self.events.fallback(model, models[index + 1], failure.reason)
        assert failure is not None
        raise failure.error

    async def stream_generate(self, model: str, body: bytes, headers: dict[str, str] | None = None,
                              body_for: Callable[[str], bytes] | None = None) -> GeminiStream:
        """Open a streamed generation for `model` or, on 429/503/timeout, its fallbacks.

        `body_for(model)` rebuilds the request for a fallback model (thinking settings differ by
        model family); without it the same body is sent. `GeminiStream.model` is the model used.
        """
        chain = model_chain(model, self.fallbacks)

        def build(m: str) -> bytes:
            return body if m == model or body_for is None else body_for(m)

        resp, used = await self._open("POST", chain, self._stream_url, build, headers)
        return self.make_stream(resp, used)

    def make_stream(self, resp: aiohttp.ClientResponse, model: str) -> GeminiStream:
        return GeminiStream(resp, model)

    def _stream_url(self, model: str) -> str:
        return f"{self.base}/{model_path(model, 'streamGenerateContent')}?alt=sse"

    async def call_json(self, method: str, path: str, body: Any = None) -> Any:
        """A non-streaming call (models, embeddings, countTokens): parsed JSON or ProxyError."""
        data = jsonutil.dumps(body) if body is not None else None
        url = f"{self.base}/{path}"
        resp, _ = await self._open(method, (path.partition(":")[0].removeprefix("models/"),),
                                   lambda _m: url, lambda _m: data)
        try:
            return jsonutil.loads(await resp.read())
        except (aiohttp.ClientError, jsonutil.JSONDecodeError):
            raise ProxyError(502, f"{self.upstream_name} sent an unreadable answer.", type="api_error",
                             code="upstream_error") from None
        finally:
            resp.release()


class GeminiStream:
    """Async iterator of Gemini response chunks (dicts) from one SSE response.

    A subclass reads another upstream's SSE: its name for error messages and its `data:` parser.
    """

    __slots__ = ("_resp", "model")
    upstream_name = "Gemini"

    def __init__(self, resp: aiohttp.ClientResponse, model: str = "") -> None:
        self._resp = resp
        self.model = model  # the model that answered (a fallback when the requested one failed)

    def close(self) -> None:
        """Drop the connection: used when the client leaves so Gemini stops generating."""
        self._resp.close()

    def release(self) -> None:
        self._resp.release()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        # Whatever arrived is split into lines here: one await per network read instead of one
        # readline() per SSE line (two per event) saves ~1 µs per line. A partial last line
        # waits in `pending` (joined once, so a long line such as an inline image costs linear
        # time); at EOF it is parsed as is, so a truncated event is reported as malformed.
        pending: list[bytes] = []
        parse = self.parse_event
        name = self.upstream_name
        try:
            async for data in self._resp.content.iter_any():
                if b"\n" not in data:
                    pending.append(data)
                    continue
                if pending:
                    pending.append(data)
                    data = b"".join(pending)
                    pending.clear()
                lines = data.split(b"\n")
                rest = lines.pop()
                if rest:
                    pending.append(rest)
                for line in lines:
                    if line.startswith(b"data:"):  # skip blank separators, comments, other fields
                        yield parse(line)
            rest = b"".join(pending)
            if rest.startswith(b"data:"):
                yield parse(rest)
        except TimeoutError:
            raise UpstreamStreamError(f"{name} stopped sending (idle timeout).", 504, "upstream_timeout") from None
        except aiohttp.ClientPayloadError:
            raise UpstreamStreamError(f"{name}'s stream ended early.") from None
        except aiohttp.ClientError:
            raise UpstreamStreamError(f"The connection to {name} broke mid-stream.") from None

    @staticmethod
    def parse_event(line: bytes) -> dict[str, Any]:
        return _event(line)


def _event(line: bytes) -> dict[str, Any]:
    """One `data:` line -> the Gemini chunk; an error event or bad JSON ends the stream."""
    try:
        chunk = jsonutil.loads(line[5:])
    except jsonutil.JSONDecodeError:
        raise UpstreamStreamError("Gemini sent a malformed stream chunk.") from None
    if "error" in chunk and "candidates" not in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {}
        status = 503 if err.get("code") == 503 else 502
        raise UpstreamStreamError(f"Gemini failed mid-stream: {err.get('message', 'unknown error')}", status)
    return chunk
