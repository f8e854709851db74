"""Exact prices: Decimal USD per 1M tokens from a data file, never float.

Gemini's promptTokenCount includes cached and audio tokens, so those are priced at their own
rates and the rest of the prompt at the input rate; thinking tokens are output. Audio tokens
(promptTokensDetails) include cached audio (cacheTokensDetails): the cached part of the audio
is priced at the cached-audio rate and only the rest at the audio rate, and the cached part of
the text at the cached rate, so no token is priced twice or at another modality's rate.
Anthropic also bills prompt tokens written to its cache, at a 5-minute and a 1-hour rate; those
writes are part of the prompt (as OpenAI counts it) and are priced at their rate instead of input.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from aiproxy.config import DATA_DIR

DEFAULT_PRICING_FILE = DATA_DIR / "pricing.toml"
DATED_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")  # Anthropic's and OpenAI's snapshot dates
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    audio_input: Decimal | None = None
    cached_audio_input: Decimal | None = None  # context-cache hits on audio; else the cached rate
    tier_threshold: int | None = None
    input_above: Decimal | None = None
    output_above: Decimal | None = None
    cached_input_above: Decimal | None = None
    cache_write: Decimal | None = None  # prompt tokens written to a 5-minute cache; else the input rate
    cache_write_1h: Decimal | None = None  # written to a 1-hour cache; else the 5-minute write rate
    cache_write_above: Decimal | None = None
    cache_write_1h_above: Decimal | None = None

    def cost(self, prompt: int, completion: int, cached: int = 0, audio: int = 0, cached_audio: int = 0,
             cache_write: int = 0, cache_write_1h: int = 0) -> Decimal:
        """Cost of one request, as Gemini reports the counts: `prompt` includes `cached` and
        `audio`; `cached_audio` is the audio part of `cached` (and of `audio`). `cache_write` and
        `cache_write_1h` are prompt tokens written to a cache (Anthropic's cache_creation), outside
        `cached` and `audio`; more than the rest of the prompt counts as the rest of the prompt.

        Never negative: counts below zero are read as zero (the rates are checked at load)."""
        prompt, completion, cached, audio = max(prompt, 0), max(completion, 0), max(cached, 0), max(audio, 0)
        above = self.tier_threshold is not None and prompt > self.tier_threshold
        in_rate = (self.input_above if above and self.input_above is not None else self.input)
        out_rate = (self.output_above if above and self.output_above is not None else self.output)
        cached_rate = self.cached_input_above if above and self.cached_input_above is not None else self.cached_input
        if cached_rate is None:
            cached_rate = in_rate
        audio_rate = self.audio_input if self.audio_input is not None else in_rate
        cached_audio_rate = self.cached_audio_input if self.cached_audio_input is not None else cached_rate
        cached = min(cached, prompt)
        cached_audio = min(max(cached_audio, 0), cached, audio)
        cached_text = cached - cached_audio
        fresh_audio = min(audio - cached_audio, prompt - cached)
        plain = prompt - cached - fresh_audio
        write_rate = self.cache_write_above if above and self.cache_write_above is not None else self.cache_write
        write_rate = in_rate if write_rate is None else write_rate
        write_1h_rate = self.cache_write_1h_above if above and self.cache_write_1h_above is not None else (
            self.cache_write_1h)
        write_1h_rate = write_rate if write_1h_rate is None else write_1h_rate
        writes = min(max(cache_write, 0), plain)
        writes_1h = min(max(cache_write_1h, 0), plain - writes)
        plain -= writes + writes_1h
        total = (plain * in_rate + cached_text * cached_rate + fresh_audio * audio_rate
                 + cached_audio * cached_audio_rate + writes * write_rate + writes_1h * write_1h_rate
                 + completion * out_rate)
        return total / MILLION


@dataclass(frozen=True)
class PriceTable:
    models: dict[str, ModelPrice]
    fallback: ModelPrice

    def price_for(self, model: str) -> tuple[ModelPrice, bool]:
        """The model's price, and True when the fallback had to be used. A dated snapshot
        (`claude-haiku-4-5-20251001`, `gpt-4.1-2025-04-14`), as upstreams name what served, has
        its undated name's price unless the table lists the snapshot itself."""
        price = self.models.get(model) or self.models.get(DATED_SUFFIX.sub("", model))
        if price is not None:
            return price, False
        return self.fallback, True


def _price(entry: dict[str, Any], where: str) -> ModelPrice:
    def dec(key: str) -> Decimal | None:
        raw = entry.get(key)
        if raw is None:
            return None
        value = Decimal(str(raw))
        if value < 0:
            raise ValueError(f"{where}.{key} is negative")
        return value

    inp, out = dec("input"), dec("output")
    if inp is None or out is None:
        raise ValueError(f"{where} needs both input and output prices")
    threshold = entry.get("tier_threshold")
    for base, above in (("input", "input_above"), ("output", "output_above"), ("cached_input", "cached_input_above"),
                        ("cache_write", "cache_write_above"), ("cache_write_1h", "cache_write_1h_above")):
        low, high = dec(base), dec(above)
        if low is not None and high is not None and high < low:
            # A cheaper upper tier would make one more prompt token lower the bill.
            raise ValueError(f"{where}.{above} is below {base}")
    return ModelPrice(
        input=inp,
        output=out,
        cached_input=dec("cached_input"),
        audio_input=dec("audio_input"),
        cached_audio_input=dec("cached_audio_input"),
        tier_threshold=int(threshold) if threshold is not None else None,
        input_above=dec("input_above"),
        output_above=dec("output_above"),
        cached_input_above=dec("cached_input_above"),
        cache_write=dec("cache_write"),
        cache_write_1h=dec("cache_write_1h"),
        cache_write_above=dec("cache_write_above"),
        cache_write_1h_above=dec("cache_write_1h_above"),
    )


def parse_price_table(text: str) -> PriceTable:
    data = tomllib.loads(text)
    models = {name: _price(entry, f"models.{name}") for name, entry in data.get("models", {}).items()}
    fallback = _price(data["fallback"], "fallback") if "fallback" in data else ModelPrice(Decimal(0), Decimal(0))
    return PriceTable(models=models, fallback=fallback)


def load_price_table(override: Path | None = None) -> PriceTable:
    """The shipped table, or the operator's file layered on top (its models and fallback win)."""
    table = parse_price_table(DEFAULT_PRICING_FILE.read_text())
    if override is None:
        return table
    extra = tomllib.loads(Path(override).read_text())
    ov = parse_price_table(Path(override).read_text())
    return PriceTable(models={**table.models, **ov.models},
                      fallback=ov.fallback if "fallback" in extra else table.fallback)


def worst_case_cost(table: PriceTable, model: str, prompt_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a request can cost: every prompt token at the plain input rate (never the cheaper
    cached rate, and the upper tier when the prompt crosses it) plus `max_output_tokens` output.
    Used by the credits pre-flight check, which must never under-estimate."""
    price, _ = table.price_for(model)
    # The estimate cannot tell modalities apart, nor whether the upstream writes the prompt to a
    # cache: bill the whole prompt the dearest of those ways.
    return max(price.cost(prompt_tokens, max_output_tokens, **way) for way in (
        {}, {"audio": prompt_tokens}, {"cache_write": prompt_tokens}, {"cache_write_1h": prompt_tokens}))


def format_usd(amount: Decimal) -> str:
    """Exact plain-decimal rendering (no exponent, no float rounding): 0.00075, not 7.5E-4."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


def usd_json(amount: Decimal) -> orjson.Fragment:
    """`amount` as an exact JSON number for orjson (0.00075, never 7.5E-4 or a float's
    0.000750000001): what the credits client sends and the credits emulator answers."""
    return orjson.Fragment(format_usd(amount).encode())
