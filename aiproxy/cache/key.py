"""The cache key: provider + upstream model + every request field that shapes the answer + scope.

Built from the parsed request (so spelling differences in the JSON do not matter), as canonical
JSON with sorted keys, hashed with sha256: the key never holds prompt text.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# Fields that change how the answer is delivered or labelled, not what it says.
NOT_SHAPING = frozenset({"model", "stream", "stream_options", "user", "metadata", "store"})


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
