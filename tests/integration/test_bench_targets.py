"""The benchmark's targets as processes: the bare pass-through's answers, and the proxies `make bench` starts.

The bare pass-through is the reference every proxy figure is compared to, so its answers must be
full, well-formed OpenAI answers (the bench's own sanity check included); the features-on proxy
must really enforce its client key, and each proxy must keep its ledger in its own temporary
directory, gone after the run.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.emulator import directive_text
from bench import cells as C
from bench.procs import Proc, start_bare
from bench.run import Bench, _sane
from tests.conftest import EMULATOR_KEY, emulator_url

FULL_REPLY = directive_text(words=C.WORDS, chunks=C.CHUNKS)


@pytest.fixture
def bare(emulator: TestServer) -> Iterator[Proc]:
    proc = start_bare(emulator_url(emulator), EMULATOR_KEY)  # announces only once it accepts connections
    yield proc
    proc.stop()


def _chat(stream: bool) -> dict[str, Any]:
    return {"model": C.MODEL, "stream": stream,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi " + FULL_REPLY}]}


async def test_bare_buffered_answer_is_one_chat_completion(bare: Proc, http: aiohttp.ClientSession) -> None:
    async with http.post(bare.url + "/v1/chat/completions", json=_chat(False)) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        text = await resp.text()
    body = json.loads(text)
    assert body["object"] == "chat.completion" and body["model"] == C.MODEL and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert len(choice["message"]["content"].split()) == C.WORDS
    usage = body["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert _sane("bare", C.Cell("buffered", C.NO_LATENCY, 1), text)


async def test_bare_stream_is_one_chunk_per_upstream_event_then_done(bare: Proc, http: aiohttp.ClientSession) -> None:
    async with http.post(bare.url + "/v1/chat/completions", json=_chat(True)) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        text = await resp.text()
    events = [block.removeprefix("data: ") for block in text.split("\n\n") if block]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == C.CHUNKS
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant" and all("role" not in d for d in deltas[1:])
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (C.CHUNKS - 1) + ["stop"]
    assert len("".join(d["content"] for d in deltas).split()) == C.WORDS
    assert _sane("bare", C.Cell("streamed", C.NO_LATENCY, 1), text)


async def test_bare_passes_an_upstream_refusal_through(emulator: TestServer, http: aiohttp.ClientSession) -> None:
    proc = start_bare(emulator_url(emulator), "not-the-emulators-key")
    try:
        for stream in (False, True):
            async with http.post(proc.url + "/v1/chat/completions", json=_chat(stream)) as resp:
                assert resp.status in (400, 401, 403)
                assert "error" in await resp.json()
    finally:
        proc.stop()


def _post(port: int, spec: dict[str, Any]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", spec["path"], body=spec["body"],
                     headers={"Content-Type": "application/json", **spec.get("headers", {})})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_bench_starts_shipped_defaults_and_a_features_proxy_behind_its_own_key() -> None:
    opts = {"quick": True, "memledger": False, "features": True, "proxy_env": {}, "features_env": {},
            "cache_env": {}, "client_key": None, "peer_cmd": "", "peer_model": C.MODEL, "workers": 1,
            "log": lambda msg: None}
    bench = Bench(opts)
    cell = C.Cell("buffered", C.NO_LATENCY, 1)
    try:
        bench.start()
        assert list(bench.procs) == ["bare", "proxy", "proxy+features"]
        features = bench.procs["proxy+features"]
        spec = bench._spec("proxy+features", cell, features.port)
        assert spec["headers"]["Authorization"].startswith("Bearer ")
        assert "Authorization" not in bench._spec("proxy", cell, bench.procs["proxy"].port)["headers"]
        assert "Authorization" not in bench._spec("bare", cell, bench.procs["bare"].port)["headers"]
        status, body = _post(features.port, spec)
        assert status == 200 and _sane("proxy+features", cell, body)
        assert _post(features.port, {**spec, "headers": {}})[0] == 401  # keys really enforced
        status, body = _post(bench.procs["proxy"].port, bench._spec("proxy", cell, bench.procs["proxy"].port))
        assert status == 200 and _sane("proxy", cell, body)
        data_dirs = [bench.procs[name].data_dir for name in ("proxy", "proxy+features")]
        assert data_dirs[0] != data_dirs[1]
        assert all(d is not None and (d / "usage.db").is_file() for d in data_dirs)  # the on-disk ledger
    finally:
        bench.stop()
    assert all(d is not None and not d.exists() for d in data_dirs)
