#!/usr/bin/env python
"""Benchmark: fitting a generator (`virtual_patients.generator.fit`) with the default sampler.

Target (issue): ~1,000 patients x ~10 covariates fitted in under 2 minutes on 2 cores,
with convergence diagnostics within thresholds (R-hat < 1.01, bulk/tail ESS >= 400, no
divergences; `validation.diagnostics.mcmc_diagnostics`).

What it does
------------
1. Simulates 1,000 patients with the 10 mixed-type covariates of `_common.py` and a
   Weibull proportional-hazards outcome (~30 % censored).
2. Fits the generator with the spec's default sampler (4 chains x 1000 draws, 1000 tune,
   nutpie on all visible cores) and prints the wall time split into
     - prep: data contract (Great Expectations), encoding, building the PyMC model,
       packaging the posterior (wall time of fit() minus meta['sampling_seconds']);
     - compile: nutpie/numba compilation of the log density (meta['sampling_seconds']
       minus the posterior's 'sampling_time' attribute that PyMC stamps);
     - sampling: nutpie's own sampling time.
3. Prints the diagnostics and whether they meet the thresholds, and sampler effort
   (leapfrog steps, gradient evaluations per second).
4. Times a floor in the same process: lifelines' WeibullAFTFitter maximum-likelihood fit
   of the same outcome model (Weibull PH == Weibull AFT) on the same 12 design columns,
   and prints 'ours / MLE-floor' (how many times the MLE's time the Bayesian fit takes;
   our fit also models the 10 covariates' joint distribution and gives a full posterior,
   so this ratio is large by construction: it is a yardstick, not a target).
5. Prints the budget ratio: wall time / 120 s (< 1 means the 2-minute target is met).

Run:  .venv/bin/python benchmarks/bench_fit.py              (default sampler, ~1-2 minutes)
      .venv/bin/python benchmarks/bench_fit.py --cold-cache (same, compiling from an empty cache)
      .venv/bin/python benchmarks/bench_fit.py --quick      (2 chains x 300 draws, 300 tune)
This is a measurement, never a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

if "--cold-cache" in sys.argv:
    # a fresh PyTensor compile directory (numba's cache lives under it): what a new machine
    # or a fresh CI run pays; must be set before pytensor is imported
    import atexit
    import shutil

    _COLD = tempfile.mkdtemp(prefix="insilico-bench-pytensor-")
    atexit.register(shutil.rmtree, _COLD, ignore_errors=True)
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f for f in (os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={_COLD}") if f)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import make_spec, simulate  # noqa: E402

BUDGET_S = 120.0


def mle_floor(df: pd.DataFrame, spec, repeats: int) -> tuple[list[float], object]:
    """lifelines Weibull AFT MLE on the generator's own design columns."""
    from lifelines import WeibullAFTFitter

    from insilico.virtual_patients.encoding import (
        design_matrix,
        design_names,
        learn_encoders,
    )

    encs = learn_encoders(df, spec)
    X = pd.DataFrame(design_matrix(df, encs), columns=design_names(encs))
    X["time"], X["event"] = df["time"].to_numpy(float), df["event"].to_numpy(int)
    times, model = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = WeibullAFTFitter().fit(X, duration_col="time", event_col="event")
        times.append(time.perf_counter() - t)
    return times, model


