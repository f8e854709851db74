"""Render a Plan as Google's GenerateContentResponse JSON: one body, or the stream's chunks.

Stream shape (as Gemini sends it): optional thought chunk first, then text chunks; every chunk
is a full response with ``candidates[].content {role: model, parts}``, ``index``,
``usageMetadata`` (running counts; the final chunk has the complete ones), ``modelVersion`` and
one ``responseId`` shared by all chunks; ``finishReason`` only on the last chunk.
"""

from __future__ import annotations

from typing import Any

from aiproxy.emulator.reply import CONTENTLESS, Cand, Plan, safety_ratings, split_pieces, word_count


def _envelope(plan: Plan, candidates: list[dict[str, Any]] | None, usage: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if candidates is not None:
        out["candidates"] = candidates
    if usage is not None:
        out["usageMetadata"] = usage
    out["modelVersion"] = plan.model.id
    out["responseId"] = plan.response_id
    return out


def blocked(plan: Plan) -> dict[str, Any]:
    feedback: dict[str, Any] = {"blockReason": plan.block}
    if plan.block == "SAFETY":
        feedback["safetyRatings"] = safety_ratings(True)
    out = {"promptFeedback": feedback}
    out.update(_envelope(plan, None, plan.usage))
    return out


def _sign(parts: list[dict[str, Any]], cand: Cand) -> None:
    """Signature on the first functionCall part, else on the last text part (Gemini 3)."""
    if cand.signature is None:
        return
    for part in parts:
        if "functionCall" in part:
            part["thoughtSignature"] = cand.signature
            return
    if not cand.calls:
        for part in reversed(parts):
            if "text" in part and not part.get("thought"):
                part["thoughtSignature"] = cand.signature
                return


def _candidate(cand: Cand, parts: list[dict[str, Any]] | None, finish: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if parts is not None:
        out["content"] = {"parts": parts, "role": "model"}
    if finish:
        out["finishReason"] = cand.finish
        out.update(cand.extra)
    out["index"] = cand.index
    return out


def render_full(plan: Plan) -> dict[str, Any]:
    """The non-streaming generateContent body."""
    if plan.block:
        return blocked(plan)
    cands = []
    for cand in plan.cands:
        parts: list[dict[str, Any]] = []
        if plan.show_thoughts and cand.thought:
            parts.append({"text": cand.thought, "thought": True})
        if cand.text or not cand.calls:
            parts.append({"text": cand.text})
        parts.extend(dict(p) for p in cand.calls)
        _sign(parts, cand)
        cands.append(_candidate(cand, None if cand.finish in CONTENTLESS else parts, True))
    return _envelope(plan, cands, plan.usage)


def render_events(plan: Plan) -> list[dict[str, Any]]:
    """The streamGenerateContent chunks, in order."""
    if plan.block:
        return [blocked(plan)]
    events: list[list[dict[str, Any]]] = []
    if plan.show_thoughts and any(c.thought for c in plan.cands):
        events.append([_candidate(c, [{"text": c.thought, "thought": True}], False) for c in plan.cands])
    # Never more chunks than words: a 2-word reply in 3 chunks would send an empty chunk.
    k = max(1, min(plan.chunks, max(word_count(c.text) for c in plan.cands)))
    pieces = {c.index: split_pieces(c.text, k) for c in plan.cands}
    trailer = (any(c.finish in CONTENTLESS for c in plan.cands)
               or (plan.calls_then_stop and any(c.calls for c in plan.cands)))
    for e in range(k):
        last = e == k - 1
        row = []
        for cand in plan.cands:
            piece = pieces[cand.index][e]
            parts: list[dict[str, Any]] = [{"text": piece}] if piece or not (last and cand.calls) else []
            if last:
                parts.extend(dict(p) for p in cand.calls)
                _sign(parts, cand)
            row.append(_candidate(cand, parts, last and not trailer))
        events.append(row)
    if trailer:
        row = []
        for cand in plan.cands:
            final_parts = None if cand.finish in CONTENTLESS else [{"text": ""}]
            row.append(_candidate(cand, final_parts, True))
        events.append(row)
    out = []
    for i, row in enumerate(events):
        usage = plan.usage if i == len(events) - 1 else plan.partial_usage
        out.append(_envelope(plan, row, usage))
    return out
