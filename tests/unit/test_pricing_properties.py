"""Pricing properties: exact, monotonic in every token count, the seed's examples, the shipped table."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiproxy.billing.pricing import (
    MILLION,
    ModelPrice,
    format_usd,
    load_price_table,
    parse_price_table,
    worst_case_cost,
)
from aiproxy.config import DATA_DIR

# The seed's flat table: $0.00025 input and $0.0005 output per 1,000 tokens.
SEED = ModelPrice(input=Decimal("0.25"), output=Decimal("0.50"))

tokens = st.integers(min_value=0, max_value=2_000_000)
rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def prices(draw: st.DrawFn) -> ModelPrice:
    """Any valid price: optional cached/audio rates and an optional upper tier no cheaper than the base."""
    inp, out = draw(rates), draw(rates)
    cached = draw(st.none() | rates)
    audio = draw(st.none() | rates)
    if not draw(st.booleans()):
        return ModelPrice(inp, out, cached, audio)
    bump = draw(rates)
    return ModelPrice(
        inp, out, cached, audio,
        tier_threshold=draw(st.integers(0, 500_000)),
        input_above=inp + bump, output_above=out + bump,
        cached_input_above=None if cached is None else cached + bump,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "completion", "expected"),
    [(1000, 1000, "0.00075"), (100, 50, "0.00005"), (5000, 2000, "0.00225")],
)
def test_seed_examples(prompt: int, completion: int, expected: str) -> None:
    cost = SEED.cost(prompt, completion)
    assert cost == Decimal(expected)
    assert format_usd(cost) == expected


@given(prompt=tokens, completion=tokens)
def test_flat_cost_is_exact(prompt: int, completion: int) -> None:
    # Exact: a million times the cost is the integer-cent arithmetic, no rounding anywhere.
    assert SEED.cost(prompt, completion) * MILLION == prompt * Decimal("0.25") + completion * Decimal("0.50")


def rates_at(price: ModelPrice, prompt: int) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """(input, output, cached, audio, cached audio) rates for a prompt of this size, written out."""
    above = price.tier_threshold is not None and prompt > price.tier_threshold
    in_rate = price.input_above if above and price.input_above is not None else price.input
    out_rate = price.output_above if above and price.output_above is not None else price.output
    cached_rate = price.cached_input_above if above and price.cached_input_above is not None else price.cached_input
    cached_rate = in_rate if cached_rate is None else cached_rate
    audio_rate = in_rate if price.audio_input is None else price.audio_input
    cached_audio_rate = cached_rate if price.cached_audio_input is None else price.cached_audio_input
    return in_rate, out_rate, cached_rate, audio_rate, cached_audio_rate


@given(price=prices(), plain=tokens, cached=tokens, audio=tokens, out=tokens)
def test_cost_is_exact_sum_of_parts(price: ModelPrice, plain: int, cached: int, audio: int, out: int) -> None:
    prompt = plain + cached + audio
    in_rate, out_rate, cached_rate, audio_rate, _ = rates_at(price, prompt)
    expected = (plain * in_rate + cached * cached_rate + audio * audio_rate + out * out_rate) / MILLION
    assert price.cost(prompt, out, cached=cached, audio=audio) == expected


@settings(max_examples=300)
@given(
    price=prices(),
    base=st.tuples(tokens, tokens, tokens, tokens),
    which=st.integers(0, 3),
    more=st.integers(1, 1_000_000),
)
def test_cost_never_falls_when_any_token_count_grows(price: ModelPrice, base: tuple[int, int, int, int], which: int,
                                                     more: int) -> None:
    """Plain input, cached input, audio input and output are disjoint counts (Gemini folds the first
    three into promptTokenCount); one more token of any kind never lowers the bill."""

    def cost(plain: int, cached: int, audio: int, out: int) -> Decimal:
        return price.cost(plain + cached + audio, out, cached=cached, audio=audio)

    grown = list(base)
    grown[which] += more
    assert cost(*grown) >= cost(*base)


def test_thinking_and_tiers_on_a_shipped_model() -> None:
    table = load_price_table()
    pro, fallback = table.price_for("gemini-2.5-pro")
    assert not fallback
    # 1,000 prompt + 300 output of which 200 were thoughts: thoughts are already in the output.
    assert pro.cost(1000, 300) == Decimal("0.00425")
    # 1,000 cached of 201,000 prompt tokens: the whole prompt is above the 200k tier.
    assert pro.cost(201_000, 0, cached=1000) == Decimal("0.50025")


def test_unknown_model_is_priced_at_the_flagged_fallback() -> None:
    price, fallback = load_price_table().price_for("gemini-99-ultra")
    assert fallback
    assert price.cost(1_000_000, 1_000_000) == Decimal("17.50")


def test_every_shipped_price_cites_source_and_date() -> None:
    text = (DATA_DIR / "pricing.toml").read_text()
    assert "ai.google.dev/gemini-api/docs/pricing" in text
    table = parse_price_table(text)
    blocks = text.split("[models.")[1:]
    assert len(blocks) == len(table.models)
    for name in table.models:
        # The comment block right above each model's table dates its check.
        above = text.split(f'[models."{name}"]')[0].rstrip().splitlines()
        comment = []
        while above and above[-1].startswith("#"):
            comment.append(above.pop())
        assert any("Checked 2026-" in line for line in comment), name


def test_every_mapped_model_has_a_real_price() -> None:
    import tomllib

    mapped = tomllib.loads((DATA_DIR / "models.toml").read_text())
    table = load_price_table()
    targets = set(mapped["chat"].values()) | set(mapped["embeddings"].values())
    assert targets <= set(table.models), targets - set(table.models)


def test_override_file_replaces_models_and_fallback(tmp_path) -> None:
    override = tmp_path / "prices.toml"
    override.write_text('[fallback]\ninput = "1"\noutput = "1"\n'
                        '[models."gemini-2.5-pro"]\ninput = "0.25"\noutput = "0.50"\n')
    table = load_price_table(override)
    assert table.price_for("gemini-2.5-pro")[0].cost(1000, 1000) == Decimal("0.00075")
    assert table.price_for("gemini-2.5-flash")[0].input == Decimal("0.30")  # untouched
    assert table.fallback.cost(10**6, 0) == 1


def test_a_cheaper_upper_tier_is_rejected() -> None:
    with pytest.raises(ValueError, match="input_above"):
        parse_price_table('[models.x]\ninput = "2"\noutput = "1"\ntier_threshold = 10\ninput_above = "1"\n')


def test_worst_case_never_below_any_real_outcome() -> None:
    table = load_price_table()
    for model in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-3.5-flash", "unknown-model"):
        worst = worst_case_cost(table, model, 250_000, 4000)
        price, _ = table.price_for(model)
        for cached, audio in ((0, 0), (0, 250_000), (100_000, 0), (50_000, 100_000)):
            assert worst >= price.cost(250_000, 4000, cached=cached, audio=audio)
