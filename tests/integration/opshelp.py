"""Helpers for the reliability/operations tests: chat calls, SSE parsing, emulator and metric probes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from aiproxy import jsonutil
from aiproxy.emulator import directive_text


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[str]:
        """SSE `data:` payloads in order (`[DONE]` included)."""
        return [line[6:] for line in self.body.decode().split("\n") if line.startswith("data: ")]

    def json(self) -> Any:
        return jsonutil.loads(self.body)

    @property
    def text(self) -> str:
        """The assistant text of a streamed answer."""
        out = []
        for event in self.events:
            if event == "[DONE]":
                continue
            for choice in jsonutil.loads(event).get("choices") or ():
                out.append(choice.get("delta", {}).get("content") or "")
        return "".join(out)


def chat_body(stream: bool = True, model: str = "gpt-4", prompt: str = "hello", **directive: Any) -> dict[str, Any]:
    text = prompt + (" " + directive_text(**directive) if directive else "")
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


async def chat(http: aiohttp.ClientSession, base: str, stream: bool = True, model: str = "gpt-4",
               **directive: Any) -> Answer:
    async with http.post(f"{base}/v1/chat/completions", json=chat_body(stream, model, **directive)) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.read())


async def emulator_stats(http: aiohttp.ClientSession, emulator: TestServer | str) -> dict[str, int]:
    url = emulator if isinstance(emulator, str) else str(emulator.make_url("")).rstrip("/")
    async with http.get(f"{url}/_emulator/stats") as resp:
        return await resp.json()


async def wait_streams_closed(http: aiohttp.ClientSession, emulator: TestServer | str, within: float = 10) -> int:
    """Poll the emulator until no stream is open (bounded); returns the last count seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (count := (await emulator_stats(http, emulator))["open_streams"]) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return count


async def upstream_paths(http: aiohttp.ClientSession, emulator: TestServer) -> list[str]:
    async with http.get(emulator.make_url("/_emulator/requests")) as resp:
        return [r["path"] for r in await resp.json() if ":" in r["path"]]


def metric(name: str, **labels: str) -> float:
    """Current value of one sample in this process's registry (0 when not yet created)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
