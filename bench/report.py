"""Pure report code: figures over the direct floor and the bare pass-through, target verdicts, the table.

Everything here works on the plain dicts `bench.run` produces, so it is unit-tested without
starting a process or timing anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.cells import MODEL_LATENCY

DIRECT = "direct"
BARE = "bare"  # bench/bare.py: the limit for a Python aiohttp proxy on the box (issue 16)
MIN_CPU_SECONDS = 0.1
PACED = MODEL_LATENCY.name
OPEN_STREAMS = 1000

# (name, what, goal): issue 16's targets, judged on one run's figures for `proxy` against
# `bare` and `direct` in the same run, plus issue 15's cache target.
TARGET_SPECS = [
    ("rps_vs_bare_buffered_c64", "buffered throughput at c=64", ">= 0.9x the bare pass-through"),
    ("rps_vs_bare_streamed_c64", "streamed throughput at c=64", ">= 0.9x the bare pass-through"),
    ("added_p50_buffered_c1", "added p50 at c=1, buffered", "<= the bare pass-through's + 0.3 ms"),
    ("added_p50_streamed_c1", "added p50 at c=1, streamed", "<= the bare pass-through's + 0.3 ms"),
    ("cpu_per_chunk", "CPU per streamed chunk (0 ms cell, c=64)", "<= 25 us"),
    ("open_streams_rss", "1,000 open streams, over idle", "<= 40 MB"),
    ("features_cost", "keys, limits, ledger and metrics on vs off, c=64", ">= 95%"),
    ("cache_hit_time", "cache hit: p50 time to the whole answer vs a miss, c=1, model 300 ms + 20 ms/chunk",
     "<= 10%"),
    ("cache_hit_cpu", "cache hit: proxy CPU per request vs a miss, c=64, 0 ms model (reported, not judged)",
     "-: a hit still pays HTTP, admission and its own ledger row"),
    ("cache_off_cost", "cache off: the cache's own work per request vs the proxy's CPU per request, buffered c=64",
     "< 0.1%"),
]
RPS_VS_BARE = 0.9
P50_SLACK_MS = 0.3
CPU_PER_CHUNK_US = 25.0
OPEN_STREAMS_MB = 40.0
FEATURES_ON_VS_OFF = 0.95
CACHE_HIT_TIME = 0.1
CACHE_OFF_COST = 0.001
FEATURES_ON, FEATURES_OFF = "+features", "+memledger"  # suffixes of the target judged


def _key(run: dict[str, Any]) -> tuple[str, str, int]:
    c = run["cell"]
    return c["mode"], c["latency"], c["concurrency"]


def _sub(a: float, b: float) -> float:
    return a - b if not (math.isnan(a) or math.isnan(b)) else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not (math.isnan(a) or math.isnan(b)) else math.nan


def derive(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run, with figures over the same cell's direct run (the floor) and bare run."""
    floors = {_key(r): r for r in runs if r["target"] == DIRECT}
    bares = {_key(r): r for r in runs if r["target"] == BARE}
    rows = []
    for r in runs:
        floor, bare = floors.get(_key(r)), bares.get(_key(r))
        n = r["requests"]
        streamed = r["cell"]["mode"] == "streamed"
        # /proc counts CPU in 10 ms ticks: below MIN_CPU_SECONDS a per-request figure is noise.
        enough = n and r["target_cpu_seconds"] >= MIN_CPU_SECONDS
        cpu_req = r["target_cpu_seconds"] / n * 1e6 if enough else math.nan
        row = {
            **r["cell"], "target": r["target"], "rps": r["rps"], "requests": n, "errors": r["errors"],
            "non_200": sum(v for k, v in r["statuses"].items() if k != "200"), "sane": r.get("sane", True),
            "p50_ms": r["latency"]["p50"], "p99_ms": r["latency"]["p99"],
            "ttfb_p50_ms": r["ttfb"]["p50"] if streamed else math.nan,
            "cpu_us_per_request": cpu_req,
            "cpu_us_per_chunk": cpu_req / r["cell"]["chunks"] if streamed else math.nan,
            "rps_ratio": math.nan, "added_p50_ms": math.nan, "added_p99_ms": math.nan, "added_ttfb_p50_ms": math.nan,
            "bare_ratio": math.nan, "added_p50_vs_bare_ms": math.nan,
        }
        if floor is not None and r["target"] != DIRECT:
            row["rps_ratio"] = _ratio(r["rps"], floor["rps"])
            row["added_p50_ms"] = _sub(r["latency"]["p50"], floor["latency"]["p50"])
            row["added_p99_ms"] = _sub(r["latency"]["p99"], floor["latency"]["p99"])
            if streamed:
                row["added_ttfb_p50_ms"] = _sub(r["ttfb"]["p50"], floor["ttfb"]["p50"])
        if bare is not None and r["target"] not in (DIRECT, BARE):
            row["bare_ratio"] = _ratio(r["rps"], bare["rps"])
            row["added_p50_vs_bare_ms"] = _sub(r["latency"]["p50"], bare["latency"]["p50"])
        rows.append(row)
    return rows


