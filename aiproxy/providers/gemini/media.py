"""Media content parts (image_url, input_audio, file) -> Gemini `inlineData` parts.

Clients mislabel media: Lotti sends every image as `image/jpeg` and M4A recordings as `mp3`.
Gemini decodes by the MIME type it is told, so a wrong label fails or garbles the answer. The
type is therefore SNIFFED from the decoded bytes' magic numbers and the client's label is only
a fallback for text documents. The base64 is validated but sent on exactly as received (no
re-encode: that would cost time and memory for nothing). Pure functions; registered in
`request.PART_TRANSLATORS` on import.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiproxy.errors import ProxyError, bad_request
from aiproxy.providers.gemini.request import PART_TRANSLATORS, Part

_SNIFF_BYTES = 64  # every signature below lies in the first 64 bytes

# ISO-BMFF (`ftyp` box at offset 4) major brands by what Gemini should be told.
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}

# File extensions Gemini reads as text documents (only used when no binary signature matched).
_TEXT_TYPES = {
    "txt": "text/plain", "md": "text/markdown", "markdown": "text/markdown", "csv": "text/csv",
    "html": "text/html", "htm": "text/html", "xml": "text/xml", "rtf": "text/rtf",
    "css": "text/css", "js": "text/javascript", "py": "text/x-python", "json": "application/json",
}


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


def decode_base64(data: str, param: str) -> tuple[str, bytes]:
    """Validate base64; return (the payload to send, decoded bytes). Line breaks are tolerated."""
    if any(c in data for c in "\r\n \t"):
        data = "".join(data.split())
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"Invalid value for '{param}': the data is not valid base64.", param=param) from None
    if not raw:
        raise bad_request(f"Invalid value for '{param}': the media is empty.", param=param)
    return data, raw


def decoded_size(b64: str) -> int:
    """Decoded byte count of a base64 string without decoding it (for the size limit)."""
    n = len(b64) - b64.count("\n") - b64.count("\r") - b64.count(" ")
    return max(0, n * 3 // 4 - b64[-2:].count("="))


def _inline(mime: str, data: str) -> list[Part]:
    return [{"inlineData": {"mimeType": mime, "data": data}}]


def _unknown_type(param: str, what: str) -> ProxyError:
    return bad_request(
        f"Invalid value for '{param}': the {what} type could not be recognised from its bytes "
        "or is not supported by Gemini.", param=param, code="invalid_media_type",
    )


def _missing(param: str) -> ProxyError:
    return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _image_url_part(part: dict[str, Any], param: str) -> list[Part]:
    param = f"{param}.image_url"
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise _missing(f"{param}.url")
    parsed = split_data_url(url)
    if parsed is None:
        if url.lower().startswith(("http://", "https://")):
            # The chat handler inlines remote images before translation (aiproxy.media.fetch).
            raise bad_request(f"Invalid value for '{param}': the image at this URL could not be fetched.", param=param)
        raise bad_request(f"Invalid value for '{param}': expected a base64 data URL or an http(s) URL.", param=param)
    data, raw = decode_base64(parsed[1], param)
    mime = sniff_image(raw[:_SNIFF_BYTES])
    if mime is None:
        raise _unknown_type(param, "image")
    return _inline(mime, data)


def _input_audio_part(part: dict[str, Any], param: str) -> list[Part]:
    param = f"{param}.input_audio"
    spec = part.get("input_audio")
    data = spec.get("data") if isinstance(spec, dict) else None
    if not isinstance(data, str) or not data:
        raise _missing(f"{param}.data")
    data, raw = decode_base64(data, param)
    mime = sniff_audio(raw[:_SNIFF_BYTES])  # the `format` label is ignored: Lotti's lies
    if mime is None:
        raise _unknown_type(param, "audio")
    return _inline(mime, data)


def _text_type(label: str | None, filename: str | None, raw: bytes) -> str | None:
    """A text document type from the label or filename, only if the bytes really are UTF-8."""
    mime = label if label and (label.startswith("text/") or label == "application/json") else None
    if mime is None and filename and "." in filename:
        mime = _TEXT_TYPES.get(filename.rsplit(".", 1)[1].lower())
    if mime is None:
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if mime == "application/json" else mime


def _file_part(part: dict[str, Any], param: str) -> list[Part]:
    param = f"{param}.file"
    spec = part.get("file")
    if not isinstance(spec, dict):
        raise _missing(param)
    if spec.get("file_id") and not spec.get("file_data"):
        raise bad_request(
            f"Invalid value for '{param}.file_id': uploaded files are not supported; "
            "send the content inline as `file_data` (a base64 data URL).", param=f"{param}.file_id",
        )
    payload = spec.get("file_data")
    if not isinstance(payload, str) or not payload:
        raise _missing(f"{param}.file_data")
    parsed = split_data_url(payload)
    label, b64 = parsed if parsed is not None else (None, payload)
    data, raw = decode_base64(b64, f"{param}.file_data")
    filename = spec.get("filename") if isinstance(spec.get("filename"), str) else None
    mime = sniff_file(raw[:_SNIFF_BYTES]) or _text_type(label, filename, raw)
    if mime is None:
        raise _unknown_type(f"{param}.file_data", "file")
    return _inline(mime, data)


PART_TRANSLATORS.update({"image_url": _image_url_part, "input_audio": _input_audio_part, "file": _file_part})
