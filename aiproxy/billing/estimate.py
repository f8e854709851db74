"""The one prompt-token estimator: text, images, audio, video, PDF pages and tool declarations.

Estimates are used where Gemini has not (yet) said what a request costs: the tokens-per-minute
charge and the budget reservation before the call, and the ledger row of a request cut off
before Gemini's final usageMetadata. Counting text alone billed an image or a voice note as a
few tokens. The rules are Gemini's published ones (Google, "Understand and count tokens",
https://ai.google.dev/gemini-api/docs/tokens, and "Image understanding", token calculation,
https://ai.google.dev/gemini-api/docs/image-understanding; read 2026-12-02), Gemini 2.x:

- text: about 4 characters a token (ceil(chars / 4)).
- image: 258 tokens when both sides are at most 384 px; larger images are cropped and scaled
  into 768x768 tiles of 258 tokens each. Google does not publish the exact scaling; the
  documented crop unit floor(min(width, height) / 1.5) is used, tiles = ceil(w / unit) *
  ceil(h / unit). Sizes are read from PNG, JPEG, GIF and WebP headers (pure, no dependency).
  A remote image not fetched yet counts REMOTE_IMAGE_TOKENS (what the rule gives nearly any
  photo: 4 tiles); it is counted for real once media_fetch has inlined it.
- audio: 32 tokens a second; video: 263 tokens a second. The duration comes from WAV, MP3
  (first frame's bit rate, constant-bit-rate assumption) and MP4/M4A (`mvhd`) headers, else
  from the size at AUDIO_BYTES_PER_SECOND / VIDEO_BYTES_PER_SECOND.
- PDF: 258 tokens a page; pages are the `/Type /Page` objects (at least 1).
- tool declarations: ceil(chars / 4) of their JSON.

Only bounded windows of large base64 payloads are decoded (a header, an `mvhd` at either end);
PDFs are decoded whole to count pages.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from typing import Any

from aiproxy import jsonutil
from aiproxy.billing.record import Metering
from aiproxy.media.sniff import decoded_size, sniff_audio, sniff_document, sniff_image, split_data_url
from aiproxy.openai.types import ChatRequest

CHARS_PER_TOKEN = 4
IMAGE_TILE_TOKENS = 258
SMALL_IMAGE_SIDE = 384
REMOTE_IMAGE_TOKENS = 4 * IMAGE_TILE_TOKENS  # 1,032: a 1024x1024 or 4032x3024 photo under the rule
AUDIO_TOKENS_PER_SECOND = 32
VIDEO_TOKENS_PER_SECOND = 263
PDF_PAGE_TOKENS = 258
AUDIO_BYTES_PER_SECOND = 16_000  # 128 kbit/s (MP3/AAC voice and music) when no header says
VIDEO_BYTES_PER_SECOND = 250_000  # 2 Mbit/s (phone-recorded 720p) when no header says
HEAD_BYTES = 256 * 1024  # enough for any image header after EXIF/ICC blocks, and a front `moov`
TAIL_BYTES = 256 * 1024  # a `moov` written at the end of an MP4

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


def estimate_text_tokens(chars: int) -> int:
    """Gemini averages about four characters per token."""
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def image_tokens(width: int, height: int) -> int:
    if width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE:
        return IMAGE_TILE_TOKENS
    unit = max(1, math.floor(min(width, height) / 1.5))
    return math.ceil(width / unit) * math.ceil(height / unit) * IMAGE_TILE_TOKENS


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header; None when it cannot be read."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith((b"GIF87a", b"GIF89a")):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            return w, h
        pos += 2 + length
    return None


_MP3_BITRATES = {  # kbit/s by index; (MPEG-1 layer III, MPEG-2/2.5 layer III)
    1: (32, 8), 2: (40, 16), 3: (48, 24), 4: (56, 32), 5: (64, 40), 6: (80, 48), 7: (96, 56),
    8: (112, 64), 9: (128, 80), 10: (160, 96), 11: (192, 112), 12: (224, 128), 13: (256, 144), 14: (320, 160),
}


def audio_seconds(head: bytes, tail: bytes, size: int) -> float | None:
    """Duration of WAV, MP3 or MP4/M4A audio from its headers; None when they do not say."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _wav_seconds(head, size)
    if head[4:8] == b"ftyp":
        return mp4_seconds(head, tail)
    return _mp3_seconds(head, size)


def _wav_seconds(head: bytes, size: int) -> float | None:
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if chunk == b"fmt " and pos + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16:pos + 20])[0]
        if chunk == b"data":
            data = min(length, max(0, size - pos - 8))
            return data / byte_rate if byte_rate else None
        pos += 8 + length + (length & 1)
    return None


def _mp3_seconds(head: bytes, size: int) -> float | None:
    start = 0
    if head.startswith(b"ID3") and len(head) >= 10:
        tag = head[6:10]
        start = 10 + ((tag[0] & 0x7F) << 21 | (tag[1] & 0x7F) << 14 | (tag[2] & 0x7F) << 7 | (tag[3] & 0x7F))
    if start + 4 > len(head) or head[start] != 0xFF or head[start + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[start + 1] >> 3) & 0x03, (head[start + 1] >> 1) & 0x03
    if layer != 0x01:  # layer III only; ADTS AAC and others fall back to the size
        return None
    rates = _MP3_BITRATES.get(head[start + 2] >> 4)
    if rates is None:
        return None
    kbps = rates[0] if version == 0x03 else rates[1]
    return (size - start) * 8 / (kbps * 1000)


