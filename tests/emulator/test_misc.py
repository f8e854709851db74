"""Token counting, countTokens, embeddings, models, introspection, the CLI and the real SDK."""

from __future__ import annotations

import base64
import math
import os
import re
import subprocess
import sys

import pytest
from google.genai import types

from aiproxy.emulator import EmulatorConfig, count_tokens

from .conftest import GEN, KEY, SSE, check_genai, req

IMG = {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(b"\xff" * 100).decode()}}
AUDIO = {"inlineData": {"mimeType": "audio/mp4", "data": base64.b64encode(b"\0" * 48000).decode()}}  # ~3 s
FCALL = {"functionCall": {"name": "f", "args": {"a": 1}}}


@pytest.mark.parametrize("text,n", [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)])
def test_count_tokens(text, n):
    assert count_tokens(text) == n


MEDIA_CASES = [
    ("text", [{"text": "hello world"}], {"TEXT": 3}),
    ("image", [{"text": "see"}, IMG], {"TEXT": 1, "IMAGE": 258}),
    ("audio", [AUDIO], {"AUDIO": 96}),
    ("two images", [IMG, IMG], {"IMAGE": 516}),
    ("function call", [FCALL], {"TEXT": count_tokens('{"name":"f","args":{"a":1}}')}),
]


@pytest.mark.parametrize("name,parts,by_mod", MEDIA_CASES, ids=[c[0] for c in MEDIA_CASES])
async def test_prompt_tokens_and_count_tokens_agree(emu, name, parts, by_mod):
    body = {"contents": [{"role": "user", "parts": parts}]}
    if name == "function call":
        body["contents"] = [{"role": "user", "parts": [{"text": ""}]}, {"role": "model", "parts": parts},
                            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]
        fr = count_tokens('{"name":"f","response":{}}')
        by_mod = {"TEXT": by_mod["TEXT"] + fr}
    g = await (await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)).json()
    details = {d["modality"]: d["tokenCount"] for d in g["usageMetadata"]["promptTokensDetails"]}
    assert details == by_mod and g["usageMetadata"]["promptTokenCount"] == sum(by_mod.values())
    for count_body in (body, {"generateContentRequest": {"model": "models/gemini-2.5-flash", **body}}):
        c = await (await emu.post("/v1beta/models/gemini-2.5-flash:countTokens", json=count_body, headers=KEY)).json()
        assert c["totalTokens"] == sum(by_mod.values())
        assert c["promptTokensDetails"] == g["usageMetadata"]["promptTokensDetails"]
        types.CountTokensResponse.model_validate({"totalTokens": c["totalTokens"]})
        for d in c["promptTokensDetails"]:
            # google-genai's CountTokensResponse lacks promptTokensDetails (the REST API has it)
            types.ModalityTokenCount.model_validate(d)


