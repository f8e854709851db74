"""The cache key: provider + upstream model + every request field that shapes the answer + scope.

Built from the parsed request (so spelling differences in the JSON do not matter), as canonical
JSON with sorted keys, hashed with sha256: the key never holds prompt text.

A Responses API request is keyed on the chat request it translates to (aiproxy/responses/
request.py), which is everything the upstream sees: `instructions` as the system message, the
whole conversation with `previous_response_id` history and `item_reference`s already resolved
from the response store, tools, `tool_choice`, `text.format`, `reasoning.effort`, sampling and
`max_output_tokens`. So a continued conversation hits only when its resolved history is the same,
whatever response id it was continued from, and never after the stored history changed (deleted
or expired is a 400 before the lookup). What only shapes the Responses presentation (`store`,
`metadata`, `include`, `reasoning.summary`) is applied when the answer is replayed, as for a miss.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# Fields that change how the answer is delivered or labelled, not what it says.
NOT_SHAPING = frozenset({"model", "stream", "stream_options", "user", "user_id", "metadata", "store"})


def answer_shape(req: Any) -> dict[str, Any]:
    """Everything in the request that shapes the answer (messages, tools, sampling, n, seed...)."""
    dumped = req.model_dump(mode="json", exclude_none=True, warnings=False)  # dict-typed fields stay as sent
    shape = {k: v for k, v in dumped.items() if k not in NOT_SHAPING}
    shape["_think_tags"] = bool(getattr(req, "_think_tags", False))
    return shape


def cache_key(provider: str, upstream_model: str, shape: dict[str, Any], scope: str) -> str:
    canonical = orjson.dumps({"provider": provider, "model": upstream_model, "scope": scope, "request": shape},
                             option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()
