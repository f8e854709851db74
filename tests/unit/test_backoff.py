"""The one backoff (aiproxy.backoff): the delay tables every retry loop in the proxy relies on."""

from __future__ import annotations

import pytest

from aiproxy.backoff import RetryPolicy, backoff_delay

POLICY = RetryPolicy(retries=3, base_delay=0.5, max_delay=4.0, deadline=30.0)


@pytest.mark.parametrize(("attempt", "retry_after", "rand", "expected"), [
    pytest.param(0, None, 1.0, 0.5, id="first-retry-full-draw"),
    pytest.param(1, None, 1.0, 1.0, id="doubles"),
    pytest.param(2, None, 0.5, 1.0, id="jittered-half"),
    pytest.param(5, None, 1.0, 4.0, id="capped-at-max-delay"),
    pytest.param(0, None, 0.0, 0.0, id="jitter-can-be-zero"),
    pytest.param(0, 2.0, 0.1, 2.0, id="retry-after-is-a-floor"),
    pytest.param(3, 1.0, 1.0, 4.0, id="backoff-above-retry-after"),
    pytest.param(0, 4.0, 0.0, 4.0, id="retry-after-equal-to-cap-is-waited"),
    pytest.param(0, 31.0, 0.5, None, id="retry-after-beyond-cap-means-no-retry"),
])
def test_delay(attempt: int, retry_after: float | None, rand: float, expected: float | None) -> None:
    assert POLICY.delay(attempt, retry_after, rand=lambda: rand) == expected


def test_equal_jitter_doubles_caps_and_keeps_half() -> None:
    """The credits outbox's schedule: attempt n waits base * 2^(n-1), capped, at least half of it."""
    top = [backoff_delay(n - 1, 1.0, 30.0, jitter="equal", rand=lambda: 1.0) for n in range(1, 8)]
    assert top == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(2, 1.0, 30.0, jitter="equal", rand=lambda: 0.0) == 2.0  # jitter keeps at least half
