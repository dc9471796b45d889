"""Bounded memory at scale: `insilico simulate` of a 2-scenario x 2-analysis design at
2,000,000 replicates against the same design at 200,000.

Each run is its own process (a scratch MLflow store, a local cluster of ``--workers``
worker processes) that reports its own peak resident memory (``ru_maxrss`` of the client
process alone, not its workers) and wall time. Chunks stream from the workers into the
results store and the OCs are reductions over it, so the client's peak should not grow with
the replicates, and the time beyond a fixed start (imports, the local cluster: measured by a
one-chunk run) should grow linearly (ratio ~10). The floor measured in the
same run: the client's peak when the same 2,000,000 replicates are assembled in memory
(`engine.run` without a store), as the engine did before the store.

    .venv/bin/python benchmarks/bench_memory.py                 # 200,000 and 2,000,000 (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_memory.py --large 400000  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

DESIGN = {
    "seed": 20261204, "chunk_size": 20000,
    "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
    "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 200},
    "external_control": {"n": 200, "source": "parametric"},
    "scenarios": [{"name": "null", "effect": 0.0}, {"name": "target", "effect": 0.35}],
    "analyses": [{"name": "unadjusted", "method": "difference_in_means"},
                 {"name": "hybrid_a0_0.5", "method": "hybrid_power_prior", "a0": 0.5, "weighting": "none"}],
    "decision": {"alpha": 0.025, "sided": "one"},
}

CHILD = """
import json, resource, sys, time
from pathlib import Path
mode, design, out, workers = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
if mode == "store":
    from insilico.stages.simulate import simulate_design
    oc = simulate_design(design, out, workers=workers).oc
    size = out.stat().st_size
else:  # the floor: every replicate assembled in this process's memory
    from insilico.stages.simulate import load_design
    from insilico.trials.engine import run
    from insilico.trials.oc import operating_characteristics
    oc = operating_characteristics(run(load_design(design), workers=workers))
    size = None
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "file_mb": size and size / 1e6, "power": float(oc.rejection_rate.sel(scenario="target").max())}))
"""


def measure(mode: str, replicates: int, workers: int, scratch: Path) -> dict:
    design = scratch / f"design_{replicates}.yaml"
    design.write_text(yaml.safe_dump({**DESIGN, "replicates": replicates}, sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
           "INSILICO_ARTIFACT_ROOT": (scratch / "artifacts").as_uri()}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(design), str(scratch / f"{mode}_{replicates}.nc"),
                           str(workers)], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} at {replicates:,} replicates failed:\n{done.stderr[-3000:]}")
    (scratch / f"{mode}_{replicates}.nc").unlink(missing_ok=True)
    return {"mode": mode, "replicates": replicates, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=200_000)
    ap.add_argument("--large", type=int, default=2_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-floor", action="store_true", help="skip the in-memory floor at --large")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="insilico-bench-memory-") as tmp:
        rows = [measure("store", n, args.workers, Path(tmp)) for n in (args.small, args.large)]
        # one chunk: what a run costs before its replicates (imports, the cluster, the store)
        fixed = measure("store", DESIGN["chunk_size"], args.workers, Path(tmp))
        if not args.no_floor:
            rows.append(measure("memory", args.large, args.workers, Path(tmp)))
    print(f"{'client':<8} {'replicates':>11} {'wall s':>8} {'s per 1M':>9} {'peak RSS MB':>12} {'file MB':>8}")
    for r in rows:
        file_mb = f"{r['file_mb']:.0f}" if r["file_mb"] else "-"
        print(f"{r['mode']:<8} {r['replicates']:>11,} {r['seconds']:>8.1f} {r['seconds'] / r['replicates'] * 1e6:>9.1f} "
              f"{r['peak_rss_mb']:>12.0f} {file_mb:>8}")
    small, large = rows[0], rows[1]
    ratios = {"time_ratio_large_to_small": large["seconds"] / small["seconds"],
              "fixed_seconds": fixed["seconds"],
              "marginal_time_ratio": (large["seconds"] - fixed["seconds"]) / (small["seconds"] - fixed["seconds"]),
              "replicate_ratio": large["replicates"] / small["replicates"],
              "rss_ratio_large_to_small": large["peak_rss_mb"] / small["peak_rss_mb"]}
    if not args.no_floor:
        ratios["rss_store_vs_in_memory"] = large["peak_rss_mb"] / rows[2]["peak_rss_mb"]
    print(f"time x{ratios['time_ratio_large_to_small']:.2f} for x{ratios['replicate_ratio']:.0f} replicates; "
          f"less the {fixed['seconds']:.1f} s a one-chunk run takes: x{ratios['marginal_time_ratio']:.2f} "
          f"(linear: x{ratios['replicate_ratio']:.0f}); client peak RSS x{ratios['rss_ratio_large_to_small']:.2f}"
          + (f"; store / in-memory at {args.large:,}: {ratios['rss_store_vs_in_memory']:.2f}" if not args.no_floor
             else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, **ratios}, indent=2))


if __name__ == "__main__":
    main()
