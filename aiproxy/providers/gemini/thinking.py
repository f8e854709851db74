"""`reasoning_effort` -> Gemini's thinkingConfig, per model family.

Gemini 2.5 takes a token budget (Google maps OpenAI's low/medium/high to 1K/8K/24K); Gemini 3
takes a level, and not every level on every model: Pro has no `minimal` (3 Pro also no
`medium`), and 2.5 Pro cannot switch thinking off (its minimum budget is 128). Sending what a
model refuses would turn a harmless hint into a 400, so each effort maps to the nearest level
the model accepts.

Thoughts are only requested (`includeThoughts`) when the client can receive them: it asked for
reasoning (an effort other than `none`) or it wants them as `<think>` tags in content.
"""

from __future__ import annotations

from typing import Any

from aiproxy.errors import bad_request
from aiproxy.openai.types import ChatRequest

EFFORTS = ("none", "minimal", "low", "medium", "high")

# 2.5 family: thinkingBudget per effort.
_BUDGET_FLASH = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
_BUDGET_PRO = {"none": 128, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576}
# 3 family: thinkingLevel per effort.
_LEVEL_FLASH = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_LEVEL_PRO_31 = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_LEVEL_PRO_3 = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high"}


def thinking_for(model: str, effort: str) -> dict[str, Any]:
    """The thinkingConfig fields (without includeThoughts) for `effort` on `model`."""
    if model.startswith("gemini-3"):
        if "-pro" in model:
            levels = _LEVEL_PRO_3 if model.startswith("gemini-3-pro") else _LEVEL_PRO_31
        else:
            levels = _LEVEL_FLASH
        return {"thinkingLevel": levels[effort]}
    table = _BUDGET_PRO if "-pro" in model else _BUDGET_FLASH
    return {"thinkingBudget": table[effort]}


def wants_thoughts(req: ChatRequest, think_tags: bool) -> bool:
    return think_tags or (req.reasoning_effort is not None and req.reasoning_effort != "none")


def extend_with_thinking(req: ChatRequest, model: str, body: dict[str, Any]) -> None:
    effort = req.reasoning_effort
    if effort is not None and effort not in EFFORTS:
        raise bad_request(f"Invalid value for 'reasoning_effort': expected one of {', '.join(EFFORTS)}.",
                          param="reasoning_effort")
    if not (model.startswith("gemini-2.5") or model.startswith("gemini-3")):
        return  # models without thinking reject thinkingConfig
    config: dict[str, Any] = thinking_for(model, effort) if effort else {}
    if wants_thoughts(req, req._think_tags) and config.get("thinkingBudget") != 0:
        config["includeThoughts"] = True
    if config:
        body.setdefault("generationConfig", {})["thinkingConfig"] = config