def sampler_effort(posterior) -> dict[str, float]:
    stats = posterior["sample_stats"].to_dataset()
    out: dict[str, float] = {}
    for name in ("n_steps", "tree_size"):
        if name in stats:
            steps = np.asarray(stats[name].values, dtype=float)
            out["leapfrog_steps_kept"] = float(steps.sum())
            out["mean_steps_per_draw"] = float(steps.mean())
            break
    for name in ("depth", "tree_depth"):
        if name in stats:
            out["mean_tree_depth"] = float(np.asarray(stats[name].values, dtype=float).mean())
            break
    if "step_size" in stats:
        out["step_size"] = float(np.asarray(stats["step_size"].values, dtype=float).mean())
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="simulated patients (default 1000)")
    ap.add_argument("--family", default="weibull", choices=["weibull", "piecewise_exponential"])
    ap.add_argument("--quick", action="store_true", help="small sampler: 2 chains x 300 draws, 300 tune")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cold-cache", action="store_true",
                    help="compile into a fresh, empty PyTensor/numba cache (a new machine's first fit)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    logging.getLogger("pymc").setLevel(logging.WARNING)
    sampler = {"draws": 300, "tune": 300, "chains": 2} if args.quick else {}
    spec = make_spec(args.family, **sampler) if sampler else make_spec(args.family)
    s = spec.sampler
    df = simulate(args.n)
    print(f"data: {len(df)} simulated patients, {len(spec.covariates)} covariates "
          f"({', '.join(c.type.value for c in spec.covariates)}), {args.family} outcome, "
          f"{100 * (1 - df['event'].mean()):.0f} % censored")
    print(f"sampler: {s.chains} chains x {s.draws} draws, {s.tune} tune, target_accept {s.target_accept} "
          f"({'--quick' if args.quick else 'spec defaults'}); {os.cpu_count()} cores visible\n")

    from insilico.validation.diagnostics import (
        ESS_MIN,
        RHAT_MAX,
        converged,
        mcmc_diagnostics,
    )
    from insilico.virtual_patients.fitting import fit

    t0, c0 = time.perf_counter(), time.process_time()
    gen = fit(df, spec, seed=args.seed, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    in_sample = float(gen.meta.get("sampling_seconds", float("nan")))
    nutpie_s = gen.posterior["posterior"].attrs.get("sampling_time")
    nutpie_s = float(nutpie_s) if nutpie_s is not None else float("nan")
    compile_s = in_sample - nutpie_s
    prep_s = wall - in_sample

    # attribute part of the prep: the data contract alone, run again now that GX is imported
    from insilico.validation.contract import enforce

    t = time.perf_counter()
    enforce(df, spec)
    contract_s = time.perf_counter() - t

    diag = mcmc_diagnostics(gen.posterior)
    ok = converged(diag)
    effort = sampler_effort(gen.posterior)

    floor_times, mle = mle_floor(df, spec, repeats=5)
    floor_med = statistics.median(floor_times)

    print(f"{'fit() wall time':44s} {wall:8.1f} s   (CPU {cpu:.1f} s over all threads: "
          f"{cpu / wall:.2f} cores busy on average; compile cache {'cold' if args.cold_cache else 'as found'})")
    print(f"{'  prep: contract, encoding, model, packaging':44s} {prep_s:8.1f} s   "
          f"(data contract alone, warm: {contract_s:.1f} s)")
    print(f"{'  compile (nutpie/numba log density)':44s} {compile_s:8.1f} s")
    print(f"{'  sampling (nutpie)':44s} {nutpie_s:8.1f} s")
    total_draws = s.chains * (s.draws + s.tune)
    print(f"{'  sampling rate':44s} {total_draws / nutpie_s:8.0f} iterations/s over {s.chains} chains")
    if "leapfrog_steps_kept" in effort:
        grads = effort["leapfrog_steps_kept"] * (s.draws + s.tune) / s.draws  # tuning steps estimated alike
        print(f"{'  gradient evaluations (approx., kept draws)':44s} {effort['mean_steps_per_draw']:8.1f} per draw, "
              f"~{grads / nutpie_s:,.0f}/s")
    if "step_size" in effort:
        print(f"{'  step size / mean tree depth':44s} {effort['step_size']:8.3f} / "
              f"{effort.get('mean_tree_depth', float('nan')):.2f}")
    print()
    print(f"diagnostics: max R-hat {diag['max_rhat']:.4f} (< {RHAT_MAX}), min bulk ESS {diag['min_ess_bulk']:.0f}, "
          f"min tail ESS {diag['min_ess_tail']:.0f} (>= {ESS_MIN}), divergences {diag['divergences']} "
          f"-> {'within thresholds' if ok else 'NOT within thresholds'}")
    print(f"MLE floor (lifelines WeibullAFTFitter, same 12 design columns): median {floor_med:.3f} s "
          f"(min {min(floor_times):.3f} s, {len(floor_times)} fits); log-likelihood {mle.log_likelihood_:.1f}")
    print()
    print(f"ours / MLE-floor: {wall / floor_med:,.0f}   (sampling alone: {nutpie_s / floor_med:,.0f})")
    print(f"budget ratio: wall / {BUDGET_S:.0f} s = {wall / BUDGET_S:.2f} -> 2-minute target "
          f"{'met' if wall < BUDGET_S else 'NOT met'}; convergence {'met' if ok else 'NOT met'}")

    result = {"wall_s": wall, "cpu_s": cpu, "cold_cache": args.cold_cache, "prep_s": prep_s,
              "contract_s": contract_s, "compile_s": compile_s,
              "sampling_s": nutpie_s, "diagnostics": diag, "converged": ok, "effort": effort,
              "mle_floor_median_s": floor_med, "ratio_ours_mle": wall / floor_med,
              "budget_ratio": wall / BUDGET_S, "sampler": s.model_dump()}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
