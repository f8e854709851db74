"""The memory store of the response cache: bounded in bytes (least recently used goes first), and
an entry past its TTL is a miss; the key ignores what only changes delivery."""

from __future__ import annotations

import pytest

from aiproxy.cache.key import answer_shape, cache_key
from aiproxy.cache.store import MemoryStore
from aiproxy.openai.types import parse_chat_request


async def test_lru_evicts_the_least_recently_used_by_bytes() -> None:
    store = MemoryStore(ttl=60, max_bytes=2048)
    await store.put("a", b"x" * 900)
    await store.put("b", b"y" * 900)
    assert await store.get("a") == b"x" * 900  # a is now the most recent
    await store.put("c", b"z" * 900)  # over 2048 bytes: b goes
    assert await store.get("b") is None
    assert await store.get("a") is not None and await store.get("c") is not None
    await store.put("huge", b"h" * 4096)  # larger than the whole cache: not kept, nothing evicted
    assert await store.get("huge") is None and await store.get("a") is not None


async def test_expired_entries_are_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiproxy.cache.store as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    store = MemoryStore(ttl=10, max_bytes=4096)
    await store.put("k", b"v")
    now[0] += 9
    assert await store.get("k") == b"v"
    now[0] += 2
    assert await store.get("k") is None


def test_key_is_canonical_and_covers_what_shapes_the_answer() -> None:
    def key(scope: str = "user:u", **extra: object) -> str:
        req = parse_chat_request({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra})
        return cache_key("gemini", "gemini-2.5-flash", answer_shape(req), scope)

    assert key() == key(stream=True, stream_options={"include_usage": True}) == key(user="someone")
    assert key(temperature=0.2, seed=1) == key(seed=1, temperature=0.2)
    assert len({key(), key(temperature=0.2), key(seed=1), key(n=2), key(stop=["x"]), key(max_tokens=5),
                key(scope="*"), key(response_format={"type": "json_object"})}) == 8
