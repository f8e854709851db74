"""When to try Gemini again, how long to wait, and which model to try instead.

Gemini answers 429 (quota) and 503 (overloaded) under load; most of those clear within seconds,
and a different model often has capacity when the requested one has none. Retrying is only safe
before the client has seen a byte, so the upstream client applies this policy while it waits for
the status line and never once a stream has started. The waits come from aiproxy.backoff (the
proxy's one backoff). Everything here is pure (the clock is the caller's), so the table tests
cover it without sleeping.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiproxy.backoff import RetryPolicy as RetryPolicy  # re-exported: the upstream policy's home

# Upstream statuses worth another attempt on the same model (plus connection errors);
# 529 is Anthropic's overloaded_error.
RETRY_STATUSES = frozenset({429, 500, 503, 529})
# Failures after which a configured fallback model is tried (plus first-byte timeouts).
FALLBACK_STATUSES = frozenset({429, 503, 529})

Fallbacks = Mapping[str, tuple[str, ...]]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """HTTP Retry-After (delta-seconds or an HTTP-date) in seconds, None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_info_delay(body: Mapping[str, Any]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "1.5s"`) in Gemini's error body."""
    err = body.get("error")
    details = err.get("details") if isinstance(err, dict) else None
    for detail in details or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def upstream_retry_after(body: Mapping[str, Any], headers: Mapping[str, str]) -> float | None:
    """What Gemini asked us to wait: the Retry-After header, else the RetryInfo detail."""
    from_header = parse_retry_after(headers.get("Retry-After"))
    return from_header if from_header is not None else retry_info_delay(body)


def parse_fallbacks(spec: str) -> dict[str, tuple[str, ...]]:
    """`"a=b,c;d=e"` -> {"a": ("b", "c"), "d": ("e",)}: model a falls back to b, then c.

    Raises ValueError with the offending entry, so a typo fails the start, not a request.
    """
    chains: dict[str, tuple[str, ...]] = {}
    for entry in spec.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        primary, sep, rest = entry.partition("=")
        targets = tuple(t.strip() for t in rest.split(",") if t.strip())
        if not sep or not primary.strip() or not targets:
            raise ValueError(f"expected model=fallback[,fallback...], got {entry!r}")
        chains[primary.strip()] = targets
    return chains


def fallbacks_from_toml(path: Path) -> dict[str, tuple[str, ...]]:
    """The `[fallbacks]` table of a models file: `"gemini-2.5-pro" = ["gemini-3.5-flash"]`."""
    table = tomllib.loads(path.read_text()).get("fallbacks", {})
    chains: dict[str, tuple[str, ...]] = {}
    for primary, targets in table.items():
        items = [targets] if isinstance(targets, str) else list(targets)
        if not items or not all(isinstance(t, str) and t for t in items):
            raise ValueError(f"[fallbacks] {primary!r} must be a model id or a list of model ids")
        chains[str(primary)] = tuple(items)
    return chains


def merge_fallbacks(*sources: Fallbacks) -> dict[str, tuple[str, ...]]:
    """Later sources win per primary model (env over the models file over the shipped file)."""
    merged: dict[str, tuple[str, ...]] = {}
    for source in sources:
        merged.update(source)
    return merged


def model_chain(model: str, fallbacks: Fallbacks) -> tuple[str, ...]:
    """The models to try for `model`, in order, each once."""
    chain = [model]
    for target in fallbacks.get(model, ()):
        if target not in chain:
            chain.append(target)
    return tuple(chain)


def chains_text(fallbacks: Fallbacks) -> Iterable[str]:
    """One line per chain for the start-up log."""
    return (f"{primary} -> {' -> '.join(targets)}" for primary, targets in sorted(fallbacks.items()))