def _find(rows: list[dict[str, Any]], target: str, mode: str, concurrency: int,
          latency: str = "0ms") -> dict[str, Any] | None:
    for row in rows:
        if (row["target"], row["mode"], row["concurrency"], row["latency"]) == (target, mode, concurrency, latency):
            return row
    return None


def _clean(row: dict[str, Any]) -> bool:
    return bool(row["sane"]) and not row["errors"] and not row["non_200"]


def evaluate_targets(rows: list[dict[str, Any]], memory: dict[str, Any], target: str = "proxy",
                     cache_off_us: float | None = None) -> list[dict[str, Any]]:
    """Each target with the measured figure and met / not met / not judged (None).

    A figure from a run with errors, non-200 answers or an answer that was not a full reply is
    not judged: a fast error page must not meet a throughput target.
    """
    out = []

    def add(name: str, measured: float | None, met: bool | None, shown: str,
            used: Sequence[dict[str, Any] | None] = ()) -> None:
        spec = next(s for s in TARGET_SPECS if s[0] == name)
        judged = measured is not None and not math.isnan(measured)
        if judged and not all(r is not None and _clean(r) for r in used):
            judged, shown = False, shown + " (errors in a run: not judged)"
        out.append({"name": name, "what": spec[1], "goal": spec[2], "measured": measured, "shown": shown,
                    "met": met if judged else None})

    for mode in ("buffered", "streamed"):
        row, bare = _find(rows, target, mode, 64), _find(rows, BARE, mode, 64)
        ratio = _ratio(row["rps"], bare["rps"]) if row and bare else None
        shown = f"{ratio:.2f}x ({row['rps']:.0f} / {bare['rps']:.0f} req/s)" if row and bare else "-"
        add(f"rps_vs_bare_{mode}_c64", ratio, ratio is not None and ratio >= RPS_VS_BARE, shown, [row, bare])
    for mode in ("buffered", "streamed"):
        row, bare = _find(rows, target, mode, 1), _find(rows, BARE, mode, 1)
        added = row["added_p50_ms"] if row and bare else None
        limit = bare["added_p50_ms"] + P50_SLACK_MS if row and bare else math.nan
        shown = (f"{_signed_ms(added)} (bare {_signed_ms(bare['added_p50_ms'])}, limit {_signed_ms(limit)})"
                 if row and bare else "-")
        add(f"added_p50_{mode}_c1", added, added is not None and added <= limit, shown, [row, bare])
    row, bare = _find(rows, target, "streamed", 64), _find(rows, BARE, "streamed", 64)
    cpu = row["cpu_us_per_chunk"] if row else None
    shown = f"{_num(cpu, 1)} us" if row else "-"
    if row and bare:
        shown += f" (bare {_num(bare['cpu_us_per_chunk'], 1)} us)"
    add("cpu_per_chunk", cpu, cpu is not None and cpu <= CPU_PER_CHUNK_US, shown, [row])
    mem = memory.get(target, {})
    idle, streams = mem.get("idle_mb"), mem.get("open_streams") or {}
    delta = streams["open_mb"] - idle if idle is not None and "open_mb" in streams else None
    shown = f"{delta:.1f} MB for {streams.get('streams')} streams" if delta is not None else "-"
    if delta is not None and streams.get("asked", OPEN_STREAMS) < OPEN_STREAMS:
        delta, shown = None, shown + f" (judged at {OPEN_STREAMS:,}: a full run)"
    add("open_streams_rss", delta, delta is not None and streams.get("streams", 0) >= OPEN_STREAMS
        and delta <= OPEN_STREAMS_MB, shown)
    ratios, used = [], []
    for mode in ("buffered", "streamed"):
        on, off = _find(rows, target + FEATURES_ON, mode, 64), _find(rows, target + FEATURES_OFF, mode, 64)
        if on and off and off["rps"]:
            ratios.append(on["rps"] / off["rps"])
            used += [on, off]
    worst = min(ratios) if ratios else None
    add("features_cost", worst, worst is not None and worst >= FEATURES_ON_VS_OFF,
        _pct(worst) if worst is not None else f"not measured (needs {target}{FEATURES_ON} and "
                                               f"{target}{FEATURES_OFF} at c=64)", used)
    times, used = [], []
    for mode in ("buffered", "streamed"):
        hit, miss = _find(rows, target + "+cache", mode, 1, PACED), _find(rows, target, mode, 1, PACED)
        if hit and miss and miss["p50_ms"]:
            times.append(hit["p50_ms"] / miss["p50_ms"])
            used += [hit, miss]
    slowest = max(times) if times else None
    add("cache_hit_time", slowest, slowest is not None and slowest <= CACHE_HIT_TIME,
        _pct(slowest) if slowest is not None else "not measured (BENCH_CACHE_ENV empty, or a quick run)", used)
    costs = []
    for mode in ("buffered", "streamed"):
        hit, miss = _find(rows, target + "+cache", mode, 64), _find(rows, target, mode, 64)
        if hit and miss and miss["cpu_us_per_request"] and not math.isnan(hit["cpu_us_per_request"]):
            costs.append(hit["cpu_us_per_request"] / miss["cpu_us_per_request"])
    dearest = max(costs) if costs else None
    add("cache_hit_cpu", dearest, None, _pct(dearest) if dearest is not None else "not measured")
    row = _find(rows, target, "buffered", 64)
    share = (cache_off_us / row["cpu_us_per_request"]
             if cache_off_us is not None and row and row["cpu_us_per_request"] else None)
    add("cache_off_cost", share, share is not None and share < CACHE_OFF_COST,
        f"{_pct(share)} ({cache_off_us:.3f} of {row['cpu_us_per_request']:.0f} us)"
        if share is not None and row else "not measured", [row])
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f} ms"


