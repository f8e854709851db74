"""The ``#emu {json}`` scripting directive: how a test tells the emulator what to do.

Stateless by design: the directive travels inside the prompt, so the proxy under test forwards
it untouched and no side channel is needed. The marker text counts as ordinary prompt text.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

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
