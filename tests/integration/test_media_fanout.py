"""Remote image fan-out: a cap per request, bounded concurrency, one deadline, one pooled session.

A local image server counts what the proxy does to it: requests, how many were in flight at
once, and which client connections they came on (loopback is allowed by
MEDIA_FETCH_ALLOW_PRIVATE, as in test_media_sdk.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy.media.fetch import _PinnedResolver
from tests.integration.test_media_sdk import MODEL, last_parts
from tests.unit.test_translate_media import PNG, b64


@dataclass
class ImageServer:
    server: TestServer
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: set[Any] = field(default_factory=set)
    delay: float = 0.0  # seconds each answer takes
    hold_until: int = 0  # hold answers until this many are in flight at once (at most 1 s)
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))


@pytest.fixture
async def images() -> AsyncIterator[ImageServer]:
    state: ImageServer

    async def image(request: web.Request) -> web.Response:
        state.requests += 1
        state.connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.in_flight >= state.hold_until:
                state.enough.set()
            if state.hold_until:
                try:
                    await asyncio.wait_for(state.enough.wait(), 1.0)
                except TimeoutError:
                    pass
            await asyncio.sleep(state.delay)
            if request.match_info["name"] == "missing.png":
                raise web.HTTPNotFound()
            return web.Response(body=PNG, content_type="image/png")
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_get("/{name}", image)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state = ImageServer(server)
    yield state
    await server.close()


def body_with_images(urls: list[str]) -> dict[str, Any]:
    parts = [{"type": "text", "text": "Describe"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"model": MODEL, "messages": [{"role": "user", "content": parts}]}


async def post_chat(http: Any, proxy: TestServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        return resp.status, await resp.json()


async def test_twenty_remote_images_are_fetched_four_at_a_time(proxy_factory: Any, images: ImageServer, http: Any,
                                                               emulator: Any) -> None:
    proxy = await proxy_factory(media_fetch_allow_private=True, max_remote_media=20, media_fetch_timeout=60)
    images.hold_until = 4  # each answer waits until four fetches overlap (or 1 s passed)
    status, _ = await post_chat(http, proxy, body_with_images([images.url(f"{n}.png") for n in range(20)]))
    assert status == 200
    assert (images.requests, images.max_in_flight) == (20, 4)
    parts = await last_parts(http, emulator)
    assert parts[1:] == [{"inlineData": {"mimeType": "image/png", "data": b64(PNG)}}] * 20


async def test_more_remote_images_than_the_cap_is_a_400_before_any_fetch(proxy_factory: Any, images: ImageServer,
                                                                        http: Any) -> None:
    proxy = await proxy_factory(media_fetch_allow_private=True)  # MAX_REMOTE_MEDIA default: 16
    status, body = await post_chat(http, proxy, body_with_images([images.url(f"{n}.png") for n in range(17)]))
    assert status == 400
    err = body["error"]
    assert (err["code"], err["param"]) == ("too_many_remote_media", "messages[0].content[17].image_url")
    assert "at most 16" in err["message"]
    assert images.requests == 0


async def test_one_deadline_covers_all_remote_images_of_a_request(proxy_factory: Any, images: ImageServer,
                                                                  http: Any) -> None:
    """Three images of 0.6 s each, one at a time, under a 1 s deadline: each alone would fit."""
    proxy = await proxy_factory(media_fetch_allow_private=True, media_fetch_timeout=1, media_fetch_concurrency=1)
    images.delay = 0.6
    status, body = await post_chat(http, proxy, body_with_images([images.url(f"{n}.png") for n in range(3)]))
    assert status == 400
    err = body["error"]
    assert err["code"] == "image_fetch_failed" and "within 1 s" in err["message"]
    assert err["param"] in {f"messages[0].content[{j}].image_url" for j in (1, 2, 3)}


async def test_one_failed_image_fails_the_request_naming_it(proxy_factory: Any, images: ImageServer, http: Any) -> None:
    proxy = await proxy_factory(media_fetch_allow_private=True, media_fetch_timeout=60)
    images.hold_until = 99  # the good images hang (1 s) while the missing one fails at once
    urls = [images.url("a.png"), images.url("missing.png"), images.url("b.png")]
    status, body = await post_chat(http, proxy, body_with_images(urls))
    assert status == 400
    err = body["error"]
    assert (err["code"], err["param"]) == ("image_fetch_failed", "messages[0].content[2].image_url")
    assert "HTTP 404" in err["message"]


async def test_remote_images_of_later_requests_reuse_the_pooled_connection(proxy_factory: Any, images: ImageServer,
                                                                           http: Any) -> None:
    proxy = await proxy_factory(media_fetch_allow_private=True)
    for n in range(3):
        status, _ = await post_chat(http, proxy, body_with_images([images.url(f"{n}.png")]))
        assert status == 200
    assert images.requests == 3 and len(images.connections) == 1


async def test_concurrent_remote_images_share_one_byte_budget(proxy_factory: Any, images: ImageServer,
                                                              http: Any) -> None:
    proxy = await proxy_factory(media_fetch_allow_private=True, max_media_bytes=len(PNG) * 3)
    status, body = await post_chat(http, proxy, body_with_images([images.url(f"{n}.png") for n in range(4)]))
    assert status == 413 and body["error"]["code"] == "media_too_large"


async def test_the_shared_resolver_answers_for_a_host_only_while_a_checked_fetch_holds_it() -> None:
    pins = _PinnedResolver()
    with pins.pin("cdn.example", ["93.184.216.34"]):
        with pins.pin("cdn.example", ["93.184.216.35"]):  # a second request's newer check
            assert [r["host"] for r in await pins.resolve("cdn.example", 443)] == ["93.184.216.35"]
        assert [r["host"] for r in await pins.resolve("cdn.example", 443)] == ["93.184.216.35"]
    with pytest.raises(OSError):
        await pins.resolve("cdn.example", 443)
