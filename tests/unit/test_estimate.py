"""The one prompt-token estimator: golden tables for text, images, audio, video, PDF and tools."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from aiproxy.billing.estimate import (
    REMOTE_IMAGE_TOKENS,
    estimate_prompt_tokens,
    estimate_text_tokens,
    image_size,
    image_tokens,
    media_tokens,
)
from aiproxy.openai.types import parse_chat_request


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4 + b"\x00" * 64


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 64


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    exif = b"\xff\xe1" + struct.pack(">H", 1002) + b"\x00" * 1000  # a block before the frame header
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + exif + sof + b"\x00" * 64


def webp_vp8x(width: int, height: int) -> bytes:
    body = (b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
            + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body + b"\x00" * 64


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body + b"\x00" * 64


def webp_vp8(width: int, height: int) -> bytes:
    body = b"VP8 " + struct.pack("<I", 10) + b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body + b"\x00" * 64


def wav(seconds: float, byte_rate: int = 32_000) -> bytes:
    data = b"\x00" * int(seconds * byte_rate)
    fmt = struct.pack("<HHIIHH", 1, 1, byte_rate // 2, byte_rate, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


def mp3(seconds: float, kbps: int = 128) -> bytes:
    frame = b"\xff\xfb\x90\x00"  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
    assert kbps == 128
    return frame + b"\x00" * (int(seconds * kbps * 1000 / 8) - 4)


def mp4(brand: bytes, seconds: int, pad: int = 0, moov_last: bool = False) -> bytes:
    ftyp = struct.pack(">I", 16) + b"ftyp" + brand + b"\x00\x00\x00\x00"
    mvhd_body = b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, seconds * 1000) + b"\x00" * 80
    mvhd = struct.pack(">I", 8 + len(mvhd_body)) + b"mvhd" + mvhd_body
    moov = struct.pack(">I", 8 + len(mvhd)) + b"moov" + mvhd
    mdat = struct.pack(">I", 8 + pad) + b"mdat" + b"\x00" * pad
    return ftyp + (mdat + moov if moov_last else moov + mdat)


def pdf(pages: int) -> bytes:
    objs = b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Count %d >> endobj\n" % pages
    objs += b"".join(b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (3 + i) for i in range(pages))
    return b"%PDF-1.4\n" + objs + b"%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(("width", "height", "tokens"), [
    (100, 50, 258), (384, 384, 258), (385, 385, 1032), (385, 200, 1548), (800, 600, 1032), (1024, 1024, 1032),
    (1920, 1080, 1548), (4032, 3024, 1032), (3000, 400, 6192),
])
def test_image_tokens_follow_geminis_tiling(width: int, height: int, tokens: int) -> None:
    assert image_tokens(width, height) == tokens


@pytest.mark.parametrize("make", [png, gif, jpeg, webp_vp8x, webp_vp8l, webp_vp8], ids=lambda f: f.__name__)
def test_image_size_from_headers(make: Any) -> None:
    assert image_size(make(1920, 1080)) == (1920, 1080)


@pytest.mark.parametrize(("kind", "data", "tokens"), [
    pytest.param("image_url", png(200, 100), 258, id="small-png"),
    pytest.param("image_url", jpeg(1920, 1080), 1548, id="hd-jpeg"),
    pytest.param("image_url", b"not an image at all" * 4, REMOTE_IMAGE_TOKENS, id="unreadable-image-default"),
    pytest.param("input_audio", wav(2.0), 64, id="wav-2s"),
    pytest.param("input_audio", mp3(10.0), 320, id="mp3-10s-128k"),
    pytest.param("input_audio", mp4(b"M4A ", 5), 160, id="m4a-5s"),
    pytest.param("input_audio", mp4(b"M4A ", 7, pad=400_000, moov_last=True), 224, id="m4a-moov-at-end"),
    pytest.param("input_audio", b"OggS" + b"\x00" * 31_996, 64, id="ogg-by-size-16000-bytes-a-second"),
    pytest.param("file", mp4(b"isom", 4), 1052, id="mp4-video-4s"),
    pytest.param("file", pdf(3), 774, id="pdf-3-pages"),
    pytest.param("file", b"hello world, a text document", 7, id="text-document-chars"),
])
def test_media_tokens(kind: str, data: bytes, tokens: int) -> None:
    assert media_tokens(b64(data), kind) == tokens


def test_mime_wrapped_base64_is_read_too() -> None:
    text = b64(jpeg(1920, 1080))
    wrapped = "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    assert media_tokens(wrapped, "image_url") == 1548
    audio = b64(mp4(b"M4A ", 7, pad=400_000, moov_last=True))
    assert media_tokens("\n".join(audio[i:i + 76] for i in range(0, len(audio), 76)), "input_audio") == 224


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (400, 100)])
def test_text_is_ceil_of_chars_over_four(chars: int, tokens: int) -> None:
    assert estimate_text_tokens(chars) == tokens


def request(*parts: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": list(parts)}]}
    if tools:
        body["tools"] = tools
    return parse_chat_request(body)


def test_prompt_estimate_adds_text_media_and_tools() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    req = request({"type": "text", "text": "x" * 40},
                  {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + b64(png(800, 600))}},
                  {"type": "input_audio", "input_audio": {"data": b64(wav(1.0)), "format": "wav"}},
                  tools=[tool])
    tool_chars = len(b'[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]')
    assert estimate_prompt_tokens(req) == estimate_text_tokens(40 + tool_chars) + 1032 + 32


def test_remote_image_counts_the_default_until_fetched_then_for_real() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    req = request({"type": "text", "text": "what is this"}, part)
    assert estimate_prompt_tokens(req) == 3 + REMOTE_IMAGE_TOKENS
    part["image_url"]["url"] = "data:image/png;base64," + b64(png(100, 100))  # what media_fetch does
    assert estimate_prompt_tokens(req) == 3 + 258


def test_rate_limit_estimate_uses_the_media_aware_prompt_estimate() -> None:
    from aiproxy.access.throttle import Throttle
    from aiproxy.billing.record import Metering
    from aiproxy.billing.reservations import Reservations

    m = Metering(request_id="r", user="u", requested_model="m", upstream_model="m", prompt_chars=40,
                 prompt_estimate=10 + 1032)  # 40 characters and one 800x600 photo
    assert Throttle(limiter=None, fail_closed=False, default_output_tokens=100,  # type: ignore[arg-type]  # estimate() never uses the limiter
                    reservations=Reservations()).estimate(m, None) == 1042 + 100
