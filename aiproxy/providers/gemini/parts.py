"""OpenAI content parts -> Gemini parts: the table of part types, written out in one place.

Text and refusals are translated here; media (image_url, input_audio, file) in media.py.
A type missing from the table is a 400 naming the part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiproxy.errors import bad_request
from aiproxy.providers.gemini.media import file_part, image_url_part, input_audio_part

Part = dict[str, Any]
PartTranslator = Callable[[dict[str, Any], str], list[Part]]

def _text_part(part: dict[str, Any], param: str) -> list[Part]:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"Invalid value for '{param}.text': expected a string.", param=f"{param}.text")
    return [{"text": text}] if text else []


def _refusal_part(part: dict[str, Any], param: str) -> list[Part]:
    refusal = part.get("refusal")
    return [{"text": refusal}] if isinstance(refusal, str) and refusal else []


# Content-part type -> translator.
PART_TRANSLATORS: dict[str, PartTranslator] = {
    "text": _text_part,
    "refusal": _refusal_part,
    "image_url": image_url_part,
    "input_audio": input_audio_part,
    "file": file_part,
}


def content_parts(content: str | list[dict[str, Any]] | None, param: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Part] = []
    for i, part in enumerate(content):
        kind = part["type"]
        translate = PART_TRANSLATORS.get(kind)
        if translate is None:
            raise bad_request(
                f"Invalid value for '{param}[{i}].type': unsupported content part type '{kind}'.",
                param=f"{param}[{i}].type",
            )
        parts.extend(translate(part, f"{param}[{i}]"))
    return parts
