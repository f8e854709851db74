"""Who a request is billed to, decided by one rule for every endpoint.

Chat and embeddings (and any later endpoint) read the body's claim through `claimed_user`, so
the same body bills the same user wherever it is sent. Without keys the claim is the billing
identity (`anonymous` when there is none); with keys the key's user is billed and the claim is
kept only as the end-user label (see `access.auth.bind_identity`).
"""

from __future__ import annotations

from typing import Any

ANONYMOUS = "anonymous"


def claimed_user(user_id: Any, user: Any) -> str | None:
    """The end user the body names: `user_id` (the seed's billing field) first, then OpenAI's
    `user`; empty or non-string values name no one."""
    for value in (user_id, user):
        if isinstance(value, str) and value:
            return value
    return None


def billing_user(user_id: Any, user: Any) -> str:
    """The identity billed for a body before any key is applied."""
    return claimed_user(user_id, user) or ANONYMOUS


def end_user_label(billed: str) -> str | None:
    """The claim behind a `billing_user` result, kept as the label once a key takes over."""
    return None if billed == ANONYMOUS else billed
