"""The ``#emu {json}`` scripting directive: how a test tells the emulator what to do.

Stateless by design: the directive travels inside the prompt, so the proxy under test forwards
it untouched and no side channel is needed. The marker text counts as ordinary prompt text.
The last directive across systemInstruction then contents (text parts, in order) wins.

Keys (all optional):
- ``reply`` exact text; ``words`` / ``chunks`` / ``delay_ms`` / ``chunk_delay_ms`` override config.
  generateContent answers when the same stream would have sent its last chunk: after
  ``delay_ms`` plus ``chunk_delay_ms`` per chunk after the first.
- ``finish``: finishReason of the last chunk. SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT,
  SPII, IMAGE_SAFETY and MALFORMED_FUNCTION_CALL withhold content: the last chunk (or the
  non-streaming candidate) has no ``content``; the safety ones carry ``safetyRatings`` with one
  ``blocked: true`` rating, MALFORMED_FUNCTION_CALL a ``finishMessage``.
- ``block``: promptFeedback.blockReason; no candidates, prompt-only usage, one SSE event.
- ``error`` (HTTP status) with optional ``retry_after`` (RetryInfo + Retry-After header),
  ``message`` (override), ``error_times`` + ``key`` (only the first N requests with that key fail).
  Also honoured by embedContent / batchEmbedContents, scanning the texts of that one call.
- ``fail_after`` N + ``fail_mode`` reset | error_event (``fail_status``, default 500) | truncate |
  malformed | stall: N is clamped so the final chunk is never sent. generateContent fails the
  same ways after its status line (N only switches it on): reset and truncate cut the body
  halfway, malformed and error_event replace it, stall sends the headers and then nothing.
- ``function_calls`` [{name, args}] (+ ``text`` before them); ``calls_then_stop``.
- ``thoughts``: thought text (forces thinking; shown only with includeThoughts).
- ``no_usage``, ``usage`` (overrides final usageMetadata fields), ``cached_tokens``,
  ``tool_use_prompt_tokens``.
- ``require_signature``: emitted as the functionCall thoughtSignature, and required back: the
  first functionCall part of every model turn must carry it and any other signed call part must
  match it (parallel calls after the first carry no signature, as on the real API).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MARKER = "#emu"
_decoder = json.JSONDecoder()


def directive_text(**kwargs: Any) -> str:
    """The text to put in a prompt to script the emulator, e.g. ``directive_text(finish="SAFETY")``."""
    return MARKER + " " + json.dumps(kwargs)


def _scan(text: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = None
    pos = text.find(MARKER)
    while pos != -1:
        brace = text.find("{", pos + len(MARKER))
        if brace == -1:
            break
        try:
            obj, end = _decoder.raw_decode(text, brace)
        except ValueError:
            pos = text.find(MARKER, pos + len(MARKER))
            continue
        if isinstance(obj, dict):
            found = obj
        pos = text.find(MARKER, end)
    return found


def find_directive(texts: Iterable[str]) -> dict[str, Any]:
    """The last directive across the given texts (in request order), or {}."""
    found: dict[str, Any] = {}
    for text in texts:
        if MARKER in text:
            d = _scan(text)
            if d is not None:
                found = d
    return found


def error_due(d: dict[str, Any], counts: dict[str, int]) -> bool:
    """Whether the directive's scripted ``error`` applies to this request: always, or only for the
    first ``error_times`` requests with its ``key`` (counted in ``counts``, one per emulator)."""
    if d.get("error") is None:
        return False
    if "error_times" in d:
        key = str(d.get("key", ""))
        seen = counts.get(key, 0)
        counts[key] = seen + 1
        if seen >= int(d["error_times"]):
            return False
    return True


def scripted_status(counts: dict[str, int], d: dict[str, Any]) -> int | None:
    """The HTTP status the directive's ``error`` asks for on this request, None when it should
    succeed (see `error_due`; `counts` is shared by every wire format the emulator speaks)."""
    return int(d["error"]) if error_due(d, counts) else None