def _signed_ms(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:+.2f} ms"


def _pct(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v * 100:.1f}%"


def _times(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}x"


def _num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    meta, rows = result["meta"], result["rows"]
    m, v, ceil = meta["machine"], meta["versions"], meta["loadgen_ceiling"]
    lines = [
        f"# aiproxy benchmark, {meta['date']}{' (quick)' if meta['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}. Python {v['python']}, aiohttp {v['aiohttp']}, "
        f"uvloop {v['uvloop']}, orjson {v['orjson']}.",
        f"Reply: {meta['reply_words']} words in {meta['chunks']} chunks, model {meta['model']}. Each cell: "
        f"{meta['warmup_s']} s warm-up, {meta['duration_s']} s measured (x1.5 for model-latency c=1), closed loop.",
        f"Load generator ceiling (static 1 KB endpoint, c=64): {ceil['rps']:.0f} req/s; the generator spends "
        f"{ceil['loadgen_cpu_us_per_request']:.1f} us CPU per request "
        f"(~{ceil['loadgen_ceiling_rps_one_core']:.0f} req/s on one core).",
        "",
        *(f"- `{name}`: {what}" for name, what in meta.get("targets", {}).items()),
        "",
        "| cell | target | req/s | x direct | x bare | p50 ms | p99 ms | +p50 ms | +p50 vs bare ms | +p99 ms "
        "| TTFB p50 ms | +TTFB ms | CPU us/req | CPU us/chunk |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        cell = f"{r['mode']} c={r['concurrency']} {r['latency']}"
        flag = "" if _clean(r) else f" (!{r['errors']} err, {r['non_200']} non-200)"
        lines.append(
            f"| {cell} | {r['target']}{flag} | {r['rps']:.0f} | {_pct(r['rps_ratio'])} | {_times(r['bare_ratio'])} "
            f"| {_num(r['p50_ms'])} | {_num(r['p99_ms'])} | {_num(r['added_p50_ms'])} "
            f"| {_num(r['added_p50_vs_bare_ms'])} | {_num(r['added_p99_ms'])} | {_num(r['ttfb_p50_ms'])} "
            f"| {_num(r['added_ttfb_p50_ms'])} | {_num(r['cpu_us_per_request'], 0)} "
            f"| {_num(r['cpu_us_per_chunk'], 1)} |")
    lines += ["", "CPU columns: the target process tree (for `direct`, the emulator). +p50: over direct; "
              "+p50 vs bare: over the bare pass-through.", "",
              "| gateway | RSS at start MB | idle MB | before streams MB | with open streams MB | streams "
              "| over idle MB | peak MB |",
              "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, mem in result["memory"].items():
        s = mem.get("open_streams") or {}
        lines.append(f"| {name} | {_num(mem.get('start_mb', math.nan), 1)} | {_num(mem.get('idle_mb', math.nan), 1)} "
                     f"| {_num(s.get('before_mb', math.nan), 1)} | {_num(s.get('open_mb', math.nan), 1)} "
                     f"| {s.get('streams', '-')} "
                     f"| {_num(s.get('open_mb', math.nan) - mem.get('idle_mb', math.nan), 1)} "
                     f"| {_num(mem.get('peak_mb', math.nan), 1)} |")
    lines += ["", "Targets, judged on `proxy` against `bare` and `direct` in this run:", "",
              "| target | goal | measured | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {t['what']} | {t['goal']} | {t['shown']} | {met} |")
    return "\n".join(lines) + "\n"


def build(raw: dict[str, Any]) -> dict[str, Any]:
    """The raw run plus derived rows and target verdicts: what is written and printed."""
    rows = derive(raw["runs"])
    for mem in raw["memory"].values():
        s = mem.get("open_streams")
        if s and "idle_mb" in mem:
            s["over_idle_mb"] = s["open_mb"] - mem["idle_mb"]
    return {**raw, "rows": rows, "targets": evaluate_targets(rows, raw["memory"],
                                                              cache_off_us=raw.get("cache_off_us"))}
