"""`logprobs` / `top_logprobs` -> Gemini's responseLogprobs / logprobs, and the answer back.

Gemini reports `logprobsResult {chosenCandidates: [{token, logProbability}], topCandidates:
[{candidates: [...]}]}` per candidate; OpenAI clients read `choices[].logprobs.content[{token,
logprob, bytes, top_logprobs}]`, on each stream delta and concatenated in the folded message.
Models that cannot return logprobs are refused by Gemini itself with a 400 that the proxy passes
on unchanged, so the client learns it instead of silently getting `logprobs: null`. Only runs
when a chunk carries `logprobsResult`: nothing is added to the hot path otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiproxy.errors import bad_request
from aiproxy.openai.types import ChatRequest


def extend_with_logprobs(req: ChatRequest, _model: str, body: dict[str, Any]) -> None:
    if req.top_logprobs is not None and not req.logprobs:
        raise bad_request("Invalid value for 'top_logprobs': it requires `logprobs: true`.", param="top_logprobs")
    if not req.logprobs:
        return
    cfg = body.setdefault("generationConfig", {})
    cfg["responseLogprobs"] = True
    if req.top_logprobs:
        cfg["logprobs"] = req.top_logprobs



def _entry(cand: dict[str, Any]) -> dict[str, Any]:
    token = cand.get("token", "")
    return {"token": token, "logprob": cand.get("logProbability", 0.0), "bytes": list(token.encode("utf-8"))}


def openai_logprobs(result: dict[str, Any]) -> dict[str, Any]:
    """Gemini's logprobsResult -> OpenAI's choice `logprobs` object."""
    chosen = result.get("chosenCandidates") or ()
    tops = result.get("topCandidates") or ()
    content = []
    for i, cand in enumerate(chosen):
        item = _entry(cand)
        alternatives = tops[i].get("candidates") or () if i < len(tops) else ()
        item["top_logprobs"] = [_entry(c) for c in alternatives]
        content.append(item)
    return {"content": content, "refusal": None}


def attach_logprobs(out: list[dict[str, Any]], index: int, new_chunk: Callable[[], dict[str, Any]],
                    result: dict[str, Any]) -> None:
    """Put the logprobs on this candidate's chunk just emitted, or on a new empty-delta chunk."""
    if out and out[-1]["choices"][0]["index"] == index:
        target = out[-1]
    else:
        target = new_chunk()
        out.append(target)
    target["choices"][0]["logprobs"] = openai_logprobs(result)
