"""Cached audio priced per modality: cached audio at the cached-audio rate, cached text at the
cached rate, the rest of the audio at the audio rate (issue 10 item 11).

Gemini reports audio in promptTokensDetails and, for the cache, in cacheTokensDetails; both are
parts of promptTokenCount. Counting cached audio as cached text and then the audio again at the
audio rate mispriced mixed cached audio by -54 % / +44 %.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from aiproxy.billing.meter import Meter, apply_usage
from aiproxy.billing.pricing import MILLION, ModelPrice, load_price_table
from aiproxy.billing.record import Metering
from aiproxy.providers.gemini.usage import read_usage
from tests.unit.test_pricing_properties import rates_at

tokens = st.integers(min_value=0, max_value=2_000_000)
any_count = st.integers(min_value=-(10**9), max_value=10**9)
rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def prices(draw: st.DrawFn) -> ModelPrice:
    inp, out = draw(rates), draw(rates)
    cached, audio, cached_audio = draw(st.none() | rates), draw(st.none() | rates), draw(st.none() | rates)
    if not draw(st.booleans()):
        return ModelPrice(inp, out, cached, audio, cached_audio)
    bump = draw(rates)
    return ModelPrice(inp, out, cached, audio, cached_audio, tier_threshold=draw(st.integers(0, 500_000)),
                      input_above=inp + bump, output_above=out + bump,
                      cached_input_above=None if cached is None else cached + bump)


def per_modality(price: ModelPrice, text: int, cached_text: int, audio: int, cached_audio: int, out: int) -> Decimal:
    """The bill written out by modality: the sum the pricing must equal."""
    in_rate, out_rate, cached_rate, audio_rate, cached_audio_rate = rates_at(
        price, text + cached_text + audio + cached_audio)
    return (text * in_rate + cached_text * cached_rate + audio * audio_rate + cached_audio * cached_audio_rate
            + out * out_rate) / MILLION


def as_gemini_reports(price: ModelPrice, text: int, cached_text: int, audio: int, cached_audio: int,
                      out: int) -> Decimal:
    """The same request in Gemini's counts: prompt and audio include their cached parts."""
    return price.cost(text + cached_text + audio + cached_audio, out, cached=cached_text + cached_audio,
                      audio=audio + cached_audio, cached_audio=cached_audio)


@given(price=prices(), counts=st.tuples(tokens, tokens, tokens, tokens, tokens))
def test_cost_equals_the_per_modality_sum(price: ModelPrice, counts: tuple[int, int, int, int, int]) -> None:
    assert as_gemini_reports(price, *counts) == per_modality(price, *counts)


@settings(max_examples=300)
@given(price=prices(), base=st.tuples(tokens, tokens, tokens, tokens, tokens), which=st.integers(0, 4),
       more=st.integers(1, 1_000_000))
def test_one_more_token_of_any_modality_never_lowers_the_bill(
        price: ModelPrice, base: tuple[int, int, int, int, int], which: int, more: int) -> None:
    grown = list(base)
    grown[which] += more
    assert as_gemini_reports(price, *grown) >= as_gemini_reports(price, *base)


@given(price=prices(), counts=st.tuples(any_count, any_count, any_count, any_count, any_count))
def test_cost_is_never_negative_whatever_the_counts(price: ModelPrice, counts: tuple[int, ...]) -> None:
    assert price.cost(*counts) >= 0


def test_mixed_cached_audio_golden_on_gemini_2_5_flash() -> None:
    """10,000 prompt tokens: 4,000 text (1,000 cached) and 6,000 audio (4,000 cached); 500 out.
    $0.30 text, $0.03 cached text, $1.00 audio, $0.10 cached audio, $2.50 output per 1M:
    3,000 x 0.30 + 1,000 x 0.03 + 2,000 x 1.00 + 4,000 x 0.10 + 500 x 2.50 = $0.00458."""
    meta = {
        "promptTokenCount": 10_000, "cachedContentTokenCount": 5_000, "candidatesTokenCount": 500,
        "totalTokenCount": 10_500,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4_000}, {"modality": "AUDIO", "tokenCount": 6_000}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1_000}, {"modality": "AUDIO", "tokenCount": 4_000}],
    }
    m = Metering(request_id="r", user="u", requested_model="gemini-2.5-flash", upstream_model="gemini-2.5-flash")
    apply_usage(m, read_usage(meta), complete=True)
    rec = Meter(load_price_table()).to_record(m)
    assert rec.cost_usd == Decimal("0.00458") and not rec.estimated
