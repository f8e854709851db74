"""Shared helpers: a live emulator on loopback, request builders, wire-format parsers, and the
google-genai validation that keeps every body's field names honest."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.genai import _common, types

from aiproxy.emulator import EmulatorConfig, create_emulator_app, directive_text

KEY = {"x-goog-api-key": "test-key"}
GEN = "/v1beta/models/{}:generateContent"
SSE = "/v1beta/models/{}:streamGenerateContent?alt=sse"
ARRAY = "/v1beta/models/{}:streamGenerateContent"


def req(text: str = "hello", *, directive: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A one-turn generateContent body; ``directive`` is appended as ``#emu {...}``."""
    if directive is not None:
        text = f"{text} {directive_text(**directive)}"
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **top}


@pytest.fixture
async def emu(aiohttp_client):
    """A client bound to a fresh emulator; call ``await emu.configure(EmulatorConfig(...))`` to change it."""
    return await aiohttp_client(create_emulator_app())


@pytest.fixture
def make_emu(aiohttp_client):
    async def make(config: EmulatorConfig):
        return await aiohttp_client(create_emulator_app(config))

    return make


def parse_sse(raw: str) -> list[dict[str, Any]]:
    """Strict SSE parsing: every event is exactly ``data: {json}\\r\\n\\r\\n``."""
    assert raw.endswith("\r\n\r\n"), repr(raw[-20:])
    events = raw[: -len("\r\n\r\n")].split("\r\n\r\n")
    out = []
    for event in events:
        assert event.startswith("data: ") and "\n" not in event, repr(event)
        out.append(json.loads(event[len("data: ") :]))
    return out


def _normalize(obj: Any) -> Any:
    """Bytes fields come back URL-safe-or-not; compare them decoded."""
    if isinstance(obj, dict):
        return {k: (base64.b64decode(v + "==", altchars=b"-_" if ("-" in v or "_" in v) else None)
                    if k == "thoughtSignature" else _normalize(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalize(v) for v in obj]
    return obj


def check_genai(obj: dict[str, Any], cls: type[_common.BaseModel] = types.GenerateContentResponse) -> Any:
    """Parse with google-genai (extra='forbid', camelCase aliases) and require a lossless round trip."""
    parsed = cls.model_validate_json(json.dumps(obj))
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _normalize(dumped) == _normalize(obj)
    return parsed
