"""Secrets never reach a log line: a log-record factory that redacts them as records are made.

It is installed once per process (not per handler), so every handler — the console, JSON logs,
pytest's capture, anything an operator adds — sees only redacted text. It removes the secrets
it was told about (the Gemini key, ADMIN_TOKEN, credentials in URLs) and anything shaped like a
key: client keys (`aip_…`), Google API keys (`AIza…`), bearer tokens and `key=` URL parameters.
Records are only made for enabled levels, so the cost is one regex pass per emitted line.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"

KEY_SHAPES = re.compile(
    r"aip_[A-Za-z0-9_\-]{8,}"  # client keys
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"  # Authorization values
    r"|(?i:(?<=[?&]key=))[^&\s\"']+"  # ?key=… in URLs (Gemini's query-string auth)
    r"|(?i:(?<=x-goog-api-key: ))\S+"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"  # user:password@ in URLs
)


# Text KEY_SHAPES can match contains one of these (lower-cased): a line without any, such as the
# billing line, skips the regex pass, which costs ~9 µs on a line with non-ASCII text.
_SHAPE_HINTS = ("aip_", "aiza", "bearer", "key=", "x-goog-api-key: ", "://")


class Redactor:
    """Known secret values plus key-shaped text, replaced by MASK."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, values: Iterable[str | None]) -> None:
        with self._lock:
            self._secrets.update(v for v in values if v and len(v) >= 6)
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
            self._ordered = tuple(ordered)

    def __call__(self, text: str) -> str:
        """The same text the two regex passes would give; each pass only runs when a plain
        substring test says it could match."""
        if self._pattern is not None and any(secret in text for secret in self._ordered):
            text = self._pattern.sub(MASK, text)
        lowered = text.lower()
        if any(hint in lowered for hint in _SHAPE_HINTS):
            text = KEY_SHAPES.sub(MASK, text)
        return text


REDACTOR = Redactor()
_installed = False


def _redacted_factory(base: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = str(record.msg)
        record.msg, record.args = REDACTOR(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = REDACTOR(logging.Formatter().formatException(record.exc_info))
        return record

    return factory


def install(secrets: Iterable[str | None] = ()) -> None:
    """Register `secrets` and make sure every new log record is redacted (idempotent)."""
    global _installed
    REDACTOR.add(secrets)
    if not _installed:
        logging.setLogRecordFactory(_redacted_factory(logging.getLogRecordFactory()))
        _installed = True


def secret_settings(settings: Any) -> list[str | None]:
    """The configured secrets every log line must hide: the Gemini, OpenAI and Anthropic keys,
    ADMIN_TOKEN, the credits key."""
    values: list[str | None] = [settings.gemini_key, getattr(settings, "openai_key", None)]
    for name in ("admin_token", "credits_service_api_key", "anthropic_api_key"):
        value = getattr(settings, name, None)
        values.append(value.get_secret_value() if value is not None and hasattr(value, "get_secret_value") else value)
    return values
