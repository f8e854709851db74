"""The async pre-pass before translation: inline remote images and enforce the media size limit.

Translation is pure and sync, so an `image_url` with an http(s) URL is fetched here first and
replaced with a data URL. Fetching a URL a client names is an SSRF hole unless every address is
checked: hostnames are resolved, EVERY resolved address must be public (not private, loopback,
link-local, multicast, reserved or unspecified), and the connection is pinned to exactly the
addresses that were checked (a custom aiohttp resolver hands out only those), so DNS rebinding
cannot swap in an internal address between the check and the connect. Redirects are followed by
hand, at most 3, each target checked the same way.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from aiproxy.config import Settings
from aiproxy.errors import ProxyError, bad_request
from aiproxy.openai_types import ChatRequest
from aiproxy.public_address import is_public_address
from aiproxy.translate.media import decoded_size, split_data_url

Resolver = Callable[[str], Awaitable[list[str]]]  # hostname -> IP address strings
MAX_REDIRECTS = 3


async def system_resolver(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedResolver(AbstractResolver):
    """aiohttp resolver answering only with addresses already checked for this fetch."""

    def __init__(self) -> None:
        self.pinned: dict[str, list[str]] = {}

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        addrs = self.pinned.get(host)
        if not addrs:
            raise OSError(f"{host} was not checked")
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST) for a in addrs]

    async def close(self) -> None:
        return None


class RemoteImageFetcher:
    """Fetches one image URL under SSRF, size and time limits; raises ProxyError to refuse."""

    def __init__(self, *, max_bytes: int, timeout: float, allow_private: bool = False,
                 resolver: Resolver = system_resolver, address_allowed: Callable[[str], bool] | None = None) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.resolver = resolver  # injectable: tests map names to loopback to prove the refusal
        # The allow-list: public addresses only, unless MEDIA_FETCH_ALLOW_PRIVATE (tests).
        self.address_allowed = address_allowed or ((lambda _ip: True) if allow_private else is_public_address)

    async def _check(self, url: str, pins: _PinnedResolver, param: str) -> None:
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
        pins.pinned[host] = addrs

    async def fetch(self, url: str, param: str, budget: int) -> tuple[str | None, bytes]:
        """(Content-Type, body) of the image; at most `budget` bytes are accepted."""
        pins = _PinnedResolver()
        connector = aiohttp.TCPConnector(resolver=pins, use_dns_cache=False, force_close=True)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
                for _ in range(MAX_REDIRECTS + 1):
                    await self._check(url, pins, param)
                    async with session.get(url, allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                            url = urljoin(url, resp.headers["Location"])
                            continue
                        if resp.status != 200:
                            raise _unfetchable(param, f"the server answered HTTP {resp.status}")
                        return resp.headers.get("Content-Type"), await _read_limited(resp, budget, param)
                raise _unfetchable(param, f"more than {MAX_REDIRECTS} redirects")
        except asyncio.TimeoutError:
            raise _unfetchable(param, f"no complete answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise _unfetchable(param, type(exc).__name__) from None


def _unfetchable(param: str, why: str) -> ProxyError:
    return bad_request(f"Invalid value for '{param}': the image could not be fetched ({why}).", param=param,
                       code="image_fetch_failed")


def too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"The media in this request exceeds the limit of {limit} bytes "
                           f"({limit / 1048576:g} MB decoded, all parts together); send smaller media.",
                      code="media_too_large")


async def _read_limited(resp: aiohttp.ClientResponse, budget: int, param: str) -> bytes:
    if resp.content_length is not None and resp.content_length > budget:
        raise too_large_for(param, budget)
    body = bytearray()
    async for block in resp.content.iter_chunked(65536):
        body += block
        if len(body) > budget:
            raise too_large_for(param, budget)
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
    """Check the total media size (413) and replace http(s) image URLs with data URLs in place."""
    parts = [(i, j, p) for i, m in enumerate(req.messages) if isinstance(m.content, list)
             for j, p in enumerate(m.content)]
    total = 0
    for _, _, part in parts:
        payload = _media_payload(part)
        if payload:
            total += decoded_size(payload)
    if total > max_bytes:
        raise too_large(max_bytes)
    for i, j, part in parts:
        url = _remote_url(part)
        if url is None:
            continue
        param = f"messages[{i}].content[{j}].image_url"
        ctype, body = await fetcher.fetch(url, param, max_bytes - total)
        total += len(body)
        label = (ctype or "application/octet-stream").split(";", 1)[0].strip() or "application/octet-stream"
        spec = part["image_url"]
        data_url = f"data:{label};base64," + base64.b64encode(body).decode("ascii")
        part["image_url"] = {**spec, "url": data_url} if isinstance(spec, dict) else {"url": data_url}


MEDIA_FETCHER_KEY: web.AppKey[RemoteImageFetcher] = web.AppKey("media_fetcher")


def setup_media(app: web.Application, settings: Settings) -> None:
    app[MEDIA_FETCHER_KEY] = RemoteImageFetcher(
        max_bytes=settings.max_media_bytes, timeout=settings.media_fetch_timeout,
        allow_private=settings.media_fetch_allow_private,
    )


async def prepare_media(request: web.Request, req: ChatRequest) -> None:
    """The chat handler's one call: size limit and remote images, before translation."""
    fetcher = request.app[MEDIA_FETCHER_KEY]
    await inline_remote_images(req, fetcher, fetcher.max_bytes)
