"""What each benchmark cell sends: bodies and paths for direct, proxy and peer targets.

One emulator serves every cell; a cell's model latency travels in the prompt as an `#emu`
directive, so direct and proxied requests meet exactly the same upstream behaviour. A buffered
request to the emulator directly (generateContent) has no per-chunk delay, so its directive
asks for the whole stream's time up front: the floor then waits as long as the proxy's
upstream stream takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiproxy.emulator import directive_text

MODEL = "gemini-2.5-flash"
PROMPT = "Write a short story about a lighthouse keeper."
WORDS = 200
CHUNKS = 20


@dataclass(frozen=True)
class Latency:
    name: str
    first_byte_ms: float
    chunk_ms: float

    def stream_directive(self) -> dict[str, float]:
        if not self.first_byte_ms and not self.chunk_ms:
            return {}
        return {"delay_ms": self.first_byte_ms, "chunk_delay_ms": self.chunk_ms}

    def whole_reply_directive(self) -> dict[str, float]:
        total = self.first_byte_ms + self.chunk_ms * (CHUNKS - 1)
        return {"delay_ms": total} if total else {}


NO_LATENCY = Latency("0ms", 0, 0)
MODEL_LATENCY = Latency("300ms+20ms/chunk", 300, 20)
# The open-streams cell: first chunk at once, then one every 3 s, so streams stay open.
TRICKLE = Latency("trickle", 0, 3000)


@dataclass(frozen=True)
class Cell:
    mode: str  # "buffered" | "streamed"
    latency: Latency
    concurrency: int

    @property
    def streamed(self) -> bool:
        return self.mode == "streamed"

    @property
    def label(self) -> str:
        return f"{self.mode} c={self.concurrency} {self.latency.name}"


def _prompt(directive: dict[str, Any]) -> str:
    return PROMPT + (" " + directive_text(**directive) if directive else "")


def direct_request(cell: Cell, upstream_key: str) -> dict[str, Any]:
    """Gemini's own API on the emulator: the floor."""
    directive = cell.latency.stream_directive() if cell.streamed else cell.latency.whole_reply_directive()
    method = "streamGenerateContent?alt=sse" if cell.streamed else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": _prompt(directive)}]}]}
    return {"path": f"/v1beta/models/{MODEL}:{method}", "body": json.dumps(body),
            "headers": {"x-goog-api-key": upstream_key}}


def gateway_request(cell: Cell, client_key: str | None, model: str = MODEL) -> dict[str, Any]:
    """OpenAI chat completions, as Lotti sends them (no stream_options)."""
    body = {"model": model, "messages": [{"role": "user", "content": _prompt(cell.latency.stream_directive())}],
            "stream": cell.streamed}
    headers = {"Authorization": f"Bearer {client_key}"} if client_key else {}
    return {"path": "/v1/chat/completions", "body": json.dumps(body), "headers": headers}


def all_cells(quick: bool) -> list[Cell]:
    """Quick runs keep c=1 and c=64, the concurrencies the targets are set at, so each gets a verdict."""
    latencies = [NO_LATENCY] if quick else [NO_LATENCY, MODEL_LATENCY]
    concurrencies = (1, 64) if quick else (1, 16, 64)
    return [Cell(mode, lat, c) for lat in latencies for mode in ("buffered", "streamed") for c in concurrencies]
