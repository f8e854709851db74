"""Every ``#emu`` directive key, asserted on the wire."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest

from aiproxy.emulator import count_tokens, directive_text

from .conftest import ARRAY, GEN, KEY, SSE, check_genai, parse_sse, req

FLASH = "gemini-2.5-flash-lite"  # no default thinking: simplest usage arithmetic


async def gen(emu, d, model=FLASH, **top):
    r = await emu.post(GEN.format(model), json=req("q", directive=d, **top), headers=KEY)
    return r, await r.json()


async def sse(emu, d, model=FLASH, **top):
    r = await emu.post(SSE.format(model), json=req("q", directive=d, **top), headers=KEY)
    return r, parse_sse(await r.text())


def test_directive_text():
    assert directive_text(finish="SAFETY", words=3) == '#emu {"finish": "SAFETY", "words": 3}'


async def test_reply_words_chunks(emu):
    _, b = await gen(emu, {"reply": "exact reply text"})
    assert b["candidates"][0]["content"]["parts"] == [{"text": "exact reply text"}]
    _, b = await gen(emu, {"words": 4})
    assert len(b["candidates"][0]["content"]["parts"][0]["text"].split()) == 4
    _, events = await sse(emu, {"words": 10, "chunks": 5})
    assert [len(e["candidates"][0]["content"]["parts"][0]["text"].split()) for e in events] == [2] * 5
    _, events = await sse(emu, {"words": 2, "chunks": 5})
    assert len(events) == 2  # never an empty chunk


async def test_last_directive_wins_and_marker_counts(emu):
    sys_d = directive_text(reply="from system")
    body = {"systemInstruction": {"parts": [{"text": sys_d}]},
            "contents": [{"role": "user", "parts": [{"text": directive_text(reply="from user")}]}]}
    b = await (await emu.post(GEN.format(FLASH), json=body, headers=KEY)).json()
    assert b["candidates"][0]["content"]["parts"][0]["text"] == "from user"
    prompt = count_tokens(sys_d) + count_tokens(directive_text(reply="from user"))
    assert b["usageMetadata"]["promptTokenCount"] == prompt


async def test_delays(emu):
    t0 = time.perf_counter()
    await gen(emu, {"delay_ms": 150})
    assert time.perf_counter() - t0 >= 0.14
    t0 = time.perf_counter()
    await sse(emu, {"chunks": 3, "chunk_delay_ms": 60})
    assert time.perf_counter() - t0 >= 0.11


SAFETY_LIKE = ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"]


@pytest.mark.parametrize("finish", SAFETY_LIKE + ["MALFORMED_FUNCTION_CALL"])
async def test_contentless_finish(emu, finish):
    _, b = await gen(emu, {"finish": finish})
    check_genai(b)
    cand = b["candidates"][0]
    assert cand["finishReason"] == finish and "content" not in cand
    if finish in SAFETY_LIKE:
        assert {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                "blocked": True} in cand["safetyRatings"]
    else:
        assert cand["finishMessage"].startswith("Malformed function call")
    _, events = await sse(emu, {"finish": finish, "chunks": 2})
    assert len(events) == 3 and "content" not in events[-1]["candidates"][0]
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == finish


@pytest.mark.parametrize("finish", ["STOP", "MAX_TOKENS", "LANGUAGE", "OTHER"])
async def test_plain_finish(emu, finish):
    _, events = await sse(emu, {"finish": finish})
    assert events[-1]["candidates"][0]["finishReason"] == finish and "content" in events[-1]["candidates"][0]


@pytest.mark.parametrize("reason", ["SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"])
async def test_block(emu, reason):
    _, b = await gen(emu, {"block": reason})
    check_genai(b)
    assert "candidates" not in b and b["promptFeedback"]["blockReason"] == reason
    assert ("safetyRatings" in b["promptFeedback"]) == (reason == "SAFETY")
    assert set(b["usageMetadata"]) == {"promptTokenCount", "totalTokenCount", "promptTokensDetails"}
    assert b["usageMetadata"]["totalTokenCount"] == b["usageMetadata"]["promptTokenCount"]
    _, events = await sse(emu, {"block": reason})
    assert len(events) == 1 and events[0]["promptFeedback"]["blockReason"] == reason


ERRORS = [(400, "INVALID_ARGUMENT"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"), (429, "RESOURCE_EXHAUSTED"),
          (500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")]


@pytest.mark.parametrize("code,status", ERRORS)
async def test_error(emu, code, status):
    r, b = await gen(emu, {"error": code})
    assert r.status == code and b["error"]["code"] == code and b["error"]["status"] == status
    assert b["error"]["message"]
    r = await emu.post(SSE.format(FLASH), json=req("q", directive={"error": code}), headers=KEY)
    assert r.status == code and (await r.json())["error"]["status"] == status



async def test_error_fails_one_embed_call(emu):
    url = "/v1beta/models/gemini-embedding-001:"
    item = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "plain"}]}}
    scripted = {**item, "content": {"parts": [{"text": "x " + directive_text(error=503)}]}}
    r = await emu.post(url + "batchEmbedContents", json={"requests": [item, scripted]}, headers=KEY)
    assert r.status == 503 and (await r.json())["error"]["status"] == "UNAVAILABLE"
    r = await emu.post(url + "batchEmbedContents", json={"requests": [item, item]}, headers=KEY)
    assert r.status == 200 and len((await r.json())["embeddings"]) == 2
    r = await emu.post(url + "embedContent", json={"content": scripted["content"]}, headers=KEY)
    assert r.status == 503

async def test_retry_after(emu):
    r, b = await gen(emu, {"error": 429, "retry_after": 7})
    assert r.headers["Retry-After"] == "7"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in b["error"]["details"]
    assert b["error"]["message"].startswith("You exceeded your current quota")


async def test_error_times_per_key(emu):
    d = {"error": 503, "error_times": 2, "key": "retry-1"}
    assert [(await gen(emu, d))[0].status for _ in range(3)] == [503, 503, 200]
    d["key"] = "retry-2"
    assert (await gen(emu, d))[0].status == 503


async def test_function_calls(emu):
    calls = [{"name": "a", "args": {"x": 1}}, {"name": "b", "args": {}}]
    _, b = await gen(emu, {"function_calls": calls, "text": "Let me check."})
    check_genai(b)
    parts = b["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "Let me check."}, {"functionCall": calls[0]}, {"functionCall": calls[1]}]
    assert b["usageMetadata"]["candidatesTokenCount"] == count_tokens("Let me check.") + sum(
        count_tokens(json.dumps(c, separators=(",", ":"))) for c in calls)
    _, events = await sse(emu, {"function_calls": calls})
    assert len(events) == 1
    assert [p["functionCall"]["name"] for p in events[0]["candidates"][0]["content"]["parts"]] == ["a", "b"]


async def test_calls_then_stop(emu):
    _, events = await sse(emu, {"function_calls": [{"name": "a", "args": {}}], "calls_then_stop": True})
    assert len(events) == 2
    assert "finishReason" not in events[0]["candidates"][0]
    assert events[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "a"
    assert events[1]["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert events[1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("model,sig,has_id", [("gemini-3-pro-preview", True, True), ("gemini-2.5-flash", True, False),
                                              ("gemini-2.5-flash-lite", False, False)])
async def test_call_signatures(emu, model, sig, has_id):
    calls = [{"name": "a", "args": {}}, {"name": "b", "args": {}}]
    _, b = await gen(emu, {"function_calls": calls}, model=model)
    check_genai(b)
    parts = b["candidates"][0]["content"]["parts"]
    assert ("thoughtSignature" in parts[0]) == sig and "thoughtSignature" not in parts[1]
    if sig:
        base64.b64decode(parts[0]["thoughtSignature"], validate=True)
    assert all(("id" in p["functionCall"]) == has_id for p in parts)


async def test_require_signature_round_trip(emu):
    d = {"function_calls": [{"name": "f", "args": {}}], "require_signature": "c2ln"}
    first = await (await emu.post(GEN.format("gemini-2.5-flash"), json=req("go", directive=d), headers=KEY)).json()
    part = first["candidates"][0]["content"]["parts"][0]
    assert part["thoughtSignature"] == "c2ln"
    body = req("go", directive=d)
    body["contents"] += [{"role": "model", "parts": [part]},
                         {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]
    assert (await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)).status == 200
    for bad in ("other", None):
        if bad is None:
            part = {"functionCall": part["functionCall"]}
        else:
            part = {**part, "thoughtSignature": bad}
        body["contents"][1] = {"role": "model", "parts": [part]}
        r = await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)
        assert r.status == 400 and "missing a thought_signature" in (await r.json())["error"]["message"]


async def test_thoughts_directive(emu):
    shown = {"thinkingConfig": {"includeThoughts": True}}
    _, b = await gen(emu, {"thoughts": "deep thought"}, generationConfig=shown)
    assert b["candidates"][0]["content"]["parts"][0] == {"text": "deep thought", "thought": True}
    assert b["usageMetadata"]["thoughtsTokenCount"] == count_tokens("deep thought")
    _, b = await gen(emu, {"thoughts": "deep thought"})
    assert not any(p.get("thought") for p in b["candidates"][0]["content"]["parts"])
    assert b["usageMetadata"]["thoughtsTokenCount"] == count_tokens("deep thought")


async def test_usage_directives(emu):
    _, b = await gen(emu, {"no_usage": True})
    assert "usageMetadata" not in b
    _, events = await sse(emu, {"no_usage": True})
    assert all("usageMetadata" not in e for e in events)
    _, b = await gen(emu, {"cached_tokens": 3, "tool_use_prompt_tokens": 5, "usage": {"candidatesTokenCount": 99}})
    check_genai(b)
    u = b["usageMetadata"]
    assert u["cachedContentTokenCount"] == 3 and u["cacheTokensDetails"] == [{"modality": "TEXT", "tokenCount": 3}]
    assert u["toolUsePromptTokenCount"] == 5 and u["candidatesTokenCount"] == 99
    text = b["candidates"][0]["content"]["parts"][0]["text"]
    assert u["totalTokenCount"] == u["promptTokenCount"] + count_tokens(text) + 5  # cached ⊂ prompt


async def open_streams_after(emu, within: float = 3.0) -> int:
    """The emulator's open streams once they have dropped to zero, or after ``within`` seconds."""
    for _ in range(int(within / 0.05)):
        if (await (await emu.get("/_emulator/stats")).json())["open_streams"] == 0:
            break
        await asyncio.sleep(0.05)
    return (await (await emu.get("/_emulator/stats")).json())["open_streams"]


