"""One benchmark run: start the processes, drive every cell, measure memory, return the data."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from bench import cells as C
from bench.procinfo import peak_rss_mb, rss_mb
from bench.procs import (
    PY,
    ROOT,
    UPSTREAM_KEY,
    Proc,
    create_client_key,
    new_data_dir,
    raise_fd_limit,
    shipped_env,
    start_bare,
    start_emulator,
    start_peer,
    start_proxy,
    start_static,
)

# The features-on target's key: every limit kind set, none reachable in a run, all checked.
FEATURES_KEY_LIMITS = {"rpm": "100000000", "tpm": "2000000000", "daily-budget": "1000000"}


def parse_env_pairs(text: str) -> dict[str, str]:
    """'A=1 B=two' -> {'A': '1', 'B': 'two'} (shell-style quoting allowed)."""
    import shlex

    out: dict[str, str] = {}
    for item in shlex.split(text or ""):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def loadgen(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    out = subprocess.run([PY, "-m", "bench.loadgen", json.dumps(spec)], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release()}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("aiohttp", "uvloop", "orjson", "pydantic"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def cache_off_us(n: int = 200_000) -> float:
    """What RESPONSE_CACHE=off (the default) adds to one chat request, timed in this process: the
    `enabled` tests serve_chat and its writer make (aiproxy/api/chat.py); nothing else runs."""
    import timeit

    from aiproxy.cache.policy import build_response_cache
    from aiproxy.config import load_settings

    cache = build_response_cache(load_settings({}, require_key=False))
    assert not cache.enabled

    def one_request() -> bool:
        return cache.enabled or cache.enabled

    return timeit.timeit(one_request, number=n) / n * 1e6


class Bench:
    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = opts
        self.quick: bool = opts["quick"]
        self.warmup = 0.3 if self.quick else 1.0
        self.duration = 1.0 if self.quick else 4.0
        self.procs: dict[str, Proc] = {}
        self.keys: dict[str, str | None] = {}  # the Bearer each target gets (default: opts client_key)
        self.described: dict[str, str] = {"direct": "the Gemini emulator itself: the floor"}
        self.emulator: Proc | None = None
        self.log: Any = opts.get("log", lambda msg: print(msg, file=sys.stderr, flush=True))

    # --- processes ---------------------------------------------------------------------------
    def start(self) -> None:
        raise_fd_limit()
        self.emulator = start_emulator(C.WORDS, C.CHUNKS)
        self.procs["bare"] = start_bare(self.emulator.url)
        self.keys["bare"] = None
        self.described["bare"] = ("bench/bare.py: aiohttp pass-through, translation only (no validation, auth, "
                                  "limits, ledger or logging): the limit for a Python aiohttp proxy here")
        self._proxy("proxy", {}, "shipped defaults: SQLite ledger on disk, billing line at INFO, metrics, "
                                 "no client keys")
        if self.opts.get("workers", 1) > 1:  # WORKERS=N processes on one port (issue 4)
            n = self.opts["workers"]
            self._proxy(f"proxy-w{n}", {"WORKERS": str(n)}, f"as proxy, WORKERS={n} (one port, {n} processes)")
        if self.opts.get("memledger", True):
            self._proxy("proxy+memledger", {"USAGE_DB_URL": "memory://"},
                        "features off: as proxy but the ledger in memory (USAGE_DB_URL=memory://), no client keys")
        if self.opts.get("features", True):
            self._proxy("proxy+features", self.opts["features_env"],
                        "features on: as proxy plus a client key with rpm, tpm and daily-budget limits "
                        "checked on every request", key_limits=FEATURES_KEY_LIMITS)
        if self.opts.get("cache_env"):  # the load generator repeats one request: after the first, all hits
            self._proxy("proxy+cache", self.opts["cache_env"],
                        "as proxy plus " + " ".join(sorted(self.opts["cache_env"])) + ": every answer a cache hit")
        if self.opts["peer_cmd"]:
            self.procs["peer"] = start_peer(self.opts["peer_cmd"], self.emulator.url, self.opts["proxy_env"])
            self.described["peer"] = "BENCH_PEER_CMD"

    def _proxy(self, name: str, extra_env: dict[str, str], described: str,
               key_limits: dict[str, str] | None = None) -> None:
        """A proxy in its own data directory; with `key_limits`, behind a client key made first."""
        assert self.emulator is not None
        slug = name.replace("+", "-")
        data_dir = new_data_dir(slug)
        env = {**self.opts["proxy_env"], **extra_env}
        try:
            if key_limits is not None:
                db_url = {**shipped_env(data_dir), **env}["USAGE_DB_URL"]
                self.keys[name] = create_client_key(db_url, "bench", key_limits)
        except BaseException:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        self.procs[name] = start_proxy(slug, self.emulator.url, env, data_dir)
        self.described[name] = described

    def stop(self) -> None:
        for proc in [*self.procs.values(), *([self.emulator] if self.emulator else [])]:
            proc.stop()

    def _spec(self, target: str, cell: C.Cell, port: int, **extra: Any) -> dict[str, Any]:
        if target == "direct":
            req = C.direct_request(cell, UPSTREAM_KEY)
        else:
            model = self.opts["peer_model"] if target == "peer" else C.MODEL
            req = C.gateway_request(cell, self.keys.get(target, self.opts["client_key"]), model)
        return {"host": "127.0.0.1", "port": port, **req, **extra}

    # --- measurements --------------------------------------------------------------------------
    def loadgen_ceiling(self) -> dict[str, Any]:
        """The generator against an endpoint that does almost nothing: its own limit."""
        static = start_static()
        try:
            spec = {"host": "127.0.0.1", "port": static.port, "path": "/", "body": "{}", "concurrency": 64,
                    "warmup": self.warmup, "duration": self.duration, "watch": {"server": static.tree()}}
            r = loadgen(spec, 60)
        finally:
            static.stop()
        n = max(r["requests"], 1)
        return {"rps": r["rps"], "loadgen_cpu_us_per_request": r["loadgen_cpu_seconds"] / n * 1e6,
                "server_cpu_us_per_request": r["cpu_seconds"]["server"] / n * 1e6,
                "loadgen_ceiling_rps_one_core": n / max(r["loadgen_cpu_seconds"], 1e-9)}

    def warm(self) -> None:
        """One request of each kind per gateway so lazy imports and pools are in place."""
        for name, proc in self.procs.items():
            for mode in ("buffered", "streamed"):
                cell = C.Cell(mode, C.NO_LATENCY, 1)
                loadgen({**self._spec(name, cell, proc.port), "concurrency": 1, "warmup": 0, "duration": 0.3}, 30)

    def run_cell(self, cell: C.Cell) -> list[dict[str, Any]]:
        assert self.emulator is not None
        targets = [("direct", self.emulator), *self.procs.items()]
        duration = self.duration * (1.5 if cell.latency.first_byte_ms and cell.concurrency == 1 else 1)
        runs = []
        for name, proc in targets:
            watch = {"target": proc.tree(), "emulator": self.emulator.tree()}
            spec = self._spec(name, cell, proc.port, concurrency=cell.concurrency, warmup=self.warmup,
                              duration=duration, watch=watch)
            r = loadgen(spec, duration + self.warmup + 60)
            body = r.pop("first_body")
            runs.append({"cell": {"mode": cell.mode, "latency": cell.latency.name, "concurrency": cell.concurrency,
                                  "chunks": C.CHUNKS},
                         "target": name, **r, "target_cpu_seconds": r["cpu_seconds"]["target"],
                         "emulator_cpu_seconds": r["cpu_seconds"]["emulator"], "sane": _sane(name, cell, body)})
            self.log(f"  {cell.label:<34} {name:<15} {r['rps']:8.1f} req/s  p50 {r['latency']['p50']:8.3f} ms"
                     f"  p99 {r['latency']['p99']:8.3f} ms  errors {r['errors']}")
        return runs

    def open_streams(self, name: str, proc: Proc, count: int) -> dict[str, Any]:
        """RSS with `count` streams open at once, each having delivered its first chunk."""
        cell = C.Cell("streamed", C.TRICKLE, 1)
        spec = {**self._spec(name, cell, proc.port), "mode": "hold", "count": count, "timeout": 60}
        before = rss_mb(proc.tree())
        hold = subprocess.Popen([PY, "-m", "bench.loadgen", json.dumps(spec)], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert hold.stdout is not None and hold.stdin is not None
            line = hold.stdout.readline().split()
            opened = int(line[1]) if len(line) == 2 and line[0] == "ready" else 0
            time.sleep(0.5)
            during = rss_mb(proc.tree())
            hold.stdin.close()
            hold.wait(timeout=30)
        finally:
            if hold.poll() is None:
                hold.kill()
                hold.wait()
        return {"streams": opened, "asked": count, "before_mb": before, "open_mb": during, "delta_mb": during - before}

    def run(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        self.log("measuring the load generator's own ceiling ...")
        ceiling = self.loadgen_ceiling()
        try:
            self.start()
            memory: dict[str, dict[str, Any]] = {}
            for name, proc in self.procs.items():
                memory[name] = {"start_mb": rss_mb(proc.tree())}
            self.warm()
            time.sleep(0.5)
            for name, proc in self.procs.items():
                memory[name]["idle_mb"] = rss_mb(proc.tree())
            runs: list[dict[str, Any]] = []
            for cell in C.all_cells(self.quick):
                runs.extend(self.run_cell(cell))
            count = 200 if self.quick else 1000
            for name, proc in self.procs.items():
                self.log(f"  holding {count} open streams through {name} ...")
                memory[name]["open_streams"] = self.open_streams(name, proc, count)
                memory[name]["peak_mb"] = peak_rss_mb(proc.tree())
        finally:
            self.stop()
        return {
            "meta": {"date": started.isoformat(timespec="seconds"), "machine": machine(), "versions": versions(),
                     "quick": self.quick, "warmup_s": self.warmup, "duration_s": self.duration,
                     "reply_words": C.WORDS, "chunks": C.CHUNKS, "model": C.MODEL,
                     "loadgen_ceiling": ceiling, "proxy_env": sorted(self.opts["proxy_env"]),
                     "features_env": sorted(self.opts["features_env"]), "targets": self.described,
                     "peer_cmd": self.opts["peer_cmd"] or None},
            "runs": runs,
            "memory": memory,
            "cache_off_us": cache_off_us(),
        }


def _sane(target: str, cell: C.Cell, body: str) -> bool:
    """The first response looked like a full answer (so a fast error page is not a result)."""
    if target == "direct":
        return '"candidates"' in body
    if cell.streamed:  # a cache hit replays the whole answer in one content delta
        deltas = 1 if target.endswith("+cache") else C.CHUNKS
        return "data: [DONE]" in body and body.count('"content"') >= deltas
    return '"chat.completion"' in body and '"content"' in body
