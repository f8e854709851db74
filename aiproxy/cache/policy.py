"""HIT, MISS or BYPASS for one chat, Responses or embeddings request, and storing a complete
answer afterwards.

`Cache-Control: no-cache` skips the lookup but stores the answer; `no-store` neither looks up
nor stores (BYPASS). Only a complete answer is stored: it ended `ok` (not broken off, not an
error) and every choice finished with `stop` or `tool_calls` (not cut by the token limit, which
the Responses API calls `incomplete`, and not content-filtered). Chat and Responses requests
share entries: both keep the chat answer of the same translated request (aiproxy/cache/key.py).
The X-Cache header is added to every response of those endpoints while the cache is on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from aiproxy import jsonutil
from aiproxy.billing.record import OK, Metering
from aiproxy.cache.key import cache_key
from aiproxy.cache.store import CacheStore, MemoryStore, RedisStore

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
CACHED_PATHS = frozenset({"/v1/chat/completions", "/chat/completions", "/v1/responses", "/responses",
                          "/v1/embeddings", "/embeddings"})
COMPLETE = frozenset({"stop", "tool_calls"})  # finish reasons of an answer worth replaying

LOOKUPS = Counter("aiproxy_response_cache_lookups_total",
                  "Response cache outcomes of chat, Responses and embeddings requests.", ["result"])
SAVED = Counter("aiproxy_response_cache_saved_usd_total",
                "USD not spent upstream thanks to cache hits, minus what hits were charged (float; the ledger "
                "keeps exact Decimals).")


@dataclass
class Plan:
    key: str
    status: str  # HIT | MISS | BYPASS
    store: bool  # store the answer once it completed
    hit: dict[str, Any] | None = None  # the cached answer (a chat.completion body, or embeddings)


PLAN_KEY: web.RequestKey[Plan] = web.RequestKey("response_cache_plan")  # this request's Plan


class ResponseCache:
    def __init__(self, store: CacheStore | None, scope: str) -> None:
        self.store, self.scope = store, scope

    @property
    def enabled(self) -> bool:
        return self.store is not None

    async def lookup(self, request: web.Request, shape: dict[str, Any], provider: str, upstream_model: str,
                     user: str) -> Plan | None:
        """The plan for this request (None while the cache is off); a hit carries the cached body.
        `shape`: everything in the request that shapes the answer (key.answer_shape for chat and
        Responses). A store that cannot answer is a miss (store.py), never an error."""
        if self.store is None:
            return None
        directives = {d.strip().lower() for d in request.headers.get("Cache-Control", "").split(",")}
        scope = "*" if self.scope == "global" else "user:" + user
        plan = Plan(cache_key(provider, upstream_model, shape, scope), MISS, store=True)
        if "no-store" in directives:
            plan.status, plan.store = BYPASS, False
        elif "no-cache" not in directives:
            cached = await self.store.get(plan.key)
            if cached is not None:
                plan.status, plan.store, plan.hit = HIT, False, jsonutil.loads(cached)
        LOOKUPS.labels(plan.status.lower()).inc()
        request[PLAN_KEY] = plan
        return plan

    async def remember(self, request: web.Request, m: Metering, body: dict[str, Any]) -> None:
        """Store a finished chat answer (the `chat.completion` fold, for chat and Responses alike)
        when this request's plan says so and it is complete and ok."""
        plan: Plan | None = request.get(PLAN_KEY)
        if self.store is None or plan is None or not plan.store or m.status != OK or not body.get("choices"):
            return
        if any(c.get("finish_reason") not in COMPLETE for c in body["choices"]):
            return
        if body.get("usage") is None:  # the upstream reported none: the metered counts
            body = {**body, "usage": {"prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
                                      "total_tokens": m.prompt_tokens + m.completion_tokens,
                                      "prompt_tokens_details": {"cached_tokens": m.cached_tokens},
                                      "completion_tokens_details": {"reasoning_tokens": m.reasoning_tokens}}}
        await self.store.put(plan.key, jsonutil.dumps(body))

    async def remember_embeddings(self, request: web.Request, m: Metering, answer: dict[str, Any]) -> None:
        """Store a whole, ok embeddings answer (float vectors and usage) when the plan says so."""
        plan: Plan | None = request.get(PLAN_KEY)
        if self.store is not None and plan is not None and plan.store and m.status == OK:
            await self.store.put(plan.key, jsonutil.dumps(answer))

    def wants_chunks(self, request: web.Request) -> bool:
        plan: Plan | None = request.get(PLAN_KEY)
        return plan is not None and plan.store

    async def add_header(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: X-Cache on every chat, Responses and embeddings response while the cache is on."""
        if self.store is None or request.path not in CACHED_PATHS:
            return
        plan: Plan | None = request.get(PLAN_KEY)
        response.headers["X-Cache"] = plan.status if plan is not None else BYPASS

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        yield
        if self.store is not None:
            await self.store.close()


def build_response_cache(settings: Any) -> ResponseCache:
    mode = settings.response_cache
    store: CacheStore | None = None
    if mode == "memory":
        store = MemoryStore(settings.response_cache_ttl, settings.response_cache_max_bytes)
    elif mode == "redis":
        if not settings.redis_url:
            raise ValueError("RESPONSE_CACHE=redis needs REDIS_URL")
        store = RedisStore(settings.redis_url, settings.redis_key_prefix, settings.response_cache_ttl)
    return ResponseCache(store, settings.response_cache_scope)
