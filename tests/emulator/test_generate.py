"""generateContent and streamGenerateContent: content, framing, usage, generationConfig."""

from __future__ import annotations

import json

import pytest

from aiproxy.emulator import count_tokens

from .conftest import ARRAY, GEN, KEY, SSE, check_genai, parse_sse, req

MODELS = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3.5-flash",
          "gemini-3-flash-preview", "gemini-3-pro-preview", "gemini-3.1-pro-preview"]


def text_of(resp: dict, idx: int = 0) -> str:
    parts = resp["candidates"][idx].get("content", {}).get("parts", [])
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


@pytest.mark.parametrize("model", MODELS)
async def test_generate_shape_and_determinism(emu, model):
    r1 = await emu.post(GEN.format(model), json=req("same prompt"), headers=KEY)
    r2 = await emu.post(GEN.format(model), json=req("same prompt"), headers=KEY)
    assert r1.status == 200 and r1.headers["Content-Type"] == "application/json; charset=UTF-8"
    b1, b2 = await r1.json(), await r2.json()
    check_genai(b1)
    assert list(b1) == ["candidates", "usageMetadata", "modelVersion", "responseId"]
    cand = b1["candidates"][0]
    assert cand["content"]["role"] == "model" and cand["finishReason"] == "STOP" and cand["index"] == 0
    assert len(text_of(b1).split()) == 12
    assert text_of(b1) == text_of(b2) and b1["responseId"] != b2["responseId"]
    assert b1["modelVersion"] == model
    u = b1["usageMetadata"]
    assert u["promptTokenCount"] == count_tokens("same prompt")
    assert u["candidatesTokenCount"] == count_tokens(text_of(b1))
    assert u["totalTokenCount"] == u["promptTokenCount"] + u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0)
    assert ("thoughtsTokenCount" in u) == (model != "gemini-2.5-flash-lite")


async def test_different_prompts_differ(emu):
    a = await (await emu.post(GEN.format("gemini-2.5-flash"), json=req("one"), headers=KEY)).json()
    b = await (await emu.post(GEN.format("gemini-2.5-flash"), json=req("two"), headers=KEY)).json()
    assert text_of(a) != text_of(b)


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-pro-preview"])
async def test_sse_framing_matches_non_streaming(emu, model):
    body = req("stream me", directive={"words": 9, "chunks": 3})
    full = await (await emu.post(GEN.format(model), json=body, headers=KEY)).json()
    r = await emu.post(SSE.format(model), json=body, headers=KEY)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(await r.text())
    assert len(events) == 3
    for e in events:
        check_genai(e)
        assert e["usageMetadata"]["promptTokenCount"] == full["usageMetadata"]["promptTokenCount"]
        assert "totalTokenCount" in e["usageMetadata"]
        assert e["candidates"][0]["index"] == 0 and e["modelVersion"] == model
    assert len({e["responseId"] for e in events}) == 1
    assert ["finishReason" in e["candidates"][0] for e in events] == [False, False, True]
    assert [len(text_of(e).split()) for e in events] == [3, 3, 3]
    assert "".join(text_of(e) for e in events) == text_of(full)
    assert events[-1]["usageMetadata"] == full["usageMetadata"]
    assert "candidatesTokenCount" not in events[0]["usageMetadata"]


async def test_json_array_stream(emu):
    r = await emu.post(ARRAY.format("gemini-2.5-flash"), json=req("x", directive={"chunks": 2}), headers=KEY)
    raw = await r.text()
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert raw.startswith("[{") and raw.endswith("}]") and raw.count(",\r\n{") == 1
    chunks = json.loads(raw)
    assert len(chunks) == 2 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_candidate_count(emu):
    body = req("multi", generationConfig={"candidateCount": 3})
    b = await (await emu.post(GEN.format("gemini-2.5-flash-lite"), json=body, headers=KEY)).json()
    check_genai(b)
    assert [c["index"] for c in b["candidates"]] == [0, 1, 2]
    texts = {text_of(b, i) for i in range(3)}
    assert len(texts) == 3
    assert b["usageMetadata"]["candidatesTokenCount"] == sum(count_tokens(t) for t in texts)
    events = parse_sse(await (await emu.post(SSE.format("gemini-2.5-flash-lite"), json=body, headers=KEY)).text())
    assert all(len(e["candidates"]) == 3 for e in events)
    assert [c["finishReason"] for c in events[-1]["candidates"]] == ["STOP"] * 3


