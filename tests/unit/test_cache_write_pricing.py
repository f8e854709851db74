"""Cache-write pricing (Anthropic's 5-minute and 1-hour writes), dated snapshot ids, and the
shipped OpenAI and Anthropic prices with their sources."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from aiproxy.billing.meter import Meter, apply_usage
from aiproxy.billing.pricing import MILLION, ModelPrice, load_price_table, worst_case_cost
from aiproxy.billing.record import Metering
from aiproxy.config import DATA_DIR
from aiproxy.providers.base import UsageCounts

SONNET = ModelPrice(input=Decimal("3"), output=Decimal("15"), cached_input=Decimal("0.30"),
                    cache_write=Decimal("3.75"), cache_write_1h=Decimal("6"), tier_threshold=200_000,
                    input_above=Decimal("6"), output_above=Decimal("22.50"), cached_input_above=Decimal("0.60"),
                    cache_write_above=Decimal("7.50"), cache_write_1h_above=Decimal("12"))
tokens = st.integers(min_value=0, max_value=400_000)


@given(prompt=tokens, completion=tokens, cached=tokens, w5=tokens, w1h=tokens)
def test_each_prompt_token_is_priced_once_at_its_own_rate(prompt: int, completion: int, cached: int, w5: int,
                                                          w1h: int) -> None:
    cost = SONNET.cost(prompt, completion, cached, cache_write=w5, cache_write_1h=w1h)
    cached = min(cached, prompt)
    w5 = min(w5, prompt - cached)
    w1h = min(w1h, prompt - cached - w5)
    plain = prompt - cached - w5 - w1h
    above = prompt > 200_000
    rates = ("6", "0.60", "7.50", "12", "22.50") if above else ("3", "0.30", "3.75", "6", "15")
    expected = sum((n * Decimal(r) for n, r in zip((plain, cached, w5, w1h, completion), rates, strict=True)),
                   Decimal(0))
    assert cost * MILLION == expected


@given(prompt=tokens, completion=tokens, w5=tokens, w1h=tokens)
def test_without_write_rates_writes_cost_the_input_rate(prompt: int, completion: int, w5: int, w1h: int) -> None:
    flat = ModelPrice(input=Decimal("2"), output=Decimal("8"), cached_input=Decimal("0.5"))
    assert flat.cost(prompt, completion, cache_write=w5, cache_write_1h=w1h) == flat.cost(prompt, completion)


@given(prompt=tokens, output=tokens, w5=tokens, w1h=tokens)
def test_worst_case_is_never_below_any_way_the_prompt_is_billed(prompt: int, output: int, w5: int, w1h: int) -> None:
    table = load_price_table()
    worst = worst_case_cost(table, "claude-sonnet-4-5", prompt, output)
    price, _ = table.price_for("claude-sonnet-4-5")
    assert worst >= price.cost(prompt, output, cache_write=w5, cache_write_1h=w1h)
    assert worst == price.cost(prompt, output, cache_write_1h=prompt)  # the 1-hour write is the dearest


def test_the_meter_bills_cache_writes_from_the_providers_counts() -> None:
    m = Metering(request_id="r", user="u", requested_model="claude", upstream_model="claude-sonnet-4-5-20250929",
                 provider="anthropic")
    apply_usage(m, UsageCounts(prompt=10_000, completion=1000, total=11_000, reasoning=0, cached=2000, audio=0,
                               cached_audio=0, cache_write=3000, cache_write_1h=1000), complete=True)
    rec = Meter(load_price_table()).to_record(m)
    # 4000 plain at $3, 2000 cached at $0.30, 3000 5m writes at $3.75, 1000 1h writes at $6, 1000 out at $15
    assert rec.cost_usd == Decimal("0.04485") and not rec.price_fallback


def test_dated_snapshots_have_their_models_price() -> None:
    table = load_price_table()
    for dated, name in (("claude-haiku-4-5-20251001", "claude-haiku-4-5"), ("gpt-4.1-2025-04-14", "gpt-4.1"),
                        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")):
        assert table.price_for(dated) == (table.models[name], False)
    assert table.price_for("gpt-4.1-2025")[1]  # not a date: the fallback, flagged


def test_openai_and_anthropic_models_are_priced_with_sources() -> None:
    text = (DATA_DIR / "pricing.toml").read_text()
    assert "platform.openai.com/docs/pricing" in text and "docs.anthropic.com/en/docs/about-claude/pricing" in text
    table = load_price_table()
    for name in ("gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "o4-mini", "claude-sonnet-4-5",
                 "claude-haiku-4-5", "claude-opus-4-1"):
        price = table.models[name]
        assert price.cached_input is not None and price.cached_input < price.input, name
        if name.startswith("claude-"):
            assert price.cache_write == price.input * Decimal("1.25"), name
            assert price.cache_write_1h == price.input * 2, name
    assert table.models["claude-sonnet-4-5"].tier_threshold == 200_000
