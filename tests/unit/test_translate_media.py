"""Golden table tests for media parts: the type Gemini is told comes from the bytes, not the label."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.media.sniff import decoded_size, sniff_audio, sniff_file, sniff_image
from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.gemini.request import build_gemini_request

# Tiny but valid headers of each format (enough bytes for the magic numbers).
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 16
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
HEIF = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isommp42\x00\x00\x00\x08free"
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 20
MP3_SYNC = b"\xff\xfb\x90\x64" + b"\x00" * 30
AAC_ADTS = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 20
WAV = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00"
OGG = b"OggS\x00\x02" + b"\x00" * 30
FLAC = b"fLaC\x00\x00\x00\x22" + b"\x00" * 30
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\x00" * 20
AIFF = b"FORM\x00\x00\x00\x2eAIFFCOMM" + b"\x00" * 20
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
MP4_VIDEO = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def translate_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    req = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": list(parts)}]})
    return build_gemini_request(req, "gemini-2.5-flash")["contents"][0]["parts"]


def image(raw: bytes, label: str = "image/jpeg") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{label};base64,{b64(raw)}"}}


def audio(raw: bytes, fmt: str = "mp3") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": b64(raw), "format": fmt}}


def error_of(*parts: dict[str, Any]) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        translate_parts(*parts)
    return info.value


@pytest.mark.parametrize("raw, mime", [
    (JPEG, "image/jpeg"), (PNG, "image/png"), (GIF, "image/gif"), (WEBP, "image/webp"),
    (HEIC, "image/heic"), (HEIF, "image/heif"), (PDF, None), (WAV, None),
])
def test_image_type_is_sniffed_from_magic_bytes(raw: bytes, mime: str | None) -> None:
    assert sniff_image(raw) == mime


@pytest.mark.parametrize("raw, mime", [
    (M4A, "audio/mp4"), (MP3_ID3, "audio/mp3"), (MP3_SYNC, "audio/mp3"), (AAC_ADTS, "audio/aac"),
    (WAV, "audio/wav"), (OGG, "audio/ogg"), (FLAC, "audio/flac"), (WEBM, "audio/webm"),
    (AIFF, "audio/aiff"), (PNG, None), (b"hello world", None),
])
def test_audio_type_is_sniffed_from_magic_bytes(raw: bytes, mime: str | None) -> None:
    assert sniff_audio(raw) == mime


@pytest.mark.parametrize("raw, mime", [
    (PDF, "application/pdf"), (MP4_VIDEO, "video/mp4"), (M4A, "audio/mp4"), (PNG, "image/png"),
])
def test_file_type_is_sniffed_from_magic_bytes(raw: bytes, mime: str) -> None:
    assert sniff_file(raw) == mime


def test_png_labelled_jpeg_is_sent_as_png() -> None:
    assert translate_parts(image(PNG)) == [{"inlineData": {"mimeType": "image/png", "data": b64(PNG)}}]


def test_jpeg_labelled_png_is_sent_as_jpeg() -> None:
    assert translate_parts(image(JPEG, "image/png"))[0]["inlineData"]["mimeType"] == "image/jpeg"


def test_heic_from_an_iphone_labelled_jpeg_is_sent_as_heic() -> None:
    assert translate_parts(image(HEIC))[0]["inlineData"]["mimeType"] == "image/heic"


def test_base64_is_forwarded_untouched_not_reencoded() -> None:
    data = b64(WEBP)
    assert translate_parts(image(WEBP, "image/webp"))[0]["inlineData"]["data"] == data


def test_base64_with_line_breaks_is_accepted() -> None:
    wrapped = b64(PNG * 4)
    wrapped = "\n".join(wrapped[i:i + 76] for i in range(0, len(wrapped), 76))
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + wrapped}}
    assert translate_parts(part)[0]["inlineData"]["data"] == b64(PNG * 4)


def test_m4a_labelled_mp3_is_sent_as_audio_mp4() -> None:
    assert translate_parts(audio(M4A, "mp3")) == [{"inlineData": {"mimeType": "audio/mp4", "data": b64(M4A)}}]


def test_wav_labelled_mp3_is_sent_as_wav() -> None:
    assert translate_parts(audio(WAV, "mp3"))[0]["inlineData"]["mimeType"] == "audio/wav"


def test_turn_with_only_media_is_valid() -> None:
    parts = translate_parts(image(JPEG), audio(MP3_ID3))
    assert [p["inlineData"]["mimeType"] for p in parts] == ["image/jpeg", "audio/mp3"]


def test_text_and_image_keep_their_order() -> None:
    parts = translate_parts({"type": "text", "text": "What is this?"}, image(PNG))
    assert parts[0] == {"text": "What is this?"} and "inlineData" in parts[1]


def test_pdf_file_part_becomes_inline_pdf() -> None:
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(PDF)}", "filename": "a.pdf"}}
    assert translate_parts(part) == [{"inlineData": {"mimeType": "application/pdf", "data": b64(PDF)}}]


def test_pdf_file_part_as_bare_base64_is_accepted() -> None:
    part = {"type": "file", "file": {"file_data": b64(PDF), "filename": "report"}}
    assert translate_parts(part)[0]["inlineData"]["mimeType"] == "application/pdf"


def test_markdown_file_is_sent_as_text_markdown() -> None:
    part = {"type": "file", "file": {"file_data": b64(b"# Notes\nhi"), "filename": "notes.md"}}
    assert translate_parts(part)[0]["inlineData"]["mimeType"] == "text/markdown"


def test_uploaded_file_id_is_a_clear_400() -> None:
    err = error_of({"type": "file", "file": {"file_id": "file-abc"}})
    assert (err.status, err.param) == (400, "messages[0].content[0].file.file_id")
    assert "not supported" in err.message


def test_binary_file_of_unknown_type_is_a_400_naming_the_param() -> None:
    err = error_of({"type": "file", "file": {"file_data": b64(b"\x00\x01\x02garbage"), "filename": "x.bin"}})
    assert (err.status, err.param, err.code) == (400, "messages[0].content[0].file.file_data", "invalid_media_type")


def test_invalid_base64_image_is_a_400_naming_the_param() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,@@not-base64@@"}}
    err = error_of({"type": "text", "text": "hi"}, part)
    assert (err.status, err.param) == (400, "messages[0].content[1].image_url")
    assert "base64" in err.message


def test_image_that_is_no_image_is_a_400() -> None:
    err = error_of(image(PDF))
    assert (err.status, err.param, err.code) == (400, "messages[0].content[0].image_url", "invalid_media_type")


def test_audio_of_unknown_type_is_a_400() -> None:
    err = error_of(audio(b"just some text bytes"))
    assert (err.status, err.param) == (400, "messages[0].content[0].input_audio")


def test_non_data_non_http_url_is_a_400() -> None:
    err = error_of({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}})
    assert err.status == 400 and err.param == "messages[0].content[0].image_url"


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"abcd", PNG, PDF * 3])
def test_decoded_size_matches_real_decode(raw: bytes) -> None:
    assert decoded_size(b64(raw)) == len(raw)
