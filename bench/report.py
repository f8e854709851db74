"""Pure report code: figures relative to the direct floor, target verdicts, the markdown table.

Everything here works on the plain dicts `bench.run` produces, so it is unit-tested without
starting a process or timing anything.
"""

from __future__ import annotations

import math
from typing import Any

from bench.cells import MODEL_LATENCY

DIRECT = "direct"
MIN_CPU_SECONDS = 0.1
PACED = MODEL_LATENCY.name

# (name, goal text, how to measure) — the targets, evaluated on one run's figures.
TARGET_SPECS = [
    ("added_p50_buffered_c1", "added latency p50, buffered, c=1", "<= 0.6 ms"),
    ("added_p50_streamed_c1", "added latency p50, 20-chunk stream, c=1", "<= 1.5 ms"),
    ("added_p99_buffered_c1", "added latency p99 <= 3x p50, buffered, c=1", "<= 3x p50"),
    ("added_p99_streamed_c1", "added latency p99 <= 3x p50, streamed, c=1", "<= 3x p50"),
    ("rps_ratio_buffered_c64", "throughput vs direct, buffered, c=64", ">= 25%"),
    ("rps_ratio_streamed_c64", "throughput vs direct, streamed, c=64", ">= 13%"),
    ("cpu_per_chunk", "proxy CPU per streamed chunk, c=64", "<= 40 us"),
    ("cpu_per_chunk_paced", "proxy CPU per streamed chunk, c=64, chunks 20 ms apart", "<= 40 us"),
    ("idle_rss", "idle RSS", "<= 60 MB"),
    ("open_streams_rss", "RSS with 1,000 open streams, over idle", "<= 50 MB"),
    ("features_cost", "ledger+metrics+limits on: throughput vs off, c=64", ">= 90%"),
    ("cache_hit_cost", "cache hit: proxy CPU per request vs a miss (cache off), c=64", "<= 10%"),
]


def _key(run: dict[str, Any]) -> tuple[str, str, int]:
    c = run["cell"]
    return c["mode"], c["latency"], c["concurrency"]


def _sub(a: float, b: float) -> float:
    return a - b if not (math.isnan(a) or math.isnan(b)) else math.nan


def derive(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run, with figures over the same cell's direct run (the floor)."""
    floors = {_key(r): r for r in runs if r["target"] == DIRECT}
    rows = []
    for r in runs:
        floor = floors.get(_key(r))
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
        }
        if floor is not None and r["target"] != DIRECT:
            row["rps_ratio"] = r["rps"] / floor["rps"] if floor["rps"] else math.nan
            row["added_p50_ms"] = _sub(r["latency"]["p50"], floor["latency"]["p50"])
            row["added_p99_ms"] = _sub(r["latency"]["p99"], floor["latency"]["p99"])
            if streamed:
                row["added_ttfb_p50_ms"] = _sub(r["ttfb"]["p50"], floor["ttfb"]["p50"])
        rows.append(row)
    return rows


def _find(rows: list[dict[str, Any]], target: str, mode: str, concurrency: int,
          latency: str = "0ms") -> dict[str, Any] | None:
    for row in rows:
        if (row["target"], row["mode"], row["concurrency"], row["latency"]) == (target, mode, concurrency, latency):
            return row
    return None


