"""Media through the official openai SDK against the emulator, and the remote-image SSRF guard."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy.errors import ProxyError
from aiproxy.media.fetch import RemoteImageFetcher
from tests.conftest import recorded_requests
from tests.unit.test_translate_media import JPEG, M4A, PDF, PNG, b64

MODEL = "gemini-2.5-flash"


def data_url(raw: bytes, label: str) -> str:
    return f"data:{label};base64,{b64(raw)}"


async def last_parts(http: aiohttp.ClientSession, emulator: TestServer) -> list[dict[str, Any]]:
    recorded = await recorded_requests(http, emulator)
    return recorded[-1]["body"]["contents"][-1]["parts"]


async def test_image_question_with_wrong_label_reaches_gemini_as_png(openai_client: Any, http: Any,
                                                                     emulator: Any) -> None:
    reply = await openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": data_url(PNG, "image/jpeg")}},
    ]}])
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 258  # the emulator bills an image as 258 tokens
    parts = await last_parts(http, emulator)
    assert parts == [{"text": "What is in this picture?"}, {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}}]


async def test_audio_question_m4a_labelled_mp3_reaches_gemini_as_audio_mp4(openai_client: Any, http: Any,
                                                                           emulator: Any) -> None:
    stream = await openai_client.chat.completions.create(model=MODEL, stream=True,
                                                         messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": b64(M4A), "format": "mp3"}},
    ]}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    assert await last_parts(http, emulator) == [{"inlineData": {"mimeType": "audio/mp4", "data": b64(M4A)}}]


async def test_pdf_question_reaches_gemini_as_inline_pdf(openai_client: Any, http: Any, emulator: Any) -> None:
    reply = await openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"file_data": data_url(PDF, "application/pdf"), "filename": "r.pdf"}},
    ]}])
    assert reply.choices[0].message.content
    assert (await last_parts(http, emulator))[1] == {"inlineData": {"mimeType": "application/pdf", "data": b64(PDF)}}


async def test_invalid_base64_is_a_400_naming_the_part(openai_client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,!!!"}}]}])
    assert info.value.body["param"] == "messages[0].content[1].image_url"


async def test_media_over_the_limit_is_a_413(proxy_factory: Any, http: Any) -> None:
    proxy = await proxy_factory(max_media_bytes=1000)
    big = JPEG + b"\x00" * 600
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(big, "image/jpeg")}},
        {"type": "image_url", "image_url": {"url": data_url(big, "image/jpeg")}}]}]}
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        assert resp.status == 413
        err = (await resp.json())["error"]
    assert err["code"] == "media_too_large" and "1000 bytes" in err["message"]


@pytest.fixture
async def image_server() -> Any:
    async def png(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def huge(_: web.Request) -> web.Response:
        return web.Response(body=PNG + b"\x00" * 5000, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", png)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/huge.png", huge)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_remote_image_from_loopback_is_fetched_when_allowed(proxy_factory: Any, image_server: Any, http: Any,
                                                                  emulator: Any) -> None:
    proxy = await proxy_factory(media_fetch_allow_private=True)
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="k", max_retries=0)
    url = str(image_server.make_url("/cat.png"))
    reply = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": url}}]}])
    await client.close()
    assert reply.choices[0].message.content
    assert (await last_parts(http, emulator))[1] == {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}}


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x.png", "http://10.1.2.3/x.png", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/x.png", "http://[::ffff:127.0.0.1]/x.png", "http://224.0.0.1/x.png", "http://0.0.0.0/x.png",
    "http://[2002:7f00:1::]/x.png", "http://[64:ff9b::a9fe:a9fe]/latest",  # 6to4, NAT64 of private IPv4
])
async def test_ssrf_private_addresses_are_refused_with_400(openai_client: Any, url: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}])
    assert info.value.body["code"] == "image_url_refused"
    assert info.value.body["param"] == "messages[0].content[0].image_url"


async def _resolve_to_loopback(host: str) -> list[str]:
    return {"innocent.example": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "10.0.0.5"]}[host]


@pytest.mark.parametrize("host", ["innocent.example", "mixed.example"])
async def test_hostname_resolving_to_private_address_is_refused(host: str) -> None:
    async with RemoteImageFetcher(max_bytes=10_000, timeout=5, resolver=_resolve_to_loopback) as fetcher:
        with pytest.raises(ProxyError) as info:
            await fetcher.fetch(f"http://{host}/cat.png", "p", 10_000)
    assert (info.value.status, info.value.code) == (400, "image_url_refused")


async def test_redirect_to_a_refused_address_is_refused(image_server: Any) -> None:
    port = image_server.port
    async with RemoteImageFetcher(max_bytes=10_000, timeout=5, resolver=_resolve_to_loopback,
                                  address_allowed=lambda ip: ip == "127.0.0.1") as fetcher:
        target = f"http://innocent.example:{port}/cat.png"
        ok_type, ok_body = await fetcher.fetch(str(image_server.make_url(f"/redirect?to={target}")), "p", 10_000)
        assert ok_body == PNG  # a redirect to an allowed address is followed
        fetcher.resolver = _resolve_private_only
        with pytest.raises(ProxyError) as info:
            await fetcher.fetch(str(image_server.make_url(f"/redirect?to=http://inner.example:{port}/cat.png")),
                                "p", 10_000)
    assert info.value.code == "image_url_refused"


async def _resolve_private_only(host: str) -> list[str]:
    return ["10.0.0.7"]


async def test_too_many_redirects_is_a_400(image_server: Any) -> None:
    url = str(image_server.make_url("/cat.png"))
    for _ in range(4):
        url = str(image_server.make_url("/redirect").with_query(to=url))
    async with RemoteImageFetcher(max_bytes=10_000, timeout=5, allow_private=True) as fetcher:
        with pytest.raises(ProxyError) as info:
            await fetcher.fetch(url, "p", 10_000)
    assert info.value.status == 400 and "redirects" in info.value.message


async def test_remote_image_larger_than_the_budget_is_a_413(image_server: Any) -> None:
    async with RemoteImageFetcher(max_bytes=1000, timeout=5, allow_private=True) as fetcher:
        with pytest.raises(ProxyError) as info:
            await fetcher.fetch(str(image_server.make_url("/huge.png")), "p", 1000)
    assert info.value.status == 413


async def test_remote_image_timeout_is_a_400_saying_it_could_not_be_fetched() -> None:
    import asyncio

    async def slow(_: web.Request) -> web.Response:
        await asyncio.Event().wait()  # never answers; the fetcher's own timeout ends it
        return web.Response()

    app = web.Application()
    app.router.add_get("/slow", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with RemoteImageFetcher(max_bytes=1000, timeout=0.2, allow_private=True) as fetcher:
            with pytest.raises(ProxyError) as info:
                await fetcher.fetch(str(server.make_url("/slow")), "p", 1000)
    finally:
        await server.close()
    assert info.value.status == 400 and "could not be fetched" in info.value.message


async def test_rate_limited_client_does_not_make_the_proxy_fetch_images(proxy_factory: Any, image_server: Any,
                                                                         http: Any) -> None:
    """Limits run before media are fetched: a refused key cannot use the proxy as a fetcher."""
    from tests.access.conftest import add_key, bearer

    proxy = await proxy_factory(media_fetch_allow_private=True)
    key, _ = await add_key(proxy, rpm=1)
    url = str(image_server.make_url("/cat.png"))
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": url}}]}]}
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body, headers=bearer(key)) as resp:
        assert resp.status == 200
    assert image_server.handler.requests_count == 1
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body, headers=bearer(key)) as resp:
        assert resp.status == 429
    assert image_server.handler.requests_count == 1