async def test_embed(emu):
    url = "/v1beta/models/gemini-embedding-001:embedContent"
    a = await (await emu.post(url, json={"content": {"parts": [{"text": "hi"}]}}, headers=KEY)).json()
    b = await (await emu.post(url, json={"content": {"parts": [{"text": "hi"}]}, "taskType": "RETRIEVAL_QUERY"},
                              headers=KEY)).json()
    assert list(a) == ["embedding"] and a == b
    types.ContentEmbedding.model_validate(a["embedding"])
    assert len(a["embedding"]["values"]) == 3072
    assert math.isclose(sum(v * v for v in a["embedding"]["values"]), 1.0, rel_tol=1e-3)
    small = await (await emu.post(url, json={"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 8},
                                  headers=KEY)).json()
    assert len(small["embedding"]["values"]) == 8
    batch = await (await emu.post("/v1beta/models/gemini-embedding-001:batchEmbedContents", json={"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}} for t in ("hi", "yo")]},
        headers=KEY)).json()
    assert len(batch["embeddings"]) == 2 and batch["embeddings"][0] == a["embedding"]
    assert batch["embeddings"][0] != batch["embeddings"][1]
    r = await emu.post("/v1beta/models/gemini-2.5-flash:embedContent", json={"content": {"parts": [{"text": "x"}]}},
                       headers=KEY)
    assert r.status == 404 and "is not supported for embedContent" in (await r.json())["error"]["message"]


REST_MODEL_FIELDS = {"name", "baseModelId", "version", "displayName", "description", "inputTokenLimit",
                     "outputTokenLimit", "supportedGenerationMethods", "thinking", "temperature", "maxTemperature",
                     "topP", "topK"}


async def test_models_list_get_and_pagination(emu):
    seen, token = [], None
    while True:
        q = "?pageSize=3" + (f"&pageToken={token}" if token else "")
        page = await (await emu.get("/v1beta/models" + q, headers=KEY)).json()
        seen += page["models"]
        token = page.get("nextPageToken")
        if not token:
            break
    names = [m["name"] for m in seen]
    assert len(names) == 8 and len(set(names)) == 8 and "models/gemini-3.1-pro-preview" in names
    for m in seen:
        assert set(m) <= REST_MODEL_FIELDS
        # google-genai renames supportedGenerationMethods -> supportedActions and has no baseModelId.
        sdk = {k: v for k, v in m.items() if k not in ("baseModelId", "supportedGenerationMethods")}
        check_genai({**sdk, "supportedActions": m["supportedGenerationMethods"]}, types.Model)
        one = await (await emu.get(f"/v1beta/{m['name']}", headers=KEY)).json()
        assert one == m
    r = await emu.get("/v1beta/models/nope", headers=KEY)
    assert r.status == 404 and (await r.json())["error"]["status"] == "NOT_FOUND"
    r = await emu.get("/v1/models/gemini-2.5-flash", headers=KEY)
    assert r.status == 200
    r = await emu.post("/v1/models/nope:generateContent", json=req(), headers=KEY)
    assert "for API version v1," in (await r.json())["error"]["message"]


async def test_introspection(emu):
    await emu.post(GEN.format("gemini-2.5-flash") + "?key=secret&foo=1", json=req("rec"), headers={"X-Trace": "t"})
    await emu.post(SSE.format("gemini-2.5-flash"), json=req("rec2"), headers=KEY)
    recs = await (await emu.get("/_emulator/requests")).json()
    assert [r["body"]["contents"][0]["parts"][0]["text"] for r in recs] == ["rec", "rec2"]
    assert recs[0]["method"] == "POST" and recs[0]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert recs[0]["query"] == {"foo": "1"} and recs[0]["headers"]["X-Trace"] == "t"
    assert recs[1]["query"] == {"alt": "sse"} and not any(h.lower() == "x-goog-api-key" for h in recs[1]["headers"])
    stats = await (await emu.get("/_emulator/stats")).json()
    assert stats["requests_total"] == 2 and stats["open_streams"] == 0 and stats["open_connections"] >= 0
    assert (await emu.delete("/_emulator/requests")).status == 200
    assert await (await emu.get("/_emulator/requests")).json() == []


async def test_recording_disabled(make_emu):
    emu = await make_emu(EmulatorConfig(record_requests=0, words=3, chunks=1))
    b = await (await emu.post(GEN.format("gemini-2.5-flash-lite"), json=req(), headers=KEY)).json()
    assert len(b["candidates"][0]["content"]["parts"][0]["text"].split()) == 3
    assert await (await emu.get("/_emulator/requests")).json() == []


async def test_google_genai_sdk_against_emulator(emu):
    """The real SDK parses our bodies (non-streaming and SSE streaming) without complaint."""
    from google import genai

    base = str(emu.make_url("/")).rstrip("/")
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=base, api_version="v1beta"))
    cfg = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    r = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi", config=cfg)
    assert r.text and r.usage_metadata.thoughts_token_count
    chunks = [c async for c in await client.aio.models.generate_content_stream(model="gemini-3-pro-preview",
                                                                               contents="hi")]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert len({c.response_id for c in chunks}) == 1
    tok = await client.aio.models.count_tokens(model="gemini-2.5-flash", contents="hello world")
    assert tok.total_tokens == 3
    emb = await client.aio.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert len(emb.embeddings) == 2
    models = [m.name async for m in await client.aio.models.list()]
    assert "models/gemini-2.5-pro" in models


def test_cli_serves_and_prints_address():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "aiproxy.emulator", "--port", "0", "--quiet", "--words", "2"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"Gemini emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert m, line
        import urllib.request

        with urllib.request.urlopen(urllib.request.Request(m.group(1) + "/v1beta/models", headers=KEY), timeout=5) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=5)
