"""The Gemini client: one aiohttp session per process, Gemini's SSE read into plain dicts.

google-genai's response types cost ~80 µs to parse one streamed chunk here against 2.4 µs for
orjson, and the proxy's whole per-chunk budget is 40 µs, so the hot path reads the REST API
directly; the SDK's `types` stay the reference the tests validate field names against.
The API key travels only in the `x-goog-api-key` header, never in a URL that could be logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.providers.base import UpstreamEvents, UpstreamStreamError
from aiproxy.providers.retry import Fallbacks, RetryPolicy, model_chain
from aiproxy.providers.upstream import (
    Timeouts,
    UpstreamSession,
    attempt,
    open_chain,
    read_body,
    read_json_answer,
    sse_batches,
    sse_events,
)
from aiproxy.providers.upstream_errors import failed, key_rejected, rate_limited, timed_out, upstream_message

log = logging.getLogger("aiproxy.providers.gemini.client")

API_VERSION = "v1beta"


def model_path(model: str, method: str) -> str:
    """`models/{model}:{method}` with the model percent-quoted: even a name that slipped past
    validation stays one path segment and cannot pick another method or add a query."""
    return f"models/{quote(model, safe='')}:{method}"


def map_upstream_error(status: int, body: dict[str, Any], headers: Any, secret: str = "") -> ProxyError:
    """Gemini's HTTP error -> what the client should see (status and OpenAI error JSON)."""
    err = found if isinstance(found := body.get("error"), dict) else {}
    message = upstream_message(err, "Gemini", status, secret)
    if status in (401, 403):
        return key_rejected("Gemini")
    if status == 400 and "API key not valid" in message:
        return ProxyError(502, "The proxy's Gemini API key is not valid; the operator must fix the server "
                          "configuration.",
                          type="api_error", code="upstream_auth_error")
    if status == 404:
        return ProxyError(404, message, param="model", code="model_not_found")
    if status == 429:
        return rate_limited(message, body, headers)
    if status == 400:
        return ProxyError(400, message, code=str(err.get("status") or "invalid_request").lower())
    if status == 503:
        return ProxyError(503, "Gemini is temporarily unavailable; try again. " + message, type="api_error",
                          code="upstream_unavailable")
    if status == 504:
        return timed_out("Gemini", message)
    return failed("Gemini", status, message)


