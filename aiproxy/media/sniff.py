"""What a piece of media is, from its bytes: magic-number sniffers and base64 data-URL helpers.

Clients mislabel media (Lotti sends every image as `image/jpeg`, M4A recordings as `mp3`), so
the type is read from the decoded bytes. Shared by the translation (which MIME type the upstream
is told), the media fetcher (size limits) and the token estimates (billing), hence here and not
in one provider's package. The names returned are the MIME types Gemini expects.
"""

from __future__ import annotations

import re

SNIFF_BYTES = 64  # every signature below lies in the first 64 bytes

# ISO-BMFF (`ftyp` box at offset 4) major brands by what Gemini should be told.
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def _ftyp_brand(head: bytes) -> bytes | None:
    return head[8:12] if len(head) >= 12 and head[4:8] == b"ftyp" else None


def sniff_image(head: bytes) -> str | None:
    """The image MIME type from the magic number, or None when it is no image Gemini reads."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    brand = _ftyp_brand(head)
    if brand in _HEIC_BRANDS:
        return "image/heic"
    if brand in _HEIF_BRANDS:
        return "image/heif"
    return None


def sniff_audio(head: bytes) -> str | None:
    """The audio MIME type Gemini expects, from the magic number; None when unknown.

    M4A is sent as `audio/mp4` (Gemini has no separate m4a type; AAC in an MP4 container is
    `audio/mp4`, raw ADTS AAC is `audio/aac`).
    """
    if head.startswith(b"ID3"):
        return "audio/mp3"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    if _ftyp_brand(head) is not None:
        return "audio/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # Frame sync: layer bits 00 mean ADTS AAC, anything else an MPEG audio (MP3) frame.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mp3"
    return None


def sniff_document(head: bytes) -> str | None:
    """Types a `file` part may carry beyond images and audio (PDF, MP4/WEBM video)."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    brand = _ftyp_brand(head)
    if brand is not None and brand not in _M4A_BRANDS and brand not in _HEIC_BRANDS | _HEIF_BRANDS:
        return "video/mp4"
    return None


def sniff_file(head: bytes) -> str | None:
    return sniff_document(head) or sniff_image(head) or sniff_audio(head)


_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*?);base64,", re.I)


def split_data_url(url: str) -> tuple[str | None, str] | None:
    """(label MIME, base64 payload) of a base64 data URL, or None when `url` is not one."""
    m = _DATA_URL.match(url)
    if m is None:
        return None
    return (m.group("mime") or None), url[m.end():]


def decoded_size(b64: str) -> int:
    """Decoded byte count of a base64 string without decoding it (for the size limit)."""
    n = len(b64) - b64.count("\n") - b64.count("\r") - b64.count(" ")
    return max(0, n * 3 // 4 - b64[-2:].count("="))
