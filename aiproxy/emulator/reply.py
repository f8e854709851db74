"""Build the reply to a validated request: the same plan renders as one response or as chunks.

One plan per request keeps streaming and non-streaming answers identical in content and usage,
exactly the property the proxy relies on when it folds a stream into one JSON answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

from aiproxy import jsonutil
from aiproxy.emulator.config import EmulatorConfig
from aiproxy.emulator.errors import invalid
from aiproxy.emulator.models import ModelInfo
from aiproxy.emulator.request import GenRequest, get
from aiproxy.emulator.schema_example import InvalidSchema, example_for
from aiproxy.emulator.tokens import count_tokens, json_tokens

VOCAB = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
    "cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
    "officia deserunt mollit anim id est laborum"
).split()
# Finishes after which Google withholds content: the last chunk carries no `content`.
CONTENTLESS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "MALFORMED_FUNCTION_CALL"}
)
_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
_TOKEN_RE = re.compile(r"\s*\S+")


def pseudo_words(seed: bytes, n: int, salt: int) -> list[str]:
    """``n`` lorem-ipsum words chosen by a hash of the prompt: same request, same reply."""
    out: list[str] = []
    counter = 0
    while len(out) < n:
        digest = hashlib.blake2b(seed + salt.to_bytes(4, "big") + counter.to_bytes(4, "big")).digest()
        out.extend(VOCAB[b % len(VOCAB)] for b in digest)
        counter += 1
    return out[:n]


def word_count(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


def split_pieces(text: str, k: int) -> list[str]:
    """``text`` cut into ``k`` pieces of about equal word counts; ''.join(pieces) == text."""
    tokens = _TOKEN_RE.findall(text)
    tail = text[sum(map(len, tokens)) :]
    if not tokens:
        return [text] + [""] * (k - 1)
    tokens[-1] += tail
    n = len(tokens)
    return ["".join(tokens[i * n // k : (i + 1) * n // k]) for i in range(k)]


def safety_ratings(blocked: bool) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [{"category": c, "probability": "NEGLIGIBLE"} for c in _SAFETY_CATEGORIES]
    if blocked:
        ratings[-1] = {"category": _SAFETY_CATEGORIES[-1], "probability": "HIGH", "blocked": True}
    return ratings


def _signature(seed: str) -> str:
    return base64.b64encode(b"\x12\x0a" + hashlib.sha256(seed.encode()).digest() * 2).decode()


class Cand:
    """One candidate's content, before it is cut into chunks."""

    __slots__ = ("index", "thought", "text", "calls", "finish", "signature", "extra")

    def __init__(self, index: int) -> None:
        self.index = index
        self.thought = ""
        self.text = ""
        self.calls: list[dict[str, Any]] = []
        self.finish = "STOP"
        self.signature: str | None = None
        self.extra: dict[str, Any] = {}


class Plan:
    """Everything needed to render the response, streamed or not."""

    __slots__ = ("model", "response_id", "cands", "show_thoughts", "usage", "partial_usage", "block",
                 "chunks", "calls_then_stop")

    def __init__(self, model: ModelInfo) -> None:
        self.model = model
        self.response_id = secrets.token_urlsafe(16)[:22]
        self.cands: list[Cand] = []
        self.show_thoughts = False
        self.usage: dict[str, Any] | None = None
        self.partial_usage: dict[str, Any] | None = None
        self.block: str | None = None
        self.chunks = 1
        self.calls_then_stop = False


def _thinks(req: GenRequest, model: ModelInfo) -> bool:
    budget = get(req.thinking, "thinkingBudget")
    if "thoughts" in req.directive:
        return True
    if get(req.thinking, "thinkingLevel") is not None:
        return True
    if budget is not None:
        return int(budget) != 0
    return model.thinks_by_default


def _default_calls(req: GenRequest) -> list[dict[str, Any]] | None:
    """Mode ANY without a script: call the first allowed function with schema-made args."""
    fcc = get(req.tool_config, "functionCallingConfig") or {}
    if str(get(fcc, "mode", "")).upper() != "ANY":
        return None
    allowed = get(fcc, "allowedFunctionNames")
    for tool in req.tools:
        for decl in get(tool, "functionDeclarations") or ():
            if allowed and decl.get("name") not in allowed:
                continue
            schema = get(decl, "parametersJsonSchema") or decl.get("parameters")
            try:
                args = example_for(schema) if schema else {}
            except InvalidSchema as exc:
                raise invalid(f"Invalid value at 'tools.function_declarations.parameters': {exc}") from None
            return [{"name": decl.get("name", ""), "args": args if isinstance(args, dict) else {}}]
    return None


def _reply_text(req: GenRequest, cfg: EmulatorConfig, seed: bytes, idx: int, has_calls: bool) -> str:
    d = req.directive
    if "reply" in d:
        return str(d["reply"])
    if has_calls:
        return str(d.get("text", ""))
    if str(get(req.config, "responseMimeType", "")).lower() == "application/json":
        schema = get(req.config, "responseJsonSchema") or req.config.get("_responseJsonSchema") or get(
            req.config, "responseSchema"
        )
        if schema:
            try:
                return jsonutil.dumps(example_for(schema)).decode()
            except InvalidSchema as exc:
                raise invalid(f"Invalid value at 'generation_config.response_json_schema': {exc}") from None
        return jsonutil.dumps({"text": " ".join(pseudo_words(seed, int(d.get("words", cfg.words)), idx))}).decode()
    return " ".join(pseudo_words(seed, int(d.get("words", cfg.words)), idx))


