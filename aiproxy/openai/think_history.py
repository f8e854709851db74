"""Earlier assistant turns without the `<think>` blocks the proxy itself put there.

In think-tags mode the proxy writes Gemini's thoughts into `content` as `<think>…</think>`
(Lotti shows nothing else), and Lotti sends that content back in the history of the next
request. Sent on as text, the old thoughts would be billed again as input and read by the model
as if it had said them. So the leading think blocks of an assistant turn are dropped before
translation: one or more, with the whitespace around them, in the string form and in the
leading text parts of the list form. A block cut off by a stopped stream (`<think>` never
closed) is all thought and goes too.

Only a block at the very start is removed: text that mentions `<think>` later is the answer
itself and stays, and user messages are never touched. It applies whatever the current
request's reasoning format: a client can switch formats per request (`X-Reasoning-Format`), so
the history may hold tags from an earlier think-tags answer. The thought signatures Gemini needs
back travel in the tool call ids (aiproxy/providers/gemini/tools.py), not in this text.
"""

from __future__ import annotations

import re
from typing import Any

_LEADING_THOUGHTS = re.compile(r"\s*(?:<think>.*?(?:</think>|\Z)\s*)+", re.DOTALL)


def strip_leading_thoughts(text: str) -> str:
    """`text` without the think blocks (and whitespace) it starts with; `text` itself otherwise."""
    match = _LEADING_THOUGHTS.match(text)  # fails at the first non-space that opens no block
    return text[match.end():] if match else text


def assistant_content_without_thoughts(content: Any) -> Any:
    """An assistant message's `content` (string, part list or None) minus its leading thoughts.

    In the list form the leading text parts are stripped in turn: a part the thoughts filled
    becomes empty (and is then skipped by the translator, keeping the other parts' indexes for
    error messages) and the next one is stripped too.
    """
    if isinstance(content, str):
        return strip_leading_thoughts(content)
    if not isinstance(content, list):
        return content
    parts = content
    for i, part in enumerate(content):
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            break
        stripped = strip_leading_thoughts(part["text"])
        if stripped is part["text"]:
            break
        if parts is content:
            parts = list(content)
        parts[i] = {**part, "text": stripped}
        if stripped:
            break
    return parts