@pytest.mark.parametrize(
    "config,finish,check",
    [
        ({"maxOutputTokens": 5}, "MAX_TOKENS", lambda t: count_tokens(t) <= 5),
        ({"maxOutputTokens": 1000}, "STOP", lambda t: len(t.split()) == 12),
        ({"stopSequences": ["END"]}, "STOP", lambda t: t == "alpha beta "),
    ],
)
async def test_output_limits(emu, config, finish, check):
    body = req("x", directive={"reply": "alpha beta END gamma"} if "stopSequences" in config else {},
               generationConfig=config)
    b = await (await emu.post(GEN.format("gemini-2.5-flash-lite"), json=body, headers=KEY)).json()
    assert b["candidates"][0]["finishReason"] == finish
    assert check(text_of(b))
    assert b["usageMetadata"]["candidatesTokenCount"] == count_tokens(text_of(b))


async def test_sampling_params_accepted(emu):
    cfg = {"seed": 1, "temperature": 0.2, "topP": 0.9, "topK": 20, "presencePenalty": 0.1,
           "frequencyPenalty": 0.1, "response_mime_type": "text/plain"}
    r = await emu.post(GEN.format("gemini-2.5-flash"), json=req("x", generationConfig=cfg), headers=KEY)
    assert r.status == 200


async def test_logprobs_supported_model(emu):
    body = req("x", generationConfig={"responseLogprobs": True, "logprobs": 2})
    b = await (await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)).json()
    check_genai(b)
    cand = b["candidates"][0]
    assert isinstance(cand["avgLogprobs"], float)
    lp = cand["logprobsResult"]
    assert len(lp["chosenCandidates"]) == 12 and all(len(t["candidates"]) == 2 for t in lp["topCandidates"])


@pytest.mark.parametrize("model,thinks", [("gemini-2.5-flash", True), ("gemini-2.5-flash-lite", False),
                                          ("gemini-3-flash-preview", True)])
async def test_thinking(emu, model, thinks):
    hidden = await (await emu.post(GEN.format(model), json=req("x"), headers=KEY)).json()
    assert ("thoughtsTokenCount" in hidden["usageMetadata"]) == thinks
    assert not any(p.get("thought") for p in hidden["candidates"][0]["content"]["parts"])
    body = req("x", generationConfig={"thinkingConfig": {"includeThoughts": True}})
    shown = await (await emu.post(GEN.format(model), json=body, headers=KEY)).json()
    check_genai(shown)
    parts = shown["candidates"][0]["content"]["parts"]
    assert bool(parts[0].get("thought")) == thinks
    if thinks:
        assert shown["usageMetadata"]["thoughtsTokenCount"] == count_tokens(parts[0]["text"])
        events = parse_sse(await (await emu.post(SSE.format(model), json=body, headers=KEY)).text())
        assert events[0]["candidates"][0]["content"]["parts"][0]["thought"] is True
        assert events[0]["usageMetadata"]["thoughtsTokenCount"] == shown["usageMetadata"]["thoughtsTokenCount"]


@pytest.mark.parametrize("tc,thinks", [({"thinkingBudget": 0}, False), ({"thinkingBudget": -1}, True),
                                       ({"thinkingBudget": 512}, True)])
async def test_thinking_budget(emu, tc, thinks):
    body = req("x", generationConfig={"thinkingConfig": tc})
    for model in ("gemini-2.5-flash", "gemini-2.5-flash-lite"):
        b = await (await emu.post(GEN.format(model), json=body, headers=KEY)).json()
        assert ("thoughtsTokenCount" in b["usageMetadata"]) == thinks, model


