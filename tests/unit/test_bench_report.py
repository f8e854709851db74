"""The benchmark's pure report code: percentiles, figures over the floor, target verdicts, table."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench import report
from bench.stats import percentile, summarize


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([5.0], 50, 5.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
    ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
    ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
    ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # unsorted input
    (list(range(1, 101)), 99, 99.01),
])
def test_percentile_interpolates_like_numpy(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan_not_zero() -> None:
    assert math.isnan(percentile([], 50))


def test_summarize_reports_milliseconds() -> None:
    s = summarize([0.001, 0.002, 0.003])
    assert s["n"] == 3
    assert s["p50"] == pytest.approx(2.0)
    assert s["max"] == pytest.approx(3.0)
    assert s["mean"] == pytest.approx(2.0)


PACED = report.PACED


def _run(target: str, mode: str, c: int, rps: float, p50: float, p99: float, ttfb: float, cpu: float,
         n: int = 1000, latency: str = "0ms") -> dict[str, Any]:
    return {"cell": {"mode": mode, "latency": latency, "concurrency": c, "chunks": 20}, "target": target,
            "rps": rps, "requests": n, "errors": 0, "statuses": {"200": n}, "sane": True,
            "latency": {"p50": p50, "p99": p99}, "ttfb": {"p50": ttfb}, "target_cpu_seconds": cpu}


# One run where `proxy` meets every target: each miss case below changes one figure.
RUNS = [
    _run("direct", "buffered", 1, 5000, 0.20, 0.30, 0.20, 0.1),
    _run("bare", "buffered", 1, 1700, 0.60, 0.90, 0.60, 0.3),
    _run("proxy", "buffered", 1, 1200, 0.85, 1.10, 0.85, 0.4),  # +0.65 ms, bare +0.40: limit +0.70
    _run("direct", "streamed", 1, 2500, 0.40, 0.60, 0.20, 0.3),
    _run("bare", "streamed", 1, 1300, 0.80, 1.00, 0.30, 0.4),
    _run("proxy", "streamed", 1, 1000, 1.05, 1.40, 0.45, 0.6),  # +0.65 ms, bare +0.40
    _run("direct", "buffered", 64, 9000, 7.0, 10.0, 7.0, 2.0),
    _run("bare", "buffered", 64, 3000, 21.0, 30.0, 21.0, 1.0),
    _run("proxy", "buffered", 64, 2800, 23.0, 40.0, 23.0, 0.9),  # 0.93x bare
    _run("proxy+memledger", "buffered", 64, 2800, 23.0, 40.0, 23.0, 0.9),
    _run("proxy+features", "buffered", 64, 2700, 24.0, 41.0, 24.0, 0.9),  # 96.4% of memledger
    _run("proxy+cache", "buffered", 64, 5000, 13.0, 20.0, 13.0, 0.15, n=5000),  # 30 us vs 900 us: 3.3%
    _run("direct", "streamed", 64, 3000, 20.0, 30.0, 19.0, 2.0),
    _run("bare", "streamed", 64, 2000, 32.0, 45.0, 30.0, 0.25),  # 12.5 us/chunk
    _run("proxy", "streamed", 64, 1900, 34.0, 50.0, 31.0, 0.4),  # 0.95x bare; 20 us/chunk
    _run("proxy+memledger", "streamed", 64, 1900, 34.0, 50.0, 31.0, 0.4),
    _run("proxy+features", "streamed", 64, 1850, 35.0, 52.0, 32.0, 0.4),  # 97.4%
    _run("proxy+cache", "streamed", 64, 4000, 16.0, 24.0, 15.0, 0.1, n=4000),  # 25 us vs 400 us: 6.3%
    # With the model's latency: a miss waits for the model, a hit does not.
    _run("proxy", "buffered", 1, 1.4, 700.0, 705.0, 700.0, 0.01, n=8, latency=PACED),
    _run("proxy+cache", "buffered", 1, 900, 1.1, 2.0, 1.1, 0.5, n=5000, latency=PACED),  # 0.16%
    _run("proxy", "streamed", 1, 1.4, 705.0, 710.0, 303.0, 0.01, n=8, latency=PACED),
    _run("proxy+cache", "streamed", 1, 800, 1.3, 2.2, 1.2, 0.5, n=5000, latency=PACED),  # 0.18%
]
MEMORY = {"proxy": {"start_mb": 50.0, "idle_mb": 52.0, "peak_mb": 90.0,
                    "open_streams": {"streams": 1000, "asked": 1000, "before_mb": 55.0, "open_mb": 80.0}}}


def _with(target: str, mode: str, c: int, latency: str = "0ms", **changes: Any) -> list[dict[str, Any]]:
    """RUNS with one run's figures changed."""
    out = []
    for r in RUNS:
        if (r["target"], r["cell"]["mode"], r["cell"]["concurrency"], r["cell"]["latency"]) == (target, mode, c,
                                                                                             latency):
            r = {**r, **{k: v for k, v in changes.items() if k != "p50"}}
            if "p50" in changes:
                r["latency"] = {**r["latency"], "p50": changes["p50"]}
        out.append(r)
    return out


