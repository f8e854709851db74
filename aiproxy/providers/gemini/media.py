"""Media content parts (image_url, input_audio, file) -> Gemini `inlineData` parts.

Clients mislabel media: Lotti sends every image as `image/jpeg` and M4A recordings as `mp3`.
Gemini decodes by the MIME type it is told, so a wrong label fails or garbles the answer. The
type is therefore SNIFFED from the decoded bytes' magic numbers and the client's label is only
a fallback for text documents. The base64 is validated but sent on exactly as received (no
re-encode: that would cost time and memory for nothing). Pure functions, listed in
`parts.PART_TRANSLATORS`; the sniffers themselves are aiproxy.media.sniff.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from aiproxy.errors import ProxyError, bad_request
from aiproxy.media.sniff import SNIFF_BYTES, sniff_audio, sniff_file, sniff_image, split_data_url

if TYPE_CHECKING:
    from aiproxy.providers.gemini.parts import Part

# File extensions Gemini reads as text documents (only used when no binary signature matched).
_TEXT_TYPES = {
    "txt": "text/plain", "md": "text/markdown", "markdown": "text/markdown", "csv": "text/csv",
    "html": "text/html", "htm": "text/html", "xml": "text/xml", "rtf": "text/rtf",
    "css": "text/css", "js": "text/javascript", "py": "text/x-python", "json": "application/json",
}


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


def _inline(mime: str, data: str) -> list[Part]:
    return [{"inlineData": {"mimeType": mime, "data": data}}]


def _unknown_type(param: str, what: str) -> ProxyError:
    return bad_request(
        f"Invalid value for '{param}': the {what} type could not be recognised from its bytes "
        "or is not supported by Gemini.", param=param, code="invalid_media_type",
    )


def _missing(param: str) -> ProxyError:
    return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def image_url_part(part: dict[str, Any], param: str) -> list[Part]:
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
    mime = sniff_image(raw[:SNIFF_BYTES])
    if mime is None:
        raise _unknown_type(param, "image")
    return _inline(mime, data)


def input_audio_part(part: dict[str, Any], param: str) -> list[Part]:
    param = f"{param}.input_audio"
    spec = part.get("input_audio")
    data = spec.get("data") if isinstance(spec, dict) else None
    if not isinstance(data, str) or not data:
        raise _missing(f"{param}.data")
    data, raw = decode_base64(data, param)
    mime = sniff_audio(raw[:SNIFF_BYTES])  # the `format` label is ignored: Lotti's lies
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


def file_part(part: dict[str, Any], param: str) -> list[Part]:
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
    mime = sniff_file(raw[:SNIFF_BYTES]) or _text_type(label, filename, raw)
    if mime is None:
        raise _unknown_type(f"{param}.file_data", "file")
    return _inline(mime, data)
