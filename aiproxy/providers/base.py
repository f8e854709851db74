"""The provider seam: what the OpenAI-side handlers need from an upstream, and nothing more.

Like httpx's `BaseTransport` beside its `Client`, a provider has one small job: turn a validated
OpenAI chat request into a stream of OpenAI `chat.completion.chunk` dicts plus usage counts;
embed texts; list its models. Validation, folding chunks into one body, SSE framing, metering
and billing sit above it (aiproxy/api, aiproxy/openai, aiproxy/billing) and import only this
module, never a provider's package. Adding a provider is adding a package under
aiproxy/providers/ that implements `Provider`, and one entry in `aiproxy.providers.registry`.

The streaming hot path crosses this seam once per upstream event: `ChatStream` yields the
translated chunk lists itself, so the handler's per-chunk work is one write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiproxy.openai.types import ChatRequest
    from aiproxy.providers.retry import Fallbacks, RetryPolicy

Chunk = dict[str, Any]  # one OpenAI `chat.completion.chunk`


@dataclass(frozen=True, slots=True)
class UsageCounts:
    """Token counts in OpenAI's terms, validated by the provider; `problems` names every count
    it had to correct (the meter then flags the row as estimated)."""

    prompt: int
    completion: int  # reasoning included: thoughts are billed as output
    total: int
    reasoning: int
    cached: int  # part of prompt served from a cache
    audio: int  # part of prompt that is audio
    cached_audio: int  # part of cached that is audio
    problems: tuple[str, ...] = ()
    # part of prompt written to the upstream's cache (Anthropic's cache_creation_input_tokens; 5-minute rate)
    cache_write: int = 0
    cache_write_1h: int = 0  # part of prompt written to a 1-hour cache (its own rate), apart from cache_write


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """How the OpenAI answer is shaped, decided by the handler for every provider alike."""

    completion_id: str  # the `id` of every chunk
    include_usage: bool = False  # a usage-only closing chunk (stream_options.include_usage)
    think_tags: bool = False  # thoughts as `<think>` in content instead of `reasoning_content`
    max_tool_calls: int | None = None  # 1 when the client sent parallel_tool_calls: false
    # False when the client wants one answer (buffered): a provider may then ask its upstream for
    # one body instead of a stream (Gemini's generateContent); the chunks it yields are the same.
    stream: bool = True


class UpstreamStreamError(Exception):
    """The upstream stream broke after it had started (reset, bad JSON, stall, error event)."""

    def __init__(self, message: str, status: int = 502, code: str = "upstream_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class UpstreamEvents:
    """What a provider reports about its attempts; the metrics module overrides these no-ops.

    Kept as plain method calls (no logging formatting, no allocation) since they run per attempt.
    """

    def latency(self, model: str, seconds: float) -> None:
        """Time from sending a request upstream to the upstream's status line."""

    def retry(self, model: str, reason: str) -> None:
        """Another attempt on the same model after `reason` (a status code or "connect")."""

    def fallback(self, from_model: str, to_model: str, reason: str) -> None:
        """The next model of the fallback chain is tried after `reason`."""

    def failure(self, model: str, reason: str) -> None:
        """An attempt failed before the first byte (`reason`: status code, "timeout", "connect")."""


class ChatStream(Protocol):
    """One upstream generation, already answering: iterate it once, then `finish()`.

    Iterating yields non-empty lists of OpenAI chunks as the upstream sends them and raises
    UpstreamStreamError when the stream breaks or ends before the answer is complete.
    """

    model: str  # the model that answered (a fallback when the requested one had no capacity)

    def __aiter__(self) -> AsyncIterator[list[Chunk]]: ...

    def finish(self) -> list[Chunk]:
        """The closing chunks (finish reasons, usage), once, after a complete stream."""
        ...

    @property
    def output_chars(self) -> int:
        """Characters of answer text seen so far (for estimates when usage never arrives)."""
        ...

    def usage(self) -> UsageCounts | None:
        """The upstream's usage counts so far, None when it reported none."""
        ...

    def close(self) -> None:
        """Drop the connection: the client left, so the upstream should stop generating."""
        ...

    def release(self) -> None:
        """Return the connection to the pool (always called at the end)."""
        ...


class ChatCall(Protocol):
    """A chat request translated for one provider and model, not yet sent."""

    async def open(self) -> ChatStream:
        """Send it (retries and fallbacks included, all before the first byte); ProxyError when
        the upstream refuses."""
        ...


class Provider(Protocol):
    name: str  # the routing prefix: `gemini/...`
    owned_by: str  # `owned_by` of its models in GET /v1/models

    def prepare_chat(self, req: ChatRequest, upstream_model: str, options: ChatOptions) -> ChatCall:
        """Translate `req` (pure, no I/O): a request the provider cannot take is a ProxyError
        here, before anything is spent or metered."""
        ...

    def embed(self, model: str, texts: list[str],
              dims: int | None) -> AsyncIterator[tuple[list[str], list[list[float]]]]:
        """Each upstream call's texts and vectors, in order, as the upstream answers them."""
        ...

    async def count_tokens(self, model: str, texts: list[str]) -> int | None:
        """The upstream's own token count for `texts`, None when it cannot count them."""
        ...

    async def list_models(self) -> list[str]:
        """The upstream's usable model ids (cached); empty when it cannot be reached."""
        ...

    def configure(self, retry_policy: RetryPolicy, fallbacks: Fallbacks, events: UpstreamEvents) -> None:
        """Retries, fallback chains and attempt events, from the operator's settings."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def is_open(self) -> bool:
        """For readiness: the provider's session exists and has not been closed."""
        ...