async def _chunks_then(emu, mode, sse_mode=True, **extra):
    d = {"chunks": 3, "fail_after": 1, "fail_mode": mode, **extra}
    url = (SSE if sse_mode else ARRAY).format(FLASH)
    return await emu.post(url, json=req("q", directive=d), headers=KEY)


async def test_fail_truncate(emu):
    raw = await (await _chunks_then(emu, "truncate")).text()
    events = parse_sse(raw)
    assert len(events) == 1 and "finishReason" not in events[0]["candidates"][0]


async def test_fail_error_event(emu):
    raw = await (await _chunks_then(emu, "error_event", fail_status=503)).text()
    events = parse_sse(raw)
    assert len(events) == 2
    assert events[1] == {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                                   "status": "UNAVAILABLE"}}
    arr = json.loads(await (await _chunks_then(emu, "error_event", sse_mode=False)).text())
    assert arr[-1]["error"]["status"] == "INTERNAL"


async def test_fail_malformed(emu):
    raw = await (await _chunks_then(emu, "malformed")).text()
    assert raw.endswith("data: {not json\r\n\r\n") and raw.count("data: ") == 2


async def test_fail_reset(emu):
    r = await _chunks_then(emu, "reset")
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()


async def test_fail_stall_and_disconnect_releases_stream(emu):
    r = await _chunks_then(emu, "stall")
    first = await asyncio.wait_for(r.content.readuntil(b"\r\n\r\n"), 2)
    assert first.startswith(b"data: ")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(r.content.read(1), 0.2)
    assert (await (await emu.get("/_emulator/stats")).json())["open_streams"] == 1
    r.close()  # the client goes away
    assert await open_streams_after(emu) == 0