def mp4_seconds(head: bytes, tail: bytes) -> float | None:
    """Duration from the `mvhd` box of an MP4/M4A, found in the first or last window."""
    for window in (head, tail):
        at = window.find(b"mvhd")
        if at < 0 or at + 32 > len(window):
            continue
        version = window[at + 4]
        try:
            if version == 1:
                timescale, duration = struct.unpack(">IQ", window[at + 24:at + 36])
            else:
                timescale, duration = struct.unpack(">II", window[at + 16:at + 24])
        except struct.error:
            continue
        if timescale:
            return duration / timescale
    return None


def pdf_pages(data: bytes) -> int:
    return max(1, len(_PDF_PAGE.findall(data)))


def _b64_window(b64: str, nbytes: int, from_end: bool = False) -> bytes:
    """Decode about `nbytes` of the payload from its start, or from its end."""
    if any(c in b64[:256] for c in "\r\n \t") or any(c in b64[-256:] for c in "\r\n \t"):
        b64 = "".join(b64.split())  # MIME-wrapped (76-character lines): slices must stay aligned
    groups = nbytes // 3 + 1
    if from_end:
        body = b64.rstrip("=")
        first = max(0, (len(body) - groups * 4) // 4 * 4)
        chunk = body[first:]
    else:
        chunk = b64[:groups * 4].rstrip("=")
    try:
        return base64.b64decode(chunk + "=" * (-len(chunk) % 4))
    except (binascii.Error, ValueError):
        return b""


def media_tokens(b64: str, kind: str) -> int:
    """Tokens of one base64 media payload; `kind` is the OpenAI part type it came in."""
    size = decoded_size(b64)
    head = _b64_window(b64, HEAD_BYTES)
    sniff = head[:64]
    if kind == "image_url" or sniff_image(sniff):
        dims = image_size(head)
        return image_tokens(*dims) if dims else REMOTE_IMAGE_TOKENS
    document = sniff_document(sniff)
    if document == "application/pdf":
        try:
            return pdf_pages(base64.b64decode("".join(b64.split()))) * PDF_PAGE_TOKENS
        except (binascii.Error, ValueError):
            return PDF_PAGE_TOKENS
    if document == "video/mp4":
        seconds = mp4_seconds(head, _b64_window(b64, TAIL_BYTES, from_end=True))
        return math.ceil((seconds if seconds is not None else size / VIDEO_BYTES_PER_SECOND) * VIDEO_TOKENS_PER_SECOND)
    if kind == "input_audio" or sniff_audio(sniff):
        seconds = audio_seconds(head, _b64_window(b64, TAIL_BYTES, from_end=True), size)
        return math.ceil((seconds if seconds is not None else size / AUDIO_BYTES_PER_SECOND) * AUDIO_TOKENS_PER_SECOND)
    return estimate_text_tokens(size)  # a text document


def _part_tokens(part: dict[str, Any]) -> tuple[int, int]:
    """(text characters, media tokens) of one content part."""
    kind = part.get("type")
    spec = part.get(kind) if isinstance(kind, str) else None
    if kind == "text":
        text = part.get("text")
        return (len(text) if isinstance(text, str) else 0), 0
    if kind == "image_url":
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            return 0, 0
        parsed = split_data_url(url)
        return 0, media_tokens(parsed[1], kind) if parsed else REMOTE_IMAGE_TOKENS
    if kind == "input_audio" and isinstance(spec, dict) and isinstance(spec.get("data"), str):
        return 0, media_tokens(spec["data"], kind)
    if kind == "file" and isinstance(spec, dict) and isinstance(spec.get("file_data"), str):
        parsed = split_data_url(spec["file_data"])
        return 0, media_tokens(parsed[1] if parsed else spec["file_data"], kind)
    return 0, 0


def metering_prompt_estimate(m: Metering) -> int:
    """The prompt estimate a handler stored, else the text-only one from its character count."""
    return m.prompt_estimate or estimate_text_tokens(m.prompt_chars)


def estimate_prompt_tokens(req: ChatRequest) -> int:
    """The prompt's estimated tokens: every message (text, media, tool calls) and the tools.

    The one function for limits, budget reservations and cut-off rows; read from the request,
    so it works before remote images are fetched (and again after, to count them for real)."""
    chars, media = 0, 0
    for msg in req.messages:
        content = msg.content
        if isinstance(content, str):
            chars += len(content)
        elif content:
            for part in content:
                c, m = _part_tokens(part)
                chars, media = chars + c, media + m
        for call in msg.tool_calls or ():
            chars += len(call.function.name) + len(call.function.arguments)
    if req.tools:
        chars += len(jsonutil.dumps(req.tools))
    return estimate_text_tokens(chars) + media
