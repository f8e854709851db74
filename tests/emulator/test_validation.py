"""Requests Google rejects are rejected here with the same status, status name and message."""

from __future__ import annotations

import pytest

from .conftest import ARRAY, GEN, KEY, req

NOT_FOUND = ("models/{} is not found for API version v1beta, or is not supported for {}. "
             "Call ListModels to see the list of available models and their supported methods.")
SIG_MSG = ("Function call is missing a thought_signature in functionCall parts. This is required for tools "
           "to work correctly, and missing thought_signature may lead to degraded model performance. "
           "Additional data, function call `default_api:{}` , position {}. Please refer to "
           "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")


def call_turns(sig: str | None = None, n_resp: int = 1, name: str = "get_weather") -> dict:
    call = {"functionCall": {"name": name, "args": {"city": "Paris"}}}
    if sig is not None:
        call["thoughtSignature"] = sig
    return {"contents": [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [call]},
        {"role": "user", "parts": [{"functionResponse": {"name": name, "response": {"t": 20}}}] * n_resp},
    ]}


CASES = [
    ("unknown model", "gemini-9", req(), 404, NOT_FOUND.format("gemini-9", "generateContent")),
    ("embedding model on generate", "gemini-embedding-001", req(), 404,
     NOT_FOUND.format("gemini-embedding-001", "generateContent")),
    ("empty contents", "gemini-2.5-flash", {"contents": []}, 400,
     "* GenerateContentRequest.contents: contents is not specified\n"),
    ("no parts", "gemini-2.5-flash", {"contents": [{"role": "user", "parts": []}]}, 400,
     "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n"),
    ("bad role", "gemini-2.5-flash", {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, 400,
     "Please use a valid role: user, model."),
    ("unknown top-level", "gemini-2.5-flash", req(stream=True), 400,
     'Invalid JSON payload received. Unknown name "stream": Cannot find field.'),
    ("unknown generationConfig", "gemini-2.5-flash", req(generationConfig={"maxTokens": 5}), 400,
     "Invalid JSON payload received. Unknown name \"maxTokens\" at 'generation_config': Cannot find field."),
    ("response count", "gemini-2.5-flash", call_turns(n_resp=2), 400,
     "Please ensure that the number of function response parts is equal to the number of function call "
     "parts of the function call turn."),
    ("gemini-3 missing signature", "gemini-3-pro-preview", call_turns(), 400, SIG_MSG.format("get_weather", 2)),
    ("2.5 pro budget 0", "gemini-2.5-pro", req(generationConfig={"thinkingConfig": {"thinkingBudget": 0}}), 400,
     "Budget 0 is invalid. This model only works in thinking mode."),
    ("level on 2.5", "gemini-2.5-flash", req(generationConfig={"thinkingConfig": {"thinkingLevel": "LOW"}}), 400,
     "thinking_level is not supported by this model."),
    ("level and budget", "gemini-3-flash-preview",
     req(generationConfig={"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 100}}), 400,
     "You can only set only one of thinking budget and thinking level."),
    ("logprobs unsupported", "gemini-2.5-pro", req(generationConfig={"responseLogprobs": True}), 400,
     "Logprobs is not enabled for models/gemini-2.5-pro"),
]


@pytest.mark.parametrize("name,model,body,status,message", CASES, ids=[c[0] for c in CASES])
async def test_rejections(emu, name, model, body, status, message):
    r = await emu.post(GEN.format(model), json=body, headers=KEY)
    assert r.status == status
    err = (await r.json())["error"]
    assert err["code"] == status and err["message"] == message
    assert err["status"] == {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}[status]
    # streaming without alt=sse answers errors as a one-element JSON array, as Google does
    r = await emu.post(ARRAY.format(model), json=body, headers=KEY)
    assert r.status == status and (await r.json())[0]["error"]["message"] == message


async def test_unknown_field_details(emu):
    r = await emu.post(GEN.format("gemini-2.5-flash"), json=req(generationConfig={"foo": 1, "bar": 2}), headers=KEY)
    err = (await r.json())["error"]
    assert err["message"].count("\n") == 1
    assert err["details"] == [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
        {"field": "generation_config",
         "description": "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': "
                        "Cannot find field."},
        {"field": "generation_config",
         "description": "Invalid JSON payload received. Unknown name \"bar\" at 'generation_config': "
                        "Cannot find field."},
    ]}]


@pytest.mark.parametrize("sig,status", [("c2lnbmF0dXJl", 200), ("skip_thought_signature_validator", 200), (None, 400)])
async def test_gemini3_signature_required_only_in_current_turn(emu, sig, status):
    body = call_turns(sig)
    r = await emu.post(GEN.format("gemini-3-flash-preview"), json=body, headers=KEY)
    assert r.status == status
    # An unsigned call in an earlier, finished turn is fine.
    body["contents"] += [{"role": "model", "parts": [{"text": "20C"}]}, {"role": "user", "parts": [{"text": "thx"}]}]
    assert (await emu.post(GEN.format("gemini-3-flash-preview"), json=body, headers=KEY)).status == 200
    # 2.5 models never require signatures.
    assert (await emu.post(GEN.format("gemini-2.5-flash"), json=call_turns(None), headers=KEY)).status == 200


async def test_snake_case_fields_accepted(emu):
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "system_instruction": {"parts": [{"text": "be"}]},
            "generation_config": {"max_output_tokens": 2, "thinking_config": {"thinking_budget": 0}}}
    b = await (await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)).json()
    assert b["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert b["usageMetadata"]["promptTokenCount"] == 2


async def test_invalid_json(emu):
    r = await emu.post(GEN.format("gemini-2.5-flash"), data=b"{not json", headers=KEY)
    assert r.status == 400 and (await r.json())["error"]["status"] == "INVALID_ARGUMENT"


MISSING = ("Method doesn't allow unregistered callers (callers without established identity). "
           "Please use API Key or other form of API consumer identity to call this API.")


async def test_auth(make_emu):
    from aiproxy.emulator import EmulatorConfig

    emu = await make_emu(EmulatorConfig(api_key="right"))
    r = await emu.post(GEN.format("gemini-2.5-flash"), json=req())
    assert r.status == 403
    assert await r.json() == {"error": {"code": 403, "message": MISSING, "status": "PERMISSION_DENIED"}}
    r = await emu.post(GEN.format("gemini-2.5-flash"), json=req(), headers={"x-goog-api-key": "wrong"})
    err = (await r.json())["error"]
    assert r.status == 400 and err["status"] == "INVALID_ARGUMENT"
    assert err["message"] == "API key not valid. Please pass a valid API key."
    assert err["details"][0]["reason"] == "API_KEY_INVALID"
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (await emu.post(GEN.format("gemini-2.5-flash") + "?key=right", json=req())).status == 200
    assert (await emu.get("/v1beta/models", headers={"x-goog-api-key": "right"})).status == 200
    assert (await emu.get("/v1beta/models")).status == 403
