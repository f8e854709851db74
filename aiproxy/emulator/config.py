"""Emulator settings: one small dataclass so tests, `make demo` and `make bench` tune it alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EmulatorConfig:
    """How the emulated Gemini behaves when a request carries no ``#emu`` directive.

    ``api_key`` None accepts any non-empty key (tests rarely care which); a value makes every
    other key fail exactly like Google's API_KEY_INVALID. ``record_requests`` is the size of the
    ring buffer behind ``GET /_emulator/requests``; 0 turns recording off for the benchmark.
    """

    api_key: str | None = None
    words: int = 12
    chunks: int = 3
    delay_ms: float = 0
    chunk_delay_ms: float = 0
    record_requests: int = 200
