"""Exact Decimal pricing: the seed's examples to the last digit, the shipped table, tiers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from aiproxy.billing.pricing import ModelPrice, format_usd, load_price_table, parse_price_table, usd_json

# The seed's flat rates: input $0.00025 and output $0.0005 per 1,000 tokens = $0.25 / $0.50 per 1M.
SEED_TABLE = """
[models."seed-model"]
input = "0.25"
output = "0.50"
"""


@pytest.mark.parametrize(("prompt", "completion", "cost"), [
    (1_000, 1_000, "0.00075"),
    (100, 50, "0.00005"),
    (5_000, 2_000, "0.00225"),
])
def test_the_seeds_examples_exactly(prompt: int, completion: int, cost: str) -> None:
    price, fallback = parse_price_table(SEED_TABLE).price_for("seed-model")
    assert not fallback
    amount = price.cost(prompt, completion)
    assert amount == Decimal(cost)
    assert format_usd(amount) == cost


@pytest.mark.parametrize(("amount", "text"), [
    (Decimal("0"), "0"),
    (Decimal("0.000"), "0"),
    (Decimal("7.5E-4"), "0.00075"),
    (Decimal("0.0000012500"), "0.00000125"),
    (Decimal("12.50"), "12.5"),
    (Decimal("100"), "100"),
    (Decimal("1E+2"), "100"),
])
def test_format_usd_is_plain_and_exact(amount: Decimal, text: str) -> None:
    assert format_usd(amount) == text
    assert orjson.dumps({"amount": usd_json(amount)}) == b'{"amount":' + text.encode() + b"}"


def test_cached_audio_and_thinking_rates() -> None:
    price = ModelPrice(input=Decimal("1"), output=Decimal("10"), cached_input=Decimal("0.1"), audio_input=Decimal("3"))
    # 1,000 prompt tokens of which 600 cached and 100 audio; 200 output (thinking included by the caller).
    expected = (300 * Decimal(1) + 600 * Decimal("0.1") + 100 * Decimal(3) + 200 * Decimal(10)) / 1_000_000
    assert price.cost(1_000, 200, cached=600, audio=100) == expected == Decimal("0.00266")


def test_long_prompts_use_the_upper_tier() -> None:
    price = load_price_table().price_for("gemini-2.5-pro")[0]
    assert price.cost(200_000, 1_000) == Decimal("0.26")  # 200k * 1.25 + 1k * 10, per 1M
    assert price.cost(200_001, 1_000) == (200_001 * Decimal("2.50") + 1_000 * Decimal("15.00")) / 1_000_000


def test_shipped_table_prices_every_model_the_model_map_points_at() -> None:
    from aiproxy.providers.modelmap import load_model_map

    table = load_price_table()
    targets = {*load_model_map().chat.values(), *load_model_map().embeddings.values()}
    assert {t for t in targets if table.price_for(t)[1]} == set()


def test_unknown_model_uses_the_fallback_and_says_so() -> None:
    table = load_price_table()
    price, fallback = table.price_for("gemini-99-ultra")
    assert fallback and price == table.fallback


def test_override_file_layers_on_top(tmp_path: Path) -> None:
    override = tmp_path / "prices.toml"
    override.write_text(SEED_TABLE + '\n[models."gemini-2.5-pro"]\ninput = "9"\noutput = "9"\n')
    table = load_price_table(override)
    assert table.price_for("seed-model")[0].input == Decimal("0.25")
    assert table.price_for("gemini-2.5-pro")[0].input == Decimal("9")
    assert table.price_for("gemini-2.5-flash")[0].input == Decimal("0.30")  # untouched shipped entry
    assert table.fallback == load_price_table().fallback


@pytest.mark.parametrize(("text", "message"), [
    ('[models.x]\ninput = "1"\n', "models.x needs both input and output prices"),
    ('[models.x]\ninput = "-1"\noutput = "1"\n', "models.x.input is negative"),
])
def test_bad_tables_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_price_table(text)