def _cut(cand: Cand, config: dict[str, Any]) -> None:
    stops = get(config, "stopSequences") or ()
    cuts = [i for i in (cand.text.find(s) for s in stops if s) if i != -1]
    if cuts:
        cand.text = cand.text[: min(cuts)]
    limit = get(config, "maxOutputTokens")
    if limit is not None and count_tokens(cand.text) > int(limit):
        cand.text = cand.text[: int(limit) * 4]
        cand.finish = "MAX_TOKENS"


def _logprobs(text: str, k: int) -> dict[str, Any]:
    words = text.split() or [""]
    chosen: list[dict[str, Any]] = [{"token": w, "logProbability": -round((len(w) % 7) / 10 + 0.01, 4)} for w in words]
    top = [{"candidates": [c] + [{"token": f"{c['token']}{j}", "logProbability": c["logProbability"] - j}
                                 for j in range(1, k)]} for c in chosen]
    total = sum(c["logProbability"] for c in chosen)
    return {"topCandidates": top, "chosenCandidates": chosen, "logProbabilitySum": round(total, 4)}


def build_plan(req: GenRequest, model: ModelInfo, cfg: EmulatorConfig) -> Plan:
    d = req.directive
    plan = Plan(model)
    plan.chunks = max(1, int(d.get("chunks", cfg.chunks)))
    plan.calls_then_stop = bool(d.get("calls_then_stop"))
    prompt = req.prompt_tokens
    base_usage: dict[str, Any] = {"promptTokenCount": prompt, "totalTokenCount": prompt,
                                  "promptTokensDetails": req.prompt_details}
    if d.get("block"):
        plan.block = str(d["block"])
        plan.usage = None if d.get("no_usage") else base_usage
        return plan
    seed = hashlib.blake2b(req.prompt_key.encode()).digest()
    thinks = _thinks(req, model)
    plan.show_thoughts = bool(get(req.thinking, "includeThoughts")) and thinks
    budget = get(req.thinking, "thinkingBudget")
    calls = d.get("function_calls")
    if calls is None:
        calls = _default_calls(req)
    want_logprobs = bool(get(req.config, "responseLogprobs"))
    candidates, thoughts_tokens = 0, 0
    for idx in range(max(1, int(get(req.config, "candidateCount", 1)))):
        cand = Cand(idx)
        if thinks:
            made_up = "**Thinking it over** " + " ".join(pseudo_words(seed, 8, 1000 + idx))
            cand.thought = str(d.get("thoughts") or made_up)
            if budget is not None and int(budget) > 0:
                cand.thought = cand.thought[: int(budget) * 4]
            thoughts_tokens += count_tokens(cand.thought)
        cand.text = _reply_text(req, cfg, seed, idx, bool(calls))
        _cut(cand, req.config)
        cand.calls = [_call_part(c, plan, idx, j) for j, c in enumerate(calls or ())]
        if "finish" in d:
            cand.finish = str(d["finish"])
        if model.gemini3 or (thinks and cand.calls):
            cand.signature = str(d["require_signature"]) if "require_signature" in d else _signature(
                f"{plan.response_id}:{idx}")
        if cand.finish in CONTENTLESS:
            cand.extra["safetyRatings"] = safety_ratings(cand.finish != "MALFORMED_FUNCTION_CALL")
            if cand.finish == "MALFORMED_FUNCTION_CALL":
                cand.extra = {"finishMessage": "Malformed function call: call:default_api:unknown{"}
        if want_logprobs:
            lp = _logprobs(cand.text, int(get(req.config, "logprobs", 0) or 0) or 1)
            cand.extra["avgLogprobs"] = lp["logProbabilitySum"] / max(1, len(lp["chosenCandidates"]))
            cand.extra["logprobsResult"] = lp
        candidates += count_tokens(cand.text) + sum(json_tokens(p["functionCall"]) for p in cand.calls)
        plan.cands.append(cand)
    if d.get("no_usage"):
        return plan
    tool_use = int(d.get("tool_use_prompt_tokens", 0))
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + candidates + thoughts_tokens + tool_use
    if d.get("cached_tokens"):
        usage["cachedContentTokenCount"] = int(d["cached_tokens"])
    usage["promptTokensDetails"] = req.prompt_details
    if d.get("cached_tokens"):
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": int(d["cached_tokens"])}]
    if tool_use:
        usage["toolUsePromptTokenCount"] = tool_use
        usage["toolUsePromptTokensDetails"] = [{"modality": "TEXT", "tokenCount": tool_use}]
    if thinks:
        usage["thoughtsTokenCount"] = thoughts_tokens
    usage.update(d.get("usage") or {})
    plan.usage = usage
    partial = dict(base_usage)
    partial["totalTokenCount"] = prompt + thoughts_tokens + tool_use
    if thinks:
        partial["thoughtsTokenCount"] = thoughts_tokens
    plan.partial_usage = partial
    return plan


def _call_part(call: dict[str, Any], plan: Plan, idx: int, j: int) -> dict[str, Any]:
    fc: dict[str, Any] = {"name": call.get("name", ""), "args": call.get("args") or {}}
    if plan.model.gemini3:
        # Gemini 3 returns a unique id on every functionCall (function-calling docs).
        fc["id"] = hashlib.blake2b(f"{plan.response_id}:{idx}:{j}".encode(), digest_size=6).hexdigest()[:8]
    return {"functionCall": fc}
