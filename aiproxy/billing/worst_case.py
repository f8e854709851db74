"""A request's worst-case cost at admission: what budgets and credits reserve before the call.

The prompt side is billing.estimate's estimate (text, images, audio, video, PDF pages and tool
declarations by Gemini's published rules; a remote image not yet fetched counts a documented
default). The output side is the client's max_tokens /
max_completion_tokens, or a configured default when it set none: an answer longer than that
default can cost more than was reserved.
"""

from __future__ import annotations

from decimal import Decimal

from aiproxy.billing.estimate import metering_prompt_estimate
from aiproxy.billing.pricing import PriceTable, worst_case_cost
from aiproxy.billing.record import Metering


def prompt_tokens_estimate(m: Metering) -> int:
    return metering_prompt_estimate(m)


def request_worst_case(prices: PriceTable, m: Metering, max_output_tokens: int | None,
                       default_output_tokens: int) -> Decimal:
    """Every estimated prompt token at the dearest input rate plus the output limit at the output
    rate, at `m.upstream_model`'s prices (the fallback price for an unknown model)."""
    output = max_output_tokens if max_output_tokens is not None else default_output_tokens
    return worst_case_cost(prices, m.upstream_model, prompt_tokens_estimate(m), output)
