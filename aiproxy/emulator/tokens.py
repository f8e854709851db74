"""Deterministic token metering, so billing tests can predict every count exactly.

Rule (documented contract, not Google's tokenizer):
- text: ``count_tokens(text) = ceil(len(text) / 4)``, counted per part and summed;
- ``inlineData``/``fileData`` image/*: 258 tokens each (Gemini's fixed per-image cost);
- audio/*: 32 tokens per second (Gemini's published rate), seconds estimated from the decoded
  inlineData size at 16 000 bytes/s (128 kbit/s), at least one second; fileData audio counts 1 s;
- video/*: 263 tokens per second, same size estimate; application/pdf: 258 per document;
- functionCall / functionResponse parts: count_tokens of the compact JSON of their object.

This is the upstream's own count, deliberately not aiproxy.billing.estimate (the proxy's one
estimator, which happens to use the same text rule): tests check the proxy's estimates against
these numbers, and sharing the code would check the estimator against itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiproxy import jsonutil

IMAGE_TOKENS = 258
AUDIO_TOKENS_PER_SECOND = 32
VIDEO_TOKENS_PER_SECOND = 263
MEDIA_BYTES_PER_SECOND = 16000


def count_tokens(text: str) -> int:
    """ceil(len/4); 0 for the empty string."""
    return (len(text) + 3) // 4


def json_tokens(obj: Any) -> int:
    return count_tokens(jsonutil.dumps(obj).decode())


def _media_tokens(mime: str, b64: str | None) -> tuple[str, int]:
    seconds = 1
    if b64:
        seconds = max(1, (len(b64) * 3 // 4) // MEDIA_BYTES_PER_SECOND)
    if mime.startswith("image/"):
        return "IMAGE", IMAGE_TOKENS
    if mime.startswith("audio/"):
        return "AUDIO", AUDIO_TOKENS_PER_SECOND * seconds
    if mime.startswith("video/"):
        return "VIDEO", VIDEO_TOKENS_PER_SECOND * seconds
    return "DOCUMENT", IMAGE_TOKENS


def part_tokens(part: dict[str, Any]) -> tuple[str, int]:
    """(modality, tokens) of one request part."""
    text = part.get("text")
    if text is not None:
        return "TEXT", count_tokens(text)
    blob = part.get("inlineData") or part.get("inline_data")
    if blob is not None:
        return _media_tokens(blob.get("mimeType") or blob.get("mime_type") or "", blob.get("data"))
    fdata = part.get("fileData") or part.get("file_data")
    if fdata is not None:
        return _media_tokens(fdata.get("mimeType") or fdata.get("mime_type") or "", None)
    for key in ("functionCall", "function_call", "functionResponse", "function_response"):
        if key in part:
            return "TEXT", json_tokens(part[key])
    return "TEXT", 0


def prompt_usage(contents: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Total prompt tokens and ``promptTokensDetails`` (one entry per modality, TEXT first)."""
    by_mod: dict[str, int] = {}
    for content in contents:
        for part in content.get("parts") or ():
            mod, n = part_tokens(part)
            by_mod[mod] = by_mod.get(mod, 0) + n
    if not by_mod:
        by_mod["TEXT"] = 0
    details = [{"modality": m, "tokenCount": n} for m, n in by_mod.items()]
    return sum(by_mod.values()), details