async def test_thinking_level_on_gemini3(emu):
    body = req("x", generationConfig={"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}})
    b = await (await emu.post(GEN.format("gemini-3-pro-preview"), json=body, headers=KEY)).json()
    assert b["candidates"][0]["content"]["parts"][0]["thought"] is True
    # Gemini 3 signs text answers too: the last text part carries the signature.
    assert "thoughtSignature" in b["candidates"][0]["content"]["parts"][-1]


def accumulated(events: list[dict]) -> dict:
    """What a client accumulates from a response's chunks (one chunk for generateContent): per
    candidate its thought text, answer text, calls and finishing fields; the last usage; the
    envelope's keys. Ids and signatures are random per response, so only their presence counts."""
    cands: dict[int, dict] = {}
    for event in events:
        for cand in event.get("candidates", ()):
            acc = cands.setdefault(cand["index"], {"thought": "", "text": "", "calls": [], "signed": 0})
            for part in (cand.get("content") or {}).get("parts", ()):
                acc["signed"] += "thoughtSignature" in part
                if "functionCall" in part:
                    call = dict(part["functionCall"])
                    acc["calls"].append((call.pop("id", None) is not None, call))
                else:
                    acc["thought" if part.get("thought") else "text"] += part["text"]
            acc.update({k: v for k, v in cand.items() if k not in ("content", "index")})
    last = events[-1]
    return {"keys": list(last), "candidates": cands, "usageMetadata": last.get("usageMetadata"),
            "promptFeedback": last.get("promptFeedback"), "modelVersion": last["modelVersion"],
            "one_response_id": len({e["responseId"] for e in events}) == 1}


SHOW = {"thinkingConfig": {"includeThoughts": True}}
CALLS = [{"name": "a", "args": {"x": 1}}, {"name": "b", "args": {}}]


@pytest.mark.parametrize(("model", "directive", "config"), [
    pytest.param("gemini-2.5-flash", {"words": 20, "chunks": 4}, {}, id="text"),
    pytest.param("gemini-2.5-flash", {"thoughts": "hmm, let me see", "chunks": 3}, SHOW, id="thoughts"),
    pytest.param("gemini-3-pro-preview", {"chunks": 3}, SHOW, id="gemini3-signed-text"),
    pytest.param("gemini-3-pro-preview", {"function_calls": CALLS, "text": "Checking."}, SHOW, id="gemini3-calls"),
    pytest.param("gemini-2.5-flash", {"function_calls": CALLS, "calls_then_stop": True}, {}, id="calls-then-stop"),
    pytest.param("gemini-2.5-flash", {"words": 30, "chunks": 3}, {"maxOutputTokens": 4}, id="max-tokens"),
    pytest.param("gemini-2.5-flash", {"chunks": 2}, {"responseLogprobs": True, "logprobs": 2}, id="logprobs"),
    pytest.param("gemini-2.5-flash-lite", {"chunks": 2}, {"candidateCount": 2}, id="two-candidates"),
    pytest.param("gemini-2.5-flash", {"cached_tokens": 4, "tool_use_prompt_tokens": 3}, {}, id="usage-details"),
    pytest.param("gemini-2.5-flash", {"no_usage": True}, {}, id="no-usage"),
    pytest.param("gemini-2.5-flash", {"block": "SAFETY"}, {}, id="blocked-prompt"),
    pytest.param("gemini-2.5-flash", {"finish": "SAFETY", "chunks": 2}, {}, id="safety-finish"),
    pytest.param("gemini-2.5-flash", {"finish": "MALFORMED_FUNCTION_CALL"}, {}, id="malformed-call-finish"),
])
async def test_generate_content_is_the_streams_final_aggregate(emu, model, directive, config):
    """generateContent answers what the stream adds up to (Gemini's REST API: the same
    GenerateContentResponse, all parts in one candidate), valid for google-genai; the one real
    difference is Gemini's: a candidate filtered at the end has no content in generateContent,
    while its stream had already sent the text before the verdict."""
    body = req("same question", directive=directive, generationConfig=config)
    full = await (await emu.post(GEN.format(model), json=body, headers=KEY)).json()
    check_genai(full)
    events = parse_sse(await (await emu.post(SSE.format(model), json=body, headers=KEY)).text())
    for event in events:
        check_genai(event)
    one, streamed = accumulated([full]), accumulated(events)
    if directive.get("finish") in ("SAFETY", "MALFORMED_FUNCTION_CALL"):
        assert "content" not in full["candidates"][0]
        streamed["candidates"][0]["text"] = ""
    assert one == streamed