CACHE_OFF_US = 0.09  # what the off cache adds to a request: 0.01% of the proxy's 900 us


def _verdicts(runs: list[dict[str, Any]], memory: dict[str, Any] = MEMORY,
              cache_off_us: float | None = CACHE_OFF_US) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in report.evaluate_targets(report.derive(runs), memory, cache_off_us=cache_off_us)}


REPORTED_ONLY = {"cache_hit_cpu"}  # shown, never judged


def _row(rows: list[dict[str, Any]], target: str, mode: str, c: int) -> dict[str, Any]:
    return next(r for r in rows if (r["target"], r["mode"], r["concurrency"], r["latency"]) == (target, mode, c, "0ms"))


def test_derive_measures_against_the_same_cells_direct_and_bare_runs() -> None:
    rows = report.derive(RUNS)
    row = _row(rows, "proxy", "streamed", 1)
    assert row["added_p50_ms"] == pytest.approx(0.65)
    assert row["added_p99_ms"] == pytest.approx(0.80)
    assert row["added_ttfb_p50_ms"] == pytest.approx(0.25)
    assert row["rps_ratio"] == pytest.approx(1000 / 2500)
    assert row["bare_ratio"] == pytest.approx(1000 / 1300)
    assert row["added_p50_vs_bare_ms"] == pytest.approx(0.25)
    assert row["cpu_us_per_request"] == pytest.approx(600.0)
    assert row["cpu_us_per_chunk"] == pytest.approx(30.0)


def test_derive_leaves_relative_figures_empty_for_the_references_and_buffered_ttfb() -> None:
    rows = report.derive(RUNS)
    direct, bare = _row(rows, "direct", "buffered", 1), _row(rows, "bare", "buffered", 1)
    assert math.isnan(direct["rps_ratio"]) and math.isnan(direct["added_p50_ms"])
    assert math.isnan(direct["bare_ratio"]) and math.isnan(bare["bare_ratio"])
    assert math.isnan(bare["added_p50_vs_bare_ms"])
    assert bare["rps_ratio"] == pytest.approx(1700 / 5000)  # bare is itself measured over direct
    assert math.isnan(_row(rows, "proxy", "buffered", 1)["added_ttfb_p50_ms"])
    assert math.isnan(_row(rows, "proxy", "buffered", 1)["cpu_us_per_chunk"])


def test_cpu_too_small_to_count_in_ticks_is_not_reported() -> None:
    rows = report.derive([_run("proxy", "streamed", 1, 1.3, 690, 692, 302, 0.04, n=8)])
    assert math.isnan(rows[0]["cpu_us_per_request"]) and math.isnan(rows[0]["cpu_us_per_chunk"])


def test_every_target_is_met_by_the_base_run() -> None:
    verdicts = _verdicts(RUNS)
    assert [t[0] for t in report.TARGET_SPECS] == list(verdicts)
    assert {name: v["met"] for name, v in verdicts.items() if name not in REPORTED_ONLY} == {
        name: True for name in verdicts if name not in REPORTED_ONLY}
    assert verdicts["cache_hit_cpu"]["met"] is None
    assert verdicts["cache_hit_cpu"]["measured"] == pytest.approx(25 / 400)  # the dearer mode


@pytest.mark.parametrize(("name", "runs", "memory", "measured"), [
    ("rps_vs_bare_buffered_c64", _with("proxy", "buffered", 64, rps=2600), MEMORY, 2600 / 3000),
    ("rps_vs_bare_streamed_c64", _with("proxy", "streamed", 64, rps=1700), MEMORY, 1700 / 2000),
    ("added_p50_buffered_c1", _with("proxy", "buffered", 1, p50=0.95), MEMORY, 0.75),
    ("added_p50_streamed_c1", _with("proxy", "streamed", 1, p50=1.20), MEMORY, 0.80),
    ("cpu_per_chunk", _with("proxy", "streamed", 64, target_cpu_seconds=0.6), MEMORY, 30.0),
    ("open_streams_rss", RUNS, {"proxy": {**MEMORY["proxy"], "open_streams": {
        **MEMORY["proxy"]["open_streams"], "open_mb": 100.0}}}, 48.0),
    ("features_cost", _with("proxy+features", "buffered", 64, rps=2500), MEMORY, 2500 / 2800),
    ("cache_hit_time", _with("proxy+cache", "streamed", 1, PACED, p50=80.0), MEMORY, 80 / 705),
])
def test_each_target_misses_when_its_figure_is_past_the_goal(
        name: str, runs: list[dict[str, Any]], memory: dict[str, Any], measured: float) -> None:
    verdicts = _verdicts(runs, memory)
    assert verdicts[name]["measured"] == pytest.approx(measured)
    assert verdicts[name]["met"] is False
    assert all(v["met"] for other, v in verdicts.items() if other != name and other not in REPORTED_ONLY)