def evaluate_targets(rows: list[dict[str, Any]], memory: dict[str, Any], target: str = "proxy") -> list[dict[str, Any]]:
    """Each issue target with the measured figure and met / not met / not measured."""
    out = []

    def add(name: str, measured: float | None, met: bool | None, shown: str) -> None:
        spec = next(s for s in TARGET_SPECS if s[0] == name)
        out.append({"name": name, "what": spec[1], "goal": spec[2], "measured": measured, "shown": shown,
                    "met": met if measured is not None and not math.isnan(measured) else None})

    for mode, limit in (("buffered", 0.6), ("streamed", 1.5)):
        row = _find(rows, target, mode, 1)
        p50 = row["added_p50_ms"] if row else None
        add(f"added_p50_{mode}_c1", p50, p50 is not None and p50 <= limit, _ms(p50))
        p99 = row["added_p99_ms"] if row else None
        ok = p99 is not None and p50 is not None and p99 <= 3 * max(p50, 0.0)
        add(f"added_p99_{mode}_c1", p99, ok, f"{_ms(p99)} (3x p50 = {_ms(3 * p50) if p50 is not None else '-'})")
    for mode, floor in (("buffered", 0.25), ("streamed", 0.13)):
        row = _find(rows, target, mode, 64)
        ratio = row["rps_ratio"] if row else None
        add(f"rps_ratio_{mode}_c64", ratio, ratio is not None and ratio >= floor, _pct(ratio))
    for name, latency in (("cpu_per_chunk", "0ms"), ("cpu_per_chunk_paced", PACED)):
        row = _find(rows, target, "streamed", 64, latency)
        cpu = row["cpu_us_per_chunk"] if row else None
        add(name, cpu, cpu is not None and cpu <= 40, _num(cpu, 1) + " us" if cpu is not None else "-")
    mem = memory.get(target, {})
    idle = mem.get("idle_mb")
    add("idle_rss", idle, idle is not None and idle <= 60, f"{idle:.1f} MB" if idle is not None else "-")
    streams = mem.get("open_streams") or {}
    delta = streams["open_mb"] - idle if idle is not None and "open_mb" in streams else None
    shown = f"{delta:.1f} MB for {streams.get('streams')} streams" if delta is not None else "-"
    add("open_streams_rss", delta, delta is not None and streams.get("streams", 0) >= 1000 and delta <= 50, shown)
    ratios = []
    for mode in ("buffered", "streamed"):
        on, off = _find(rows, target + "+features", mode, 64), _find(rows, target, mode, 64)
        if on and off and off["rps"]:
            ratios.append(on["rps"] / off["rps"])
    worst = min(ratios) if ratios else None
    add("features_cost", worst, worst is not None and worst >= 0.9,
        _pct(worst) if worst is not None else "not measured (set BENCH_FEATURES_ENV)")
    costs = []
    for mode in ("buffered", "streamed"):
        hit, miss = _find(rows, target + "+cache", mode, 64), _find(rows, target, mode, 64)
        if hit and miss and miss["cpu_us_per_request"] and not math.isnan(hit["cpu_us_per_request"]):
            costs.append(hit["cpu_us_per_request"] / miss["cpu_us_per_request"])
    dearest = max(costs) if costs else None
    add("cache_hit_cost", dearest, dearest is not None and dearest <= 0.1,
        _pct(dearest) if dearest is not None else "not measured (BENCH_CACHE_ENV empty)")
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f} ms"


def _pct(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v * 100:.1f}%"


def _num(v: float, digits: int = 2) -> str:
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
        "| cell | target | req/s | x direct | p50 ms | p99 ms | +p50 ms | +p99 ms | TTFB p50 ms | +TTFB ms "
        "| CPU us/req | CPU us/chunk |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        cell = f"{r['mode']} c={r['concurrency']} {r['latency']}"
        clean = r["sane"] and not r["errors"] and not r["non_200"]
        flag = "" if clean else f" (!{r['errors']} err, {r['non_200']} non-200)"
        lines.append(
            f"| {cell} | {r['target']}{flag} | {r['rps']:.0f} | {_pct(r['rps_ratio'])} | {_num(r['p50_ms'])} "
            f"| {_num(r['p99_ms'])} | {_num(r['added_p50_ms'])} | {_num(r['added_p99_ms'])} | {_num(r['ttfb_p50_ms'])} "
            f"| {_num(r['added_ttfb_p50_ms'])} | {_num(r['cpu_us_per_request'], 0)} "
            f"| {_num(r['cpu_us_per_chunk'], 1)} |")
    lines += ["", "CPU columns: the target process tree (for `direct`, the emulator).", "",
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
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
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
    return {**raw, "rows": rows, "targets": evaluate_targets(rows, raw["memory"])}
