"""The async pre-pass before translation: inline remote images and enforce the media size limit.

Translation is pure and sync, so an `image_url` with an http(s) URL is fetched here first and
replaced with a data URL. Fetching a URL a client names is an SSRF hole unless every address is
checked: hostnames are resolved, EVERY resolved address must be public (aiproxy.media.public_address),
and the connection is pinned to exactly the addresses that were checked (a custom aiohttp resolver
hands out only those), so DNS rebinding cannot swap in an internal address between the check and
the connect. Redirects are followed by hand, at most 3, each target checked the same way.

One request cannot turn the proxy into a slow crawler: at most `max_remote` URLs per request
(checked before anything is fetched), fetched `concurrency` at a time, all under ONE deadline, on
ONE pooled session that lives as long as the app (keep-alive connections are reused; the pinned
resolver is shared, and only ever holds addresses that passed the check). The session keeps no
cookies, so one client's fetch never carries what another client's host set.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from aiproxy.appkeys import CHAT_REQUEST_KEY
from aiproxy.billing.record import Metering
from aiproxy.config import Settings
from aiproxy.errors import ProxyError, bad_request
from aiproxy.media.public_address import is_public_address
from aiproxy.media.sniff import decoded_size, split_data_url
from aiproxy.openai.types import ChatRequest

Resolver = Callable[[str], Awaitable[list[str]]]  # hostname -> IP address strings
Fetched = tuple[str | None, bytes]  # (Content-Type, body)
MAX_REDIRECTS = 3


async def system_resolver(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedResolver(AbstractResolver):
    """aiohttp resolver answering only with addresses already checked, shared by every fetch.

    A host is pinned while a fetch connects to it and unpinned when the last such fetch is done,
    so the map never grows; two fetches of one host at once both get the newest checked list."""

    def __init__(self) -> None:
        self._pins: dict[str, tuple[list[str], int]] = {}

    @contextmanager
    def pin(self, host: str, addrs: list[str]) -> Iterator[None]:
        users = self._pins.get(host, ([], 0))[1]
        self._pins[host] = (addrs, users + 1)
        try:
            yield
        finally:
            addrs_now, users = self._pins[host]
            if users <= 1:
                del self._pins[host]
            else:
                self._pins[host] = (addrs_now, users - 1)

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        addrs = self._pins.get(host, ([], 0))[0]
        if not addrs:
            raise OSError(f"{host} was not checked")
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST) for a in addrs]

    async def close(self) -> None:
        return None


class _ByteBudget:
    """The media bytes a request may still take, shared by its concurrent fetches."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, n: int, param: str) -> None:
        if n > self.left:
            raise too_large_for(param, self.left)
        self.left -= n