async def test_slow_stream_disconnect_releases_stream(emu):
    r = await emu.post(SSE.format(FLASH), json=req("q", directive={"chunks": 20, "words": 40, "chunk_delay_ms": 50}),
                       headers=KEY)
    await r.content.readuntil(b"\r\n\r\n")
    r.close()
    assert await open_streams_after(emu) == 0


async def test_generate_answers_when_the_same_stream_would_end(emu):
    """generateContent's status line comes with the whole answer: as late as the stream's last chunk."""
    d = {"chunks": 4, "chunk_delay_ms": 60, "delay_ms": 30}
    t0 = time.perf_counter()
    r, b = await gen(emu, d)
    assert r.status == 200 and b["candidates"][0]["finishReason"] == "STOP"
    assert time.perf_counter() - t0 >= 0.03 + 3 * 0.06 - 0.01


async def _generate_then(emu, mode, **extra):
    d = {"chunks": 3, "fail_after": 1, "fail_mode": mode, **extra}
    return await emu.post(GEN.format(FLASH), json=req("q", directive=d), headers=KEY)


@pytest.mark.parametrize("mode", ["truncate", "malformed"])
async def test_generate_fail_modes_send_a_200_body_that_is_not_json(emu, mode):
    r = await _generate_then(emu, mode)
    assert r.status == 200 and r.headers["Content-Type"] == "application/json; charset=UTF-8"
    raw = await r.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    if mode == "truncate":  # the first half of the real answer
        full = await (await emu.post(GEN.format(FLASH), json=req("q", directive={"chunks": 3}), headers=KEY)).text()
        assert raw.startswith('{"candidates":[{"content":') and 0 < len(raw) < len(full)
    else:
        assert raw == "{not json"


async def test_generate_fail_error_event_is_an_error_body_under_200(emu):
    r = await _generate_then(emu, "error_event", fail_status=503)
    assert r.status == 200
    assert await r.json() == {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                                        "status": "UNAVAILABLE"}}


async def test_generate_fail_reset_breaks_the_body(emu):
    r = await _generate_then(emu, "reset")
    assert r.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()


async def test_generate_fail_stall_sends_headers_then_nothing_until_the_client_leaves(emu):
    r = await _generate_then(emu, "stall")
    assert r.status == 200
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(r.content.read(1), 0.2)
    assert (await (await emu.get("/_emulator/stats")).json())["open_streams"] == 1
    r.close()  # the client goes away
    assert await open_streams_after(emu) == 0
