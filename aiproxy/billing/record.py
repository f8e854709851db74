"""The shape of one metered request, shared by the handlers, the meter and the ledger.

`Metering` is the mutable accumulator a handler fills while it streams; `UsageRecord` is the
frozen row the meter hands to the ledger once the request has finished (in any way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

# Status values stored in the ledger.
OK = "ok"
CLIENT_DISCONNECTED = "client_disconnected"
UPSTREAM_ERROR = "upstream_error"
CONTENT_FILTER = "content_filter"
INTERNAL_ERROR = "internal_error"  # the proxy failed after Gemini started: billed as far as known


@dataclass(slots=True)
class Metering:
    """Per-request usage accumulator; the handler updates it, the meter reads it once."""

    request_id: str  # the server's id (unique); never the client's
    user: str
    requested_model: str
    upstream_model: str
    endpoint: str = "chat"  # "chat" | "embeddings"
    provider: str = "gemini"  # the provider that served (after fallbacks): its routing prefix
    client_request_id: str | None = None  # the client's X-Request-ID: a label, not unique
    streamed: bool = False
    key_id: str | None = None
    end_user: str | None = None  # label under a client key (body user/user_id when keys exist)
    prompt_tokens: int = 0
    completion_tokens: int = 0  # includes reasoning tokens: Gemini bills thoughts as output
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    audio_prompt_tokens: int = 0
    cached_audio_tokens: int = 0  # the audio part of cached_tokens (priced at the cached-audio rate)
    cache_write_tokens: int = 0  # part of prompt written to the upstream's cache (5-minute write rate)
    cache_write_1h_tokens: int = 0  # part of prompt written to a 1-hour cache
    total_tokens: int = 0
    reported: bool = False  # True once Gemini's usageMetadata was seen
    status: str = OK
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    prompt_chars: int = 0  # for estimates when Gemini never reported usage
    prompt_estimate: int = 0  # billing.estimate of the whole prompt (text, media, tools); 0 = unknown
    output_chars: int = 0
    finished: bool = False  # set by the meter; guarantees one record per request
    cache_hit: bool = False  # served from the response cache: no upstream call (aiproxy/cache)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One ledger row. Money is Decimal; times are UTC."""

    request_id: str
    user: str
    key_id: str | None
    requested_model: str
    upstream_model: str
    endpoint: str
    streamed: bool
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    total_tokens: int
    cost_usd: Decimal
    status: str
    estimated: bool
    price_fallback: bool
    started_at: datetime
    duration_ms: float
    ttft_ms: float | None
    end_user: str | None = None
    audio_tokens: int = 0  # part of prompt_tokens billed at the audio rate; kept for repricing
    client_request_id: str | None = None  # the client's X-Request-ID (not unique, never a key)
    provider: str = "gemini"  # who served upstream_model; rows spooled before migration 5 were Gemini's
    cache_hit: bool = False  # migration 7: a response-cache hit; cost_usd is then what the hit was charged
    cache_savings_usd: Decimal = Decimal(0)  # migration 7: a hit's full cost minus its charge