class RemoteImageFetcher:
    """Fetches a request's image URLs under SSRF, count, size and time limits; raises ProxyError
    to refuse. `start()`/`close()` (or `async with`, or `lifecycle` in cleanup_ctx) own the
    pooled session."""

    def __init__(self, *, max_bytes: int, timeout: float, max_remote: int = 16, concurrency: int = 4,
                 allow_private: bool = False, resolver: Resolver = system_resolver,
                 address_allowed: Callable[[str], bool] | None = None) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout  # one deadline for all of a request's remote images
        self.max_remote = max_remote
        self.concurrency = concurrency
        self.resolver = resolver  # injectable: tests map names to loopback to prove the refusal
        # The allow-list: public addresses only, unless MEDIA_FETCH_ALLOW_PRIVATE (tests).
        self.address_allowed = address_allowed or ((lambda _ip: True) if allow_private else is_public_address)
        self._pins = _PinnedResolver()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=self._pins, use_dns_cache=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RemoteImageFetcher:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup_ctx entry: the pooled session lives as long as the app."""
        await self.start()
        yield
        await self.close()

    async def fetch_remote_media(self, request: web.Request, metering: Metering, max_out: int | None) -> None:
        """Admission step (the last one: no refused client makes the proxy fetch): a chat request's
        media size limit (413) and its remote images inlined; other endpoints carry no media."""
        req: ChatRequest | None = request.get(CHAT_REQUEST_KEY)
        if req is not None:
            await inline_remote_images(req, self, self.max_bytes)

    async def _check(self, url: str, param: str) -> tuple[str, list[str]]:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise bad_request(f"Invalid value for '{param}': only http(s) image URLs can be fetched.", param=param)
        try:
            addrs = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addrs = await self.resolver(host)
            except OSError:
                addrs = []
        if not addrs:
            raise bad_request(f"Invalid value for '{param}': the image host could not be resolved.", param=param)
        if not all(self.address_allowed(a) for a in addrs):
            raise bad_request(
                f"Invalid value for '{param}': the image URL points to a private, loopback, link-local "
                "or otherwise non-public address; the proxy does not fetch from there.",
                param=param, code="image_url_refused",
            )
        return host, addrs

    async def fetch(self, url: str, param: str, budget: int) -> Fetched:
        """(Content-Type, body) of one image; at most `budget` bytes, within the deadline."""
        return (await self.fetch_all([(url, param)], budget))[0]

    async def fetch_all(self, targets: Sequence[tuple[str, str]], budget: int) -> list[Fetched]:
        """Each (url, param) fetched, `concurrency` at a time, all within one `timeout` and
        `budget` bytes together; the first failure cancels the others and is raised."""
        if self._session is None:
            raise RuntimeError("the media fetcher is not started")
        session, left, gate = self._session, _ByteBudget(budget), asyncio.Semaphore(self.concurrency)
        results: list[Fetched | None] = [None] * len(targets)

        async def fetch_one(k: int, url: str, param: str) -> None:
            async with gate:
                results[k] = await self._fetch(session, url, param, left)

        try:
            async with asyncio.timeout(self.timeout), asyncio.TaskGroup() as group:
                for k, (url, param) in enumerate(targets):
                    group.create_task(fetch_one(k, url, param))
        except TimeoutError:
            late = next((param for (_, param), got in zip(targets, results, strict=True) if got is None),
                        targets[-1][1])
            raise _unfetchable(late, f"the request's remote images were not all fetched within "
                                     f"{self.timeout:g} s") from None
        except BaseExceptionGroup as failed:
            first = next((e for e in failed.exceptions if isinstance(e, ProxyError)), failed.exceptions[0])
            raise first from None
        return [got for got in results if got is not None]

    async def _fetch(self, session: aiohttp.ClientSession, url: str, param: str, left: _ByteBudget) -> Fetched:
        try:
            for _ in range(MAX_REDIRECTS + 1):
                host, addrs = await self._check(url, param)
                with self._pins.pin(host, addrs):
                    async with session.get(url, allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                            url = urljoin(url, resp.headers["Location"])
                            continue
                        if resp.status != 200:
                            raise _unfetchable(param, f"the server answered HTTP {resp.status}")
                        return resp.headers.get("Content-Type"), await _read_limited(resp, left, param)
            raise _unfetchable(param, f"more than {MAX_REDIRECTS} redirects")
        except aiohttp.ClientError as exc:
            raise _unfetchable(param, type(exc).__name__) from None


def _unfetchable(param: str, why: str) -> ProxyError:
    return bad_request(f"Invalid value for '{param}': the image could not be fetched ({why}).", param=param,
                       code="image_fetch_failed")


def too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"The media in this request exceeds the limit of {limit} bytes "
                           f"({limit / 1048576:g} MB decoded, all parts together); send smaller media.",
                      code="media_too_large")


async def _read_limited(resp: aiohttp.ClientResponse, left: _ByteBudget, param: str) -> bytes:
    if resp.content_length is not None and resp.content_length > left.left:
        raise too_large_for(param, left.left)
    body = bytearray()
    async for block in resp.content.iter_chunked(65536):
        left.take(len(block), param)
        body += block
    return bytes(body)


def too_large_for(param: str, budget: int) -> ProxyError:
    err = ProxyError(413, f"The image at '{param}' is larger than the {budget} bytes of media still allowed "
                          "in this request.", param=param, code="media_too_large")
    return err


def _media_payload(part: dict[str, Any]) -> str | None:
    """The base64 payload of a media part (or None for text / remote URLs)."""
    kind = part.get("type")
    spec = part.get(kind) if isinstance(kind, str) else None
    if kind == "image_url":
        url = spec.get("url") if isinstance(spec, dict) else spec
        parsed = split_data_url(url) if isinstance(url, str) else None
        return parsed[1] if parsed else None
    if kind == "input_audio" and isinstance(spec, dict) and isinstance(spec.get("data"), str):
        return spec["data"]
    if kind == "file" and isinstance(spec, dict) and isinstance(spec.get("file_data"), str):
        parsed = split_data_url(spec["file_data"])
        return parsed[1] if parsed else spec["file_data"]
    return None


def _remote_url(part: dict[str, Any]) -> str | None:
    if part.get("type") != "image_url":
        return None
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else None


async def inline_remote_images(req: ChatRequest, fetcher: RemoteImageFetcher, max_bytes: int) -> None:
    """Check the total media size (413) and the number of remote images (400), then replace the
    http(s) image URLs with data URLs in place."""
    parts = [(i, j, p) for i, m in enumerate(req.messages) if isinstance(m.content, list)
             for j, p in enumerate(m.content)]
    total = 0
    for _, _, part in parts:
        payload = _media_payload(part)
        if payload:
            total += decoded_size(payload)
    if total > max_bytes:
        raise too_large(max_bytes)
    remote = [(part, url, f"messages[{i}].content[{j}].image_url") for i, j, part in parts
              if (url := _remote_url(part)) is not None]
    if len(remote) > fetcher.max_remote:
        raise too_many_remote(fetcher.max_remote, len(remote), remote[fetcher.max_remote][2])
    if not remote:
        return
    fetched = await fetcher.fetch_all([(url, param) for _, url, param in remote], max_bytes - total)
    for (part, _, _), (ctype, body) in zip(remote, fetched, strict=True):
        label = (ctype or "application/octet-stream").split(";", 1)[0].strip() or "application/octet-stream"
        spec = part["image_url"]
        data_url = f"data:{label};base64," + base64.b64encode(body).decode("ascii")
        part["image_url"] = {**spec, "url": data_url} if isinstance(spec, dict) else {"url": data_url}


def too_many_remote(cap: int, count: int, param: str) -> ProxyError:
    allowed = f"at most {cap} are fetched per request" if cap else "this proxy fetches none"
    return bad_request(f"Too many remote images: the request names {count} http(s) image URLs and {allowed}; "
                       "send the others inline as data URLs.", param=param, code="too_many_remote_media")


def build_media_fetcher(settings: Settings) -> RemoteImageFetcher:
    """The app's fetcher (MAX_MEDIA_BYTES, MEDIA_FETCH_*, MAX_REMOTE_MEDIA); its session lives in cleanup_ctx."""
    return RemoteImageFetcher(
        max_bytes=settings.max_media_bytes, timeout=settings.media_fetch_timeout,
        max_remote=settings.max_remote_media, concurrency=settings.media_fetch_concurrency,
        allow_private=settings.media_fetch_allow_private,
    )
