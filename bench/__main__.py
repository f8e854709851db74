"""`python -m bench` (`make bench`): the benchmark, its table printed and saved.

Every run measures, cell by cell and back to back: `direct` (the emulator, the floor), `bare`
(bench/bare.py, an aiohttp pass-through doing only the translation: the limit for a Python
aiohttp proxy on this box), `proxy` (the shipped defaults: SQLite ledger on disk in its own
temporary directory, billing line at INFO, metrics, no client keys), `proxy+memledger` (features
off: the ledger in memory, no client keys; metrics cannot be switched off), `proxy+features`
(features on: as `proxy` plus a client key with rpm, tpm and daily-budget limits, made with
`python -m aiproxy keys create` before start and sent only to this target) and `proxy+cache`.
The issue-16 targets are judged on `proxy` against `bare` and `direct` from the same run.

Environment (flags override):
  BENCH_QUICK=1          short smoke run (1 s cells, c=1 and 64, no model latency, 200 streams)
  BENCH_MEMLEDGER=0      skip proxy+memledger (then the features-on-vs-off target is not judged)
  BENCH_FEATURES=0       skip proxy+features (likewise)
  BENCH_PROXY_ENV        'K=V K2=V2' extra environment for every proxy process (over the defaults)
  BENCH_FEATURES_ENV     'K=V ...' extra environment for proxy+features only (e.g. USAGE_DB_URL=
                         postgresql://... REDIS_URL=...); its client key is made in its USAGE_DB_URL
  BENCH_CACHE_ENV        'K=V ...' for proxy+cache (default RESPONSE_CACHE=memory; '' to skip)
  BENCH_CLIENT_KEY       Bearer key sent to the other proxies and the peer (when BENCH_PROXY_ENV
                         points them at a database holding client keys)
  BENCH_PEER_CMD         shell command starting another OpenAI-compatible gateway for comparison;
                         {port}, {upstream}, {key} are filled in (also PORT, GEMINI_BASE_URL,
                         GEMINI_API_KEY in its environment). BENCH_PEER_MODEL: model name it serves.
  BENCH_WORKERS=N        also measure a proxy started with WORKERS=N (one port, N processes)
  BENCH_RESULTS_DIR      where the .md and .json go (default bench/results)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.cells import MODEL
from bench.run import Bench, parse_env_pairs

RESULTS = Path(__file__).resolve().parent / "results"


def _on(env: Mapping[str, str], name: str) -> bool:
    """A switch that is on unless set to '0' (or empty)."""
    return env.get(name, "1") not in ("", "0")


def _options(argv: list[str] | None) -> dict[str, Any]:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", default=env.get("BENCH_QUICK", "") not in ("", "0"))
    p.add_argument("--proxy-env", default=env.get("BENCH_PROXY_ENV", ""))
    p.add_argument("--memledger", action=argparse.BooleanOptionalAction, default=_on(env, "BENCH_MEMLEDGER"))
    p.add_argument("--features", action=argparse.BooleanOptionalAction, default=_on(env, "BENCH_FEATURES"))
    p.add_argument("--features-env", default=env.get("BENCH_FEATURES_ENV", ""))
    p.add_argument("--cache-env", default=env.get("BENCH_CACHE_ENV", "RESPONSE_CACHE=memory"),
                   help="'K=V ...' for a proxy whose repeated identical requests are cache hits ('' to skip)")
    p.add_argument("--client-key", default=env.get("BENCH_CLIENT_KEY") or None)
    p.add_argument("--peer-cmd", default=env.get("BENCH_PEER_CMD", ""))
    p.add_argument("--peer-model", default=env.get("BENCH_PEER_MODEL", MODEL))
    p.add_argument("--workers", type=int, default=int(env.get("BENCH_WORKERS") or 1))
    p.add_argument("--results-dir", type=Path, default=Path(env.get("BENCH_RESULTS_DIR") or RESULTS))
    a = p.parse_args(argv)
    return {"quick": a.quick, "memledger": a.memledger, "features": a.features,
            "proxy_env": parse_env_pairs(a.proxy_env),
            "features_env": parse_env_pairs(a.features_env), "cache_env": parse_env_pairs(a.cache_env),
            "client_key": a.client_key, "peer_cmd": a.peer_cmd, "peer_model": a.peer_model, "workers": a.workers,
            "results_dir": a.results_dir}


def _json_safe(obj: Any) -> Any:
    """NaN (a figure not measured) becomes null, so the JSON stays standard."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    opts = _options(argv)
    result = report.build(Bench(opts).run())
    table = report.markdown(result)
    out_dir: Path = opts["results_dir"]
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "bench-" + datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if opts["quick"] else "")
    (out_dir / f"{stem}.md").write_text(table)
    (out_dir / f"{stem}.json").write_text(json.dumps(_json_safe(result), indent=1) + "\n")
    print(table)
    print(f"written: {out_dir / stem}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
