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


def _run(target: str, mode: str, c: int, rps: float, p50: float, p99: float, ttfb: float, cpu: float,
         n: int = 1000, latency: str = "0ms") -> dict[str, Any]:
    return {"cell": {"mode": mode, "latency": latency, "concurrency": c, "chunks": 20}, "target": target,
            "rps": rps, "requests": n, "errors": 0, "statuses": {"200": n}, "sane": True,
            "latency": {"p50": p50, "p99": p99}, "ttfb": {"p50": ttfb}, "target_cpu_seconds": cpu}


RUNS = [
    _run("direct", "buffered", 1, 5000, 0.20, 0.30, 0.20, 0.1),
    _run("proxy", "buffered", 1, 1000, 0.70, 1.10, 0.70, 0.4),
    _run("direct", "streamed", 1, 2500, 0.40, 0.60, 0.20, 0.3),
    _run("proxy", "streamed", 1, 800, 1.50, 2.00, 0.50, 0.6),
    _run("direct", "buffered", 64, 9000, 7.0, 10.0, 7.0, 2.0),
    _run("proxy", "buffered", 64, 2700, 23.0, 40.0, 23.0, 0.3),
    _run("proxy+features", "buffered", 64, 2600, 24.0, 41.0, 24.0, 0.3),
    _run("direct", "streamed", 64, 3000, 20.0, 30.0, 19.0, 2.0),
    _run("proxy", "streamed", 64, 300, 200.0, 300.0, 190.0, 0.7, n=1000),
]
MEMORY = {"proxy": {"start_mb": 50.0, "idle_mb": 52.0, "peak_mb": 90.0,
                    "open_streams": {"streams": 1000, "asked": 1000, "before_mb": 55.0, "open_mb": 80.0}}}


def _row(rows: list[dict[str, Any]], target: str, mode: str, c: int) -> dict[str, Any]:
    return next(r for r in rows if (r["target"], r["mode"], r["concurrency"]) == (target, mode, c))


def test_derive_measures_against_the_same_cells_direct_run() -> None:
    rows = report.derive(RUNS)
    row = _row(rows, "proxy", "streamed", 1)
    assert row["added_p50_ms"] == pytest.approx(1.10)
    assert row["added_p99_ms"] == pytest.approx(1.40)
    assert row["added_ttfb_p50_ms"] == pytest.approx(0.30)
    assert row["rps_ratio"] == pytest.approx(800 / 2500)
    assert row["cpu_us_per_request"] == pytest.approx(600.0)
    assert row["cpu_us_per_chunk"] == pytest.approx(30.0)


def test_derive_leaves_floor_relative_figures_empty_for_direct_and_buffered_ttfb() -> None:
    rows = report.derive(RUNS)
    direct = _row(rows, "direct", "buffered", 1)
    assert math.isnan(direct["rps_ratio"]) and math.isnan(direct["added_p50_ms"])
    assert math.isnan(_row(rows, "proxy", "buffered", 1)["added_ttfb_p50_ms"])
    assert math.isnan(_row(rows, "proxy", "buffered", 1)["cpu_us_per_chunk"])


def test_cpu_too_small_to_count_in_ticks_is_not_reported() -> None:
    rows = report.derive([_run("proxy", "streamed", 1, 1.3, 690, 692, 302, 0.04, n=8)])
    assert math.isnan(rows[0]["cpu_us_per_request"]) and math.isnan(rows[0]["cpu_us_per_chunk"])


def test_paced_chunk_cpu_is_its_own_target() -> None:
    paced = _run("proxy", "streamed", 64, 80, 700, 716, 309, 0.4, n=320, latency=report.PACED)
    verdicts = {t["name"]: t for t in report.evaluate_targets(report.derive([*RUNS, paced]), MEMORY)}
    assert verdicts["cpu_per_chunk_paced"]["measured"] == pytest.approx(62.5)
    assert verdicts["cpu_per_chunk_paced"]["met"] is False
    assert verdicts["cpu_per_chunk"]["met"] is True


def test_targets_report_each_figure_and_verdict() -> None:
    verdicts = {t["name"]: t for t in report.evaluate_targets(report.derive(RUNS), MEMORY)}
    assert verdicts["added_p50_buffered_c1"]["met"] is True  # 0.50 ms <= 0.6
    assert verdicts["added_p50_streamed_c1"]["met"] is True  # 1.10 ms <= 1.5
    assert verdicts["added_p99_buffered_c1"]["met"] is True  # 0.80 <= 3 x 0.50
    assert verdicts["rps_ratio_buffered_c64"]["met"] is True  # 30%
    assert verdicts["rps_ratio_streamed_c64"]["met"] is False  # 10% < 13%
    assert verdicts["rps_ratio_streamed_c64"]["shown"] == "10.0%"
    assert verdicts["cpu_per_chunk"]["met"] is True  # 700 us / 20 chunks = 35 us
    assert verdicts["idle_rss"]["met"] is True
    assert verdicts["open_streams_rss"]["measured"] == pytest.approx(28.0)  # over idle, not over "before"
    assert verdicts["features_cost"]["measured"] == pytest.approx(2600 / 2700)
    assert verdicts["features_cost"]["met"] is True


def test_targets_not_measured_are_neither_met_nor_failed() -> None:
    runs = [r for r in RUNS if r["target"] != "proxy+features" and r["cell"]["concurrency"] == 1]
    verdicts = {t["name"]: t for t in report.evaluate_targets(report.derive(runs), {})}
    assert verdicts["rps_ratio_buffered_c64"]["met"] is None
    assert verdicts["features_cost"]["met"] is None
    assert verdicts["idle_rss"]["met"] is None


def test_too_few_open_streams_fail_the_memory_target() -> None:
    memory = {"proxy": {**MEMORY["proxy"], "open_streams": {**MEMORY["proxy"]["open_streams"], "streams": 600}}}
    verdicts = {t["name"]: t for t in report.evaluate_targets(report.derive(RUNS), memory)}
    assert verdicts["open_streams_rss"]["met"] is False


def test_markdown_table_has_one_row_per_run_and_flags_errors() -> None:
    runs = [*RUNS[:2], {**RUNS[1], "target": "peer", "errors": 3}]
    raw = {"meta": {"date": "2026-01-01T00:00:00+00:00", "quick": False, "warmup_s": 1, "duration_s": 4,
                    "reply_words": 200, "chunks": 20, "model": "gemini-2.5-flash",
                    "machine": {"cpu": "Test CPU", "cores": 2, "kernel": "6"},
                    "versions": {"python": "3.11", "aiohttp": "3", "uvloop": "0", "orjson": "3"},
                    "loadgen_ceiling": {"rps": 30000, "loadgen_cpu_us_per_request": 10.0,
                                        "loadgen_ceiling_rps_one_core": 100000}},
           "runs": runs, "memory": MEMORY}
    text = report.markdown(report.build(raw))
    assert "| buffered c=1 0ms | proxy | 1000 | 20.0% | 0.70 | 1.10 | 0.50 | 0.80 |" in text
    assert "| buffered c=1 0ms | peer (!3 err, 0 non-200) |" in text
    assert "Test CPU, 2 cores" in text
    assert "| proxy | 50.0 | 52.0 | 55.0 | 80.0 | 1000 | 28.0 | 90.0 |" in text
