"""Secrets never leak: client keys and the Gemini key are absent from logs and responses."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from aiproxy.observability.redact import MASK, REDACTOR, install
from tests.access.conftest import add_key, bearer, chat_body, scripted
from tests.conftest import EMULATOR_KEY


@pytest.mark.parametrize("text", [
    "key aip_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd used",
    "url https://generativelanguage.googleapis.com/v1beta/models/x:generate?alt=sse&key=SECRETVALUE123",
    "Authorization: Bearer sk-abcdefghijklmnop",
    "google AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "db postgresql://app:hunter2secret@db.internal/ledger",
])  # fmt: skip
def test_key_shaped_text_is_masked(text: str) -> None:
    out = REDACTOR(text)
    assert MASK in out
    for secret in ("aip_AbCd", "SECRETVALUE123", "sk-abcdefghijklmnop", "AIzaSyA", "hunter2secret"):
        assert secret not in out


def test_registered_secrets_are_masked_in_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    install(["plain-secret-value-42"])
    log = logging.getLogger("aiproxy.test")
    with caplog.at_level(logging.INFO):
        log.info("value %s and %r", "plain-secret-value-42", {"k": "plain-secret-value-42"})
        try:
            raise RuntimeError("boom plain-secret-value-42")
        except RuntimeError:
            log.exception("failed")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "plain-secret-value-42" not in text
    assert text.count(MASK) >= 3


async def test_no_secret_in_any_log_line_or_response(proxy_factory: Any, http: aiohttp.ClientSession,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = await proxy_factory(log_level="DEBUG", admin_token="admin-token-secret-9876")
    key, _ = await add_key(proxy)
    seen: list[str] = []
    url = proxy.make_url("/v1/chat/completions")
    cases = [
        (url, chat_body(), bearer(key)),
        (url, chat_body(stream=True), bearer(key)),
        (url, chat_body(scripted(error=500)), bearer(key)),  # upstream failure
        (url, chat_body(scripted(error=403)), bearer(key)),  # Gemini rejects "the key"
        (url, chat_body(scripted(fail_after=1, fail_mode="error_event"), stream=True), bearer(key)),
        (url, chat_body(), bearer(key + "x")),  # wrong key
        (url, chat_body(), {"x-api-key": key[:-1]}),
        (url, {"model": 1}, bearer(key)),
        (proxy.make_url("/v1/usage"), None, bearer(key)),
        (proxy.make_url("/v1/usage"), None, bearer("admin-token-secret-9876")),
    ]
    for target, body, headers in cases:
        method = "POST" if body is not None else "GET"
        async with http.request(method, target, json=body, headers=headers) as resp:
            seen.append(await resp.text())
            seen.append(str(resp.headers))
    logged = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "💰 BILLING" in logged  # the capture did see the proxy's lines
    for secret in (key, key[:-1], key[4:20], EMULATOR_KEY, "admin-token-secret-9876"):
        assert secret not in logged
        assert all(secret not in text for text in seen)


_SECRETS = ["gemini-secret-123456", "admin-token-abcdef"]


def _two_passes(text: str) -> str:
    """The redaction as it was before the substring pre-checks: both regex passes, always."""
    import re

    from aiproxy.observability.redact import KEY_SHAPES, MASK

    ordered = sorted(_SECRETS, key=len, reverse=True)
    text = re.compile("|".join(re.escape(v) for v in ordered)).sub(MASK, text)
    return KEY_SHAPES.sub(MASK, text)


@pytest.mark.parametrize("text", [
    "💰 BILLING | User: u | Model: gemini-2.5-flash | Tokens: 1 input + 2 output = 3 total | Cost: $0.1 USD",
    "key gemini-secret-123456 in a message", "Authorization: BEARER abcdefghijklmnop",
    "GET /v1beta/models?KEY=AIzaSyA-0123456789abcdefghij&x=1", "x-goog-api-key: AIzaSomething",
    "postgresql://bob:hunter2@db/x", "aip_0123456789abcdef and admin-token-abcdef",
    "\u212aey=hidden?&\u212aey=also", "plain text without anything", "AIza0123456789012345678901",
    "bearer\tabcdefgh12345678", "ünïcödé bearer xyzxyzxyzxyz",
])
def test_the_pre_checks_give_exactly_what_both_passes_give(text: str) -> None:
    from aiproxy.observability.redact import Redactor

    redactor = Redactor()
    redactor.add(_SECRETS)
    assert redactor(text) == _two_passes(text)