class GeminiClient(UpstreamSession):
    """Holds the process-wide session; every call is a coroutine over plain JSON.

    Timeouts: `connect_timeout` for the TCP/TLS connect, `first_byte_timeout` until Gemini's
    status line, then `idle_timeout` as the longest silence between two reads of the body (set on
    the connection once the headers are in, so the hot per-chunk path pays nothing extra: aiohttp
    re-arms its read timer on every received packet anyway). generateContent (`generate`) sends
    its status line only once the whole answer is ready, so it waits `answer_timeout` for it
    instead (UPSTREAM_ANSWER_TIMEOUT, 600 s like the openai SDKs' own default): a long answer a
    stream would deliver must not become a 504 for the client that asked for it in one piece.
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
        answer_timeout: float = 600.0,
    ) -> None:
        self._key = api_key
        super().__init__(self.session_headers())
        self.base = f"{base_url.rstrip('/')}/{self.api_version}"
        self._timeouts = Timeouts(connect_timeout, first_byte_timeout, idle_timeout)
        self._answer_timeouts = Timeouts(connect_timeout, answer_timeout, idle_timeout)
        # Set by create_app from the settings; the defaults make one attempt only.
        self.retry_policy = RetryPolicy(retries=0)
        self.fallbacks: Fallbacks = {}
        self.events = UpstreamEvents()

    def session_headers(self) -> dict[str, str]:
        """Headers on every request: the key (never in the URL) and the body type."""
        return {"x-goog-api-key": self._key, "Content-Type": "application/json"}

    def map_error(self, status: int, body: dict[str, Any], headers: Any) -> ProxyError:
        return map_upstream_error(status, body, headers, self._key)

    async def _attempt(self, method: str, url: str, body: bytes | None, headers: dict[str, str] | None,
                       model: str, timeouts: Timeouts | None = None) -> aiohttp.ClientResponse:
        """One request up to the upstream's status line; failures become `AttemptFailed`."""
        return await attempt(self.session, method, url, body, headers, model=model, upstream=self.upstream_name,
                             timeouts=timeouts or self._timeouts, events=self.events, map_error=self.map_error)

    async def _open(self, method: str, models: Sequence[str], url_for: Callable[[str], str],
                    body_for: Callable[[str], bytes | None], headers: dict[str, str] | None = None,
                    timeouts: Timeouts | None = None) -> tuple[aiohttp.ClientResponse, str]:
        """Try each model of the chain, retrying each per the policy (providers/upstream.py)."""
        return await open_chain(models,
                                lambda m: self._attempt(method, url_for(m), body_for(m), headers, m, timeouts),
                                self.retry_policy, self.events)

    async def stream_generate(self, model: str, body: bytes, headers: dict[str, str] | None = None,
                              body_for: Callable[[str], bytes] | None = None) -> GeminiStream:
        """Open a streamed generation for `model` or, on 429/503/timeout, its fallbacks.

        `body_for(model)` rebuilds the request for a fallback model (thinking settings differ by
        model family); without it the same body is sent. `GeminiStream.model` is the model used.
        """
        resp, used = await self._open_generation(model, body, self._stream_url, headers, body_for)
        return self.make_stream(resp, used)

    async def generate(self, model: str, body: bytes, headers: dict[str, str] | None = None,
                       body_for: Callable[[str], bytes] | None = None) -> GeminiAnswer:
        """`stream_generate` for a client that wants one answer: generateContent, whose one JSON
        body replaces ~20 SSE events to split, parse and translate. Same retries and fallbacks;
        returns once Gemini's status line (so the whole answer) is in, within the answer timeout."""
        resp, used = await self._open_generation(model, body, self._generate_url, headers, body_for,
                                                 self._answer_timeouts)
        return GeminiAnswer(resp, used)

    async def _open_generation(self, model: str, body: bytes, url_for: Callable[[str], str],
                               headers: dict[str, str] | None, body_for: Callable[[str], bytes] | None,
                               timeouts: Timeouts | None = None) -> tuple[aiohttp.ClientResponse, str]:
        chain = model_chain(model, self.fallbacks)

        def build(m: str) -> bytes:
            return body if m == model or body_for is None else body_for(m)

        return await self._open("POST", chain, url_for, build, headers, timeouts)

    def make_stream(self, resp: aiohttp.ClientResponse, model: str) -> GeminiStream:
        return GeminiStream(resp, model)

    def _stream_url(self, model: str) -> str:
        return f"{self.base}/{model_path(model, 'streamGenerateContent')}?alt=sse"

    def _generate_url(self, model: str) -> str:
        return f"{self.base}/{model_path(model, 'generateContent')}"

    async def call_json(self, method: str, path: str, body: Any = None) -> Any:
        """A non-streaming call (models, embeddings, countTokens): parsed JSON or ProxyError."""
        data = jsonutil.dumps(body) if body is not None else None
        url = f"{self.base}/{path}"
        resp, _ = await self._open(method, (path.partition(":")[0].removeprefix("models/"),),
                                   lambda _m: url, lambda _m: data)
        return await read_json_answer(resp, self.upstream_name)


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

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return sse_events(self._resp, self.parse_event, self.upstream_name)

    def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The chunks of each network read together (see upstream.sse_batches)."""
        return sse_batches(self._resp, self.parse_event, self.upstream_name)

    @staticmethod
    def parse_event(line: bytes) -> dict[str, Any]:
        return _chunk(line[5:])  # after `data:`


class GeminiAnswer(GeminiStream):
    """generateContent's one JSON body as a stream of one chunk: the whole answer is a
    GenerateContentResponse like a stream chunk with every part in it, so it goes through the
    same translator and end-of-answer checks as a stream (a body without finishReason is still
    an incomplete answer). Parsed once, with orjson; read under the idle timeout."""

    __slots__ = ()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        yield _chunk(await read_body(self._resp, self.upstream_name))

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        yield [_chunk(await read_body(self._resp, self.upstream_name))]


def _chunk(raw: bytes) -> dict[str, Any]:
    """One Gemini chunk (a `data:` payload, or generateContent's whole body) -> the dict; an error
    object or bad JSON ends the answer."""
    try:
        chunk = jsonutil.loads(raw)
    except jsonutil.JSONDecodeError:
        raise UpstreamStreamError("Gemini sent a malformed stream chunk.") from None
    if not isinstance(chunk, dict):
        raise UpstreamStreamError("Gemini sent a malformed stream chunk.")
    if "error" in chunk and "candidates" not in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {}
        status = 503 if err.get("code") == 503 else 502
        raise UpstreamStreamError(f"Gemini failed mid-stream: {err.get('message', 'unknown error')}", status)
    return chunk
