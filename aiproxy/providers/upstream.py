"""What every HTTP provider does the same way: one attempt up to the status line, the retry and
fallback loop around it, and reading an SSE body's `data:` lines (or a whole JSON body).

Kept out of the providers' packages so Gemini, OpenAI and any OpenAI-compatible server share
one implementation of the rules in aiproxy/providers/retry.py: retries and fallbacks happen only
before the first byte reaches the client; 429/500/503 and connection errors are retried on the
same model, 429/503 and first-byte timeouts move to the next model of the chain; Retry-After is
honoured; each attempt is reported to `UpstreamEvents`. A provider passes its name (for
messages) and its own mapping from an upstream error status and body to the client's error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.providers.base import UpstreamEvents, UpstreamStreamError
from aiproxy.providers.retry import FALLBACK_STATUSES, RETRY_STATUSES, RetryPolicy, upstream_retry_after

log = logging.getLogger("aiproxy.providers.upstream")

ErrorMapper = Callable[[int, dict[str, Any], Mapping[str, str]], ProxyError]


class UpstreamSession:
    """The one aiohttp session of a provider's client, for the life of the app, carrying the
    provider's fixed headers (its key among them: never in a URL that could be logged).

    No cookie jar: upstreams set none we need, and one shared jar would carry a cookie from one
    user's request into the next (also ~µs saved per request).
    """

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
                headers=self._headers, json_serialize=jsonutil.dumps_str, cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True)

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
            raise RuntimeError(f"{type(self).__name__}.start() was not awaited")
        return self._session


class AttemptFailed(Exception):
    """One attempt failed before the first byte; carries what the retry loop decides on."""

    def __init__(self, error: ProxyError, reason: str, retryable: bool, fallback: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason
        self.retryable = retryable
        self.fallback = fallback
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Timeouts:
    """`connect` for TCP/TLS, `first_byte` until the status line, then `idle` as the longest
    silence between two reads of the body."""

    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 60.0


async def attempt(session: aiohttp.ClientSession, method: str, url: str, body: bytes | None,
                  headers: dict[str, str] | None, *, model: str, upstream: str, timeouts: Timeouts,
                  events: UpstreamEvents, map_error: ErrorMapper) -> aiohttp.ClientResponse:
    """One request up to the upstream's status line; a 200 response, or `AttemptFailed`."""
    started = time.monotonic()
    try:
        timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect, sock_connect=timeouts.connect,
                                        sock_read=timeouts.first_byte)
        resp = await session.request(method, url, data=body, headers=headers, timeout=timeout)
    except TimeoutError:  # aiohttp's connect and first-byte (sock_read) timeouts
        err = ProxyError(504, f"{upstream} did not answer in time.", type="api_error", code="upstream_timeout")
        raise AttemptFailed(err, "timeout", retryable=False, fallback=True) from None
    except aiohttp.ClientError as exc:
        log.warning("upstream connection failed: %s", type(exc).__name__)
        err = ProxyError(502, f"Could not reach {upstream}.", type="api_error", code="upstream_unreachable")
        raise AttemptFailed(err, "connect", retryable=True, fallback=False) from None
    if resp.status == 200 or resp.status in RETRY_STATUSES:
        # Not for 400/404: a client-chosen bogus model name must not become a metric label.
        events.latency(model, time.monotonic() - started)
    if resp.status == 200:
        conn = resp.connection
        if conn is not None and conn.protocol is not None:
            conn.protocol.read_timeout = timeouts.idle  # the idle gap from now on (test_aiohttp_pins.py)
            conn.protocol.start_timeout()  # re-arm now, or a stall right after the headers waits the old timer
        return resp
    try:
        raw = await resp.read()
        body_json = jsonutil.loads(raw) if raw else {}
        if not isinstance(body_json, dict):
            body_json = body_json[0] if isinstance(body_json, list) and body_json else {}
        if not isinstance(body_json, dict):
            body_json = {}
    except Exception:  # noqa: BLE001 - an unreadable error body is mapped from its status alone
        body_json = {}
    finally:
        resp.release()
    status = resp.status
    raise AttemptFailed(map_error(status, body_json, resp.headers), str(status),
                        retryable=status in RETRY_STATUSES, fallback=status in FALLBACK_STATUSES,
                        retry_after=upstream_retry_after(body_json, resp.headers) if status in RETRY_STATUSES else None)


async def open_chain(models: Sequence[str], try_model: Callable[[str], Awaitable[aiohttp.ClientResponse]],
                     policy: RetryPolicy, events: UpstreamEvents) -> tuple[aiohttp.ClientResponse, str]:
    """Try each model of the chain, retrying each per the policy; the response and its model.

    Runs entirely before the first byte reaches the client, which is what makes a retry safe.
    Raises the last attempt's ProxyError when every model and retry is used up.
    """
    deadline = time.monotonic() + policy.deadline
    failure: AttemptFailed | None = None
    for index, model in enumerate(models):
        tries = 0
        while True:
            try:
                return await try_model(model), model
            except AttemptFailed as exc:
                failure = exc
            if failure.retryable or failure.fallback:  # bounded labels, as above
                events.failure(model, failure.reason)
            if not failure.retryable or tries >= policy.retries:
                break
            wait = policy.delay(tries, failure.retry_after)
            if wait is None or time.monotonic() + wait > deadline:
                break
            events.retry(model, failure.reason)
            await asyncio.sleep(wait)
            tries += 1
        if not failure.fallback or index + 1 >= len(models) or time.monotonic() >= deadline:
            break
        log.warning("model %s failed (%s); falling back to %s", model, failure.reason, models[index + 1])
        events.fallback(model, models[index + 1], failure.reason)
    assert failure is not None
    raise failure.error


