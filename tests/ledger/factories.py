"""Test data for the ledger suites."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiproxy.billing.record import UsageRecord

CREDITS_API_KEY = "credits-test-key"  # the credits emulator's key in these tests


def make_record(**overrides: Any) -> UsageRecord:
    """A plausible finished request; tests override what they assert on."""
    values: dict[str, Any] = dict(
        request_id=f"req-{uuid.uuid4().hex[:12]}",
        user="alice",
        key_id=None,
        requested_model="gpt-4",
        upstream_model="gemini-2.5-pro",
        endpoint="chat",
        streamed=True,
        prompt_tokens=1000,
        completion_tokens=1000,
        reasoning_tokens=0,
        cached_tokens=0,
        total_tokens=2000,
        cost_usd=Decimal("0.00075"),
        status="ok",
        estimated=False,
        price_fallback=False,
        started_at=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
        duration_ms=812.5,
        ttft_ms=120.25,
    )
    values.update(overrides)
    return UsageRecord(**values)
