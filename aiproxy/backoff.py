"""The one backoff: capped exponential delays with jitter, for every retry loop in the proxy.

Upstream Gemini retries, ledger batch writes, spool appends, spool replay and the credits
outbox all wait `base * 2^step` seconds, capped, before trying again. Jitter spreads the retries
of many clients (or proxy instances) that failed together: `full` draws from [0, d] (the
shortest mean wait; for in-request retries), `equal` from [d/2, d] (never retries too early; for
the credits outbox, whose steps are minutes apart). Pure: the random source is the caller's, so
the tables in tests/unit/test_backoff.py cover it without sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, overload

Jitter = Literal["full", "equal"]


def backoff_delay(step: int, base: float, cap: float, *, jitter: Jitter = "full",
                  rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry `step` (0-based): min(cap, base * 2^step), jittered."""
    delay = min(cap, base * 2 ** max(0, step))
    return delay * rand() if jitter == "full" else delay * (0.5 + rand() / 2)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries` more attempts, full-jitter exponential backoff, one overall deadline.

    The deadline bounds when a *retry* may start (a wait that would end after it is not taken);
    each attempt keeps its full timeout, since a thinking model may be slow to start.
    """

    retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 5.0
    deadline: float = 30.0

    @overload
    def delay(self, attempt: int, retry_after: None, rand: Callable[[], float] = ...) -> float: ...
    @overload
    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float] = ...) -> float | None: ...

    def delay(self, attempt: int, retry_after: float | None,
              rand: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None: do not retry.

        The server's own Retry-After (Gemini's Retry-After/RetryInfo) is a floor; when it asks
        for longer than `max_delay` (quota windows are often a minute) waiting here would only
        hold the client, so the caller falls back or passes the 429 and its Retry-After on.
        """
        if retry_after is not None and retry_after > self.max_delay:
            return None
        wait = backoff_delay(attempt, self.base_delay, self.max_delay, rand=rand)
        return max(wait, retry_after) if retry_after is not None else wait