async def sse_batches(resp: aiohttp.ClientResponse, parse: Callable[[bytes], Any],
                      upstream: str) -> AsyncIterator[list[Any]]:
    """`parse(line)` of each `data:` line of an SSE body, one list per network read.

    A consumer that translates a whole list and writes it to its client in one send pays one
    syscall per read instead of one per event: when the upstream is faster than the proxy, one
    read holds several events, and a streamed answer leaves in a few writes instead of twenty.
    When events arrive one per read (a model generating in real time), each still leaves at once.

    Whatever arrived is split into lines here: one await per network read instead of one
    readline() per SSE line. A partial last line waits in `pending` (joined once, so a long line
    such as an inline image costs linear time); at EOF it is parsed as is, so a truncated event is
    reported as malformed. An event that fails to parse ends the stream after the events before it
    have been handed on. Transport failures become UpstreamStreamError.
    """
    pending: list[bytes] = []
    try:
        async for data in resp.content.iter_any():
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
            batch: list[Any] = []
            for line in lines:
                if line.startswith(b"data:"):  # skip blank separators, comments, other fields
                    try:
                        batch.append(parse(line))
                    except UpstreamStreamError:
                        if batch:
                            yield batch
                        raise
            if batch:
                yield batch
        rest = b"".join(pending)
        if rest.startswith(b"data:"):
            yield [parse(rest)]
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise broken_stream(exc, upstream) from None


async def read_json_answer(resp: aiohttp.ClientResponse, upstream: str) -> Any:
    """A buffered call's parsed JSON (models, embeddings, countTokens), the connection released;
    an unreadable answer is a 502 naming the upstream."""
    try:
        return jsonutil.loads(await resp.read())
    except (aiohttp.ClientError, jsonutil.JSONDecodeError):
        raise ProxyError(502, f"{upstream} sent an unreadable answer.", type="api_error",
                         code="upstream_error") from None
    finally:
        resp.release()


async def read_body(resp: aiohttp.ClientResponse, upstream: str) -> bytes:
    """The whole body of a 200 answer (one JSON, not a stream), read under the idle timeout that
    `attempt` armed; a failure while reading is reported exactly as a broken stream."""
    try:
        return await resp.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise broken_stream(exc, upstream) from None


def broken_stream(exc: BaseException, upstream: str) -> UpstreamStreamError:
    """A transport failure after the status line, as the client should see it."""
    if isinstance(exc, TimeoutError):  # before ClientError: aiohttp's ServerTimeoutError is both
        return UpstreamStreamError(f"{upstream} stopped sending (idle timeout).", 504, "upstream_timeout")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamStreamError(f"{upstream}'s stream ended early.")
    return UpstreamStreamError(f"The connection to {upstream} broke mid-stream.")


async def sse_events(resp: aiohttp.ClientResponse, parse: Callable[[bytes], Any],
                     upstream: str) -> AsyncIterator[Any]:
    """The events of `sse_batches` one at a time, for readers that need no batching."""
    async for batch in sse_batches(resp, parse, upstream):
        for event in batch:
            yield event


class SessionLifecycle:
    """A provider's start/close/is_open, handed to its client's UpstreamSession."""

    client: UpstreamSession

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    @property
    def is_open(self) -> bool:
        return self.client.is_open


class TranslatedChatStream:
    """The `ChatStream` shared by providers that feed an upstream event stream through a
    stateful translator (Gemini, Anthropic): the translator's chunks, closing chunks and output
    size; close/release go to the upstream stream. Subclasses add `usage()` (their usage reading)
    and the message for an answer cut off before the translator saw its end (`translator.ended`).
    """

    __slots__ = ("_upstream", "_translator", "model")
    cut_off_message = "The upstream's stream ended before the answer was complete."

    def __init__(self, upstream: Any, translator: Any) -> None:
        self._upstream = upstream
        self._translator = translator
        self.model: str = upstream.model

    async def __aiter__(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Per upstream event one `translator.feed`, in the one async generator that also reads
        the SSE; the chunks of one network read are yielded together, so the handler writes
        them to its client in one send."""
        translator = self._translator
        feed = translator.feed  # bound once: no method lookup per event
        async for batch in self._upstream.batches():
            out: list[dict[str, Any]] = []
            try:
                for event in batch:
                    got = feed(event)
                    if got:
                        out += got
            except Exception:  # a translator fault: what it translated before still goes out first
                if out:
                    yield out
                raise
            if out:
                yield out
        if not translator.ended:
            raise UpstreamStreamError(self.cut_off_message)

    def finish(self) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = self._translator.finish()
        return chunks

    @property
    def output_chars(self) -> int:
        chars: int = self._translator.output_chars
        return chars

    def close(self) -> None:
        self._upstream.close()

    def release(self) -> None:
        self._upstream.release()