def test_the_cache_off_is_judged_on_its_share_of_the_proxys_cpu() -> None:
    assert _verdicts(RUNS)["cache_off_cost"]["shown"] == "0.0% (0.090 of 900 us)"
    dear = _verdicts(RUNS, cache_off_us=1.0)["cache_off_cost"]  # 1 us of 900: 0.11%
    assert dear["met"] is False and dear["measured"] == pytest.approx(1.0 / 900)


def test_verdicts_show_the_figure_and_its_reference() -> None:
    verdicts = _verdicts(RUNS)
    assert verdicts["rps_vs_bare_buffered_c64"]["shown"] == "0.93x (2800 / 3000 req/s)"
    assert verdicts["added_p50_buffered_c1"]["shown"] == "+0.65 ms (bare +0.40 ms, limit +0.70 ms)"
    assert verdicts["cpu_per_chunk"]["shown"] == "20.0 us (bare 12.5 us)"
    assert verdicts["open_streams_rss"]["shown"] == "28.0 MB for 1000 streams"  # over idle, not over "before"
    assert verdicts["features_cost"]["shown"] == "96.4%"


def test_added_latency_limit_moves_with_the_bare_pass_through() -> None:
    """The same proxy figure meets the goal when bare is slow and misses it when bare is fast."""
    assert _verdicts(_with("bare", "buffered", 1, p50=0.50))["added_p50_buffered_c1"]["met"] is False  # +0.30 + 0.3
    assert _verdicts(_with("bare", "buffered", 1, p50=0.70))["added_p50_buffered_c1"]["met"] is True


def test_features_are_judged_against_the_features_off_target_not_the_shipped_defaults() -> None:
    slower_default = _with("proxy", "buffered", 64, rps=2000)  # would make features look cheap
    assert _verdicts(slower_default)["features_cost"]["measured"] == pytest.approx(2700 / 2800)


def test_targets_not_measured_are_neither_met_nor_failed() -> None:
    runs = [r for r in RUNS if r["target"] in ("direct", "proxy") and r["cell"]["concurrency"] == 1]
    verdicts = _verdicts(runs, {})
    assert {name: v["met"] for name, v in verdicts.items()} == dict.fromkeys(verdicts)
    assert verdicts["features_cost"]["shown"].startswith("not measured")


def test_a_run_with_errors_is_not_judged() -> None:
    """A fast error page must not meet a throughput target."""
    runs = _with("proxy", "buffered", 64, rps=9000, statuses={"200": 10, "401": 990})
    verdict = _verdicts(runs)["rps_vs_bare_buffered_c64"]
    assert verdict["met"] is None and "not judged" in verdict["shown"]
    assert _verdicts(_with("bare", "streamed", 64, sane=False))["rps_vs_bare_streamed_c64"]["met"] is None


def test_open_streams_are_judged_only_at_a_thousand() -> None:
    quick = {"proxy": {**MEMORY["proxy"], "open_streams": {**MEMORY["proxy"]["open_streams"],
                                                           "streams": 200, "asked": 200}}}
    assert _verdicts(RUNS, quick)["open_streams_rss"]["met"] is None
    too_few = {"proxy": {**MEMORY["proxy"], "open_streams": {**MEMORY["proxy"]["open_streams"], "streams": 600}}}
    assert _verdicts(RUNS, too_few)["open_streams_rss"]["met"] is False


def test_markdown_table_has_one_row_per_run_and_flags_errors() -> None:
    runs = [*RUNS[:3], {**RUNS[2], "target": "peer", "errors": 3}]
    raw = {"meta": {"date": "2026-01-01T00:00:00+00:00", "quick": False, "warmup_s": 1, "duration_s": 4,
                    "reply_words": 200, "chunks": 20, "model": "gemini-2.5-flash",
                    "machine": {"cpu": "Test CPU", "cores": 2, "kernel": "6"},
                    "versions": {"python": "3.11", "aiohttp": "3", "uvloop": "0", "orjson": "3"},
                    "loadgen_ceiling": {"rps": 30000, "loadgen_cpu_us_per_request": 10.0,
                                        "loadgen_ceiling_rps_one_core": 100000},
                    "targets": {"bare": "the pass-through"}},
           "runs": runs, "memory": MEMORY}
    text = report.markdown(report.build(raw))
    assert "| buffered c=1 0ms | proxy | 1200 | 24.0% | 0.71x | 0.85 | 1.10 | 0.65 | 0.25 | 0.80 |" in text
    assert "| buffered c=1 0ms | bare | 1700 | 34.0% | - | 0.60 |" in text
    assert "| buffered c=1 0ms | peer (!3 err, 0 non-200) |" in text
    assert "- `bare`: the pass-through" in text
    assert "Test CPU, 2 cores" in text
    assert "| proxy | 50.0 | 52.0 | 55.0 | 80.0 | 1000 | 28.0 | 90.0 |" in text
    assert "| added p50 at c=1, buffered | <= the bare pass-through's + 0.3 ms | +0.65 ms (bare +0.40 ms, " \
           "limit +0.70 ms) | yes |" in text
    assert "| buffered throughput at c=64 | >= 0.9x the bare pass-through | - | n/a |" in text
