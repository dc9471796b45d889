#!/usr/bin/env python
"""Benchmark: drawing virtual patients from a fitted generator (`Generator.sample_cohort`).

Target (issue): >= 1 million virtual patients per second per core with ~10 covariates.

What it does
------------
1. Gets a fitted generator of the 10-covariate, Weibull-outcome spec in `_common.py`
   (mixed types: continuous incl. a quantile margin and two log transforms, two binary,
   a 4-level categorical, a count; plus a patient id column). The generator is fitted
   ONCE with a small sampler (2 chains x 250 draws, 250 tune, about half a minute) on
   1,000 simulated patients and cached outside the repository (default
   ~/.cache/insilico-benchmarks/). The posterior's quality does not matter here: sampling
   speed depends on the spec's shape, not on the parameter values. The cache key covers
   the spec and the source of the model/encoding modules, so it refits after they change.
2. Times `sample_cohort(n, seed)` single-threaded (OMP/OPENBLAS/MKL threads = 1) over
   several repeats and reports min and median.
3. Times a NumPy floor in the same process: the irreducible work of drawing the same
   number of random numbers, rng.standard_normal((n, K + 1)) for K covariates and the
   outcome, plus one (n, P) @ (P,) matrix product per covariate. It also times the floor
   plus building a float DataFrame of the same number of columns, for reference.
4. Prints patients/second, the target, 'ours / floor' (time ratio: how many times the
   floor's time sample_cohort takes), and a breakdown of where the time goes (covariates,
   each covariate, outcome, DataFrame assembly including the id column).

Run:  .venv/bin/python benchmarks/bench_sampling.py            (2,000,000 patients, 5 repeats)
      .venv/bin/python benchmarks/bench_sampling.py --quick    (200,000 patients, 3 repeats)
This is a measurement, never a test: nothing here passes or fails.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, before numpy is imported

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _common import N_COVARIATES, REPO, cache_dir, make_spec, simulate  # noqa: E402

TARGET_PER_SECOND = 1_000_000  # per core
FIT_SAMPLER = {"draws": 250, "tune": 250, "chains": 2}


# ---------------------------------------------------------------------- the generator
def _cache_key(spec, n_fit: int, data_seed: int) -> str:
    h = hashlib.sha256()
    h.update(spec.hash().encode())
    h.update(f"{n_fit}:{data_seed}".encode())
    for mod in ("model.py", "encoding.py", "generator.py"):
        h.update((REPO / "virtual_patients" / mod).read_bytes())
    return h.hexdigest()[:16]


def get_generator(family: str, cache: Path, refit: bool, n_fit: int = 1000, data_seed: int = 20261123):
    from virtual_patients.generator import Generator, fit

    spec = make_spec(family, **FIT_SAMPLER)
    path = cache / f"sampling-{family}-{_cache_key(spec, n_fit, data_seed)}"
    if path.is_dir() and not refit:
        try:
            gen = Generator.load(path)
            print(f"generator: loaded from cache {path}")
            return gen
        except Exception as err:  # a stale or broken cache entry: refit
            print(f"generator: cache at {path} unusable ({type(err).__name__}: {err}); refitting")
    logging.getLogger("pymc").setLevel(logging.WARNING)
    df = simulate(n_fit, data_seed)
    print(f"generator: fitting once on {n_fit} simulated patients with a small sampler "
          f"({FIT_SAMPLER['chains']} chains x {FIT_SAMPLER['draws']} draws, {FIT_SAMPLER['tune']} tune)...")
    t = time.perf_counter()
    gen = fit(df, spec, seed=1, progress=False)
    print(f"generator: fitted in {time.perf_counter() - t:.1f} s; cached at {path}")
    gen.save(path)
    return gen


# ---------------------------------------------------------------------- timing
def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        out.append(time.perf_counter() - t)
        del res
    return out


def floor_work(n: int, n_cov: int, P: int, rng: np.random.Generator, coefs: np.ndarray) -> np.ndarray:
    """Irreducible work: n * (K + 1) normal draws and one (n, P) @ (P,) product per covariate."""
    Z = rng.standard_normal((n, n_cov + 1))
    D = np.empty((n, P))
    w = min(P, n_cov + 1)
    D[:, :w] = Z[:, :w]
    if P > w:
        D[:, w:] = Z[:, : P - w]
    acc = np.zeros(n)
    for j in range(n_cov):
        acc += D @ coefs[j]
    return acc


def floor_with_frame(n: int, n_cov: int, P: int, rng: np.random.Generator, coefs: np.ndarray) -> pd.DataFrame:
    """The floor plus assembling K + 2 float columns into a DataFrame."""
    acc = floor_work(n, n_cov, P, rng, coefs)
    Z = rng.standard_normal((n_cov + 1, n))
    cols = {f"c{j}": Z[j] for j in range(n_cov + 1)}
    cols["y"] = acc
    return pd.DataFrame(cols)


def summary(ts: list[float]) -> tuple[float, float]:
    return min(ts), statistics.median(ts)


# ---------------------------------------------------------------------- breakdown
def phase_breakdown(gen, n: int, seed: int, repeats: int) -> dict[str, float] | None:
    """Time sample_cohort's phases separately (uses generator internals; None if they changed)."""
    from virtual_patients import kernels
    from virtual_patients.generator import NEW_STUDY, Generator

    try:
        no_id = Generator(gen.spec.model_copy(update={"id": None}), gen.posterior, gen.meta)
        best: dict[str, float] = {}
        for r in range(repeats):
            rng = np.random.default_rng(seed + r)
            t0 = time.perf_counter()
            p = gen._params_at(int(rng.integers(gen.n_draws)))
            alpha = gen._alpha(p, NEW_STUDY, rng)
            t1 = time.perf_counter()
            D, values = kernels.draw_covariates(p, gen.encoders, gen.offsets, n, rng)
            t2 = time.perf_counter()
            eta = alpha + D @ p["beta"]
            noise = kernels.outcome_noise(gen.family, n, rng)
            y = kernels.outcome_from_noise(gen.family, eta, noise, p, gen._cuts)
            t3 = time.perf_counter()
            cols = gen._outcome_columns(y, rng)
            t4 = time.perf_counter()
            out = no_id._covariate_frame(values, n, NEW_STUDY)
            for c, v in cols.items():
                out[c] = v
            t5 = time.perf_counter()
            del out
            with_id = gen._covariate_frame(values, n, NEW_STUDY)
            t6 = time.perf_counter()
            del with_id, D, values
            # the id column's cost: frame with the id column minus frame without it
            t_frame_noid = (t5 - t4)
            phases = {
                "posterior draw + study intercept": t1 - t0,
                "covariates (kernels.draw_covariates)": t2 - t1,
                "outcome (linear predictor, noise, inversion)": t3 - t2,
                "censoring + outcome columns": t4 - t3,
                "DataFrame assembly without id": t_frame_noid,
                "id column (frame with id - frame without)": max(0.0, (t6 - t5) - t_frame_noid),
            }
            for k, v in phases.items():
                best[k] = min(best.get(k, np.inf), v)
        return best
    except (AttributeError, TypeError, KeyError, ValueError) as err:
        print(f"  (phase breakdown unavailable: generator internals changed: {type(err).__name__}: {err})")
        return None


def covariate_breakdown(gen, n: int, seed: int, repeats: int) -> list[tuple[str, str, float]] | None:
    """Each covariate's marginal cost in draw_covariates: T(first j+1) - T(first j), min of repeats."""
    from virtual_patients import kernels

    try:
        p = gen._params_at(0)
        prefix = [0.0]
        for j in range(1, len(gen.encoders) + 1):
            encs, offs = gen.encoders[:j], gen.offsets[: j + 1]
            ts = timed(lambda e=encs, o=offs: kernels.draw_covariates(p, e, o, n, np.random.default_rng(seed)),
                       repeats)
            prefix.append(min(ts))
        out = []
        for j, enc in enumerate(gen.encoders):
            kind = enc.type + (f"/{enc.transform}" if enc.transform not in ("none", None) else "")
            if enc.type == "continuous" and enc.range is not None and enc.transform != "quantile":
                kind += " (truncated)"
            out.append((enc.name, kind, prefix[j + 1] - prefix[j]))
        return out
    except (AttributeError, TypeError, KeyError, ValueError) as err:
        print(f"  (covariate breakdown unavailable: {type(err).__name__}: {err})")
        return None


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="patients per cohort (default 2,000,000)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    ap.add_argument("--quick", action="store_true", help="200,000 patients, 3 repeats, small breakdown")
    ap.add_argument("--family", default="weibull", choices=["weibull", "piecewise_exponential"])
    ap.add_argument("--cache-dir", default=None, help="where the fitted generator is cached")
    ap.add_argument("--refit", action="store_true", help="ignore the cache and refit")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-phase/per-covariate profile")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    n, repeats = (200_000, 3) if args.quick else (args.n, args.repeats)
    seed = 12345

    gen = get_generator(args.family, cache_dir(args.cache_dir), args.refit)
    K, P = len(gen.encoders), gen.offsets[-1]
    assert K == N_COVARIATES
    print(f"spec: {K} covariates ({', '.join(e.type for e in gen.encoders)}), {P} design columns, "
          f"{gen.family} outcome, id column {gen.spec.id!r}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores visible; numpy {np.__version__}, "
          f"pandas {pd.__version__}; single-threaded (BLAS/OpenMP threads = 1)")
    print(f"n = {n:,} patients per cohort, {repeats} repeats\n")

    gen.sample_cohort(10_000, 0)  # warm-up (imports, first-touch)
    ours = timed(lambda: gen.sample_cohort(n, seed), repeats)
    rng = np.random.default_rng(seed)
    coefs = rng.standard_normal((K, P))
    floor = timed(lambda: floor_work(n, K, P, rng, coefs), repeats)
    floor_df = timed(lambda: floor_with_frame(n, K, P, rng, coefs), repeats)
    # interleave a second round so drift on a shared machine hits both sides
    ours += timed(lambda: gen.sample_cohort(n, seed + 1), 1)
    floor += timed(lambda: floor_work(n, K, P, rng, coefs), 1)

    o_min, o_med = summary(ours)
    f_min, f_med = summary(floor)
    fd_min, fd_med = summary(floor_df)
    rate_med, rate_best = n / o_med, n / o_min
    print(f"{'':38s} {'min s':>8s} {'median s':>9s} {'patients/s (median)':>21s}")
    print(f"{'sample_cohort':38s} {o_min:8.3f} {o_med:9.3f} {rate_med:21,.0f}")
    print(f"{'floor: normals + K matvecs':38s} {f_min:8.3f} {f_med:9.3f} {n / f_med:21,.0f}")
    print(f"{'floor + float DataFrame (reference)':38s} {fd_min:8.3f} {fd_med:9.3f} {n / fd_med:21,.0f}")
    print()
    print(f"target: {TARGET_PER_SECOND:,} patients/s/core -> measured {rate_med:,.0f}/s (median), "
          f"{rate_best:,.0f}/s (best): {rate_med / TARGET_PER_SECOND:.2f}x the target "
          f"({'met' if rate_med >= TARGET_PER_SECOND else 'NOT met'} at the median)")
    print(f"ours / floor (median time ratio): {o_med / f_med:.2f}   "
          f"(min/min: {o_min / f_min:.2f}; vs floor+DataFrame: {o_med / fd_med:.2f})")
    print(f"time for a {n:,}-patient population: {o_med:.2f} s")

    result = {"n": n, "repeats": len(ours), "ours_min_s": o_min, "ours_median_s": o_med,
              "floor_min_s": f_min, "floor_median_s": f_med, "floor_frame_median_s": fd_med,
              "patients_per_s_median": rate_med, "ratio_ours_floor": o_med / f_med,
              "target_ratio": rate_med / TARGET_PER_SECOND}

    if not args.no_breakdown:
        nb = n
        rb = 2 if not args.quick else 1
        print(f"\nbreakdown of one sample_cohort({nb:,}) by phase (min of {rb + 1}):")
        phases = phase_breakdown(gen, nb, seed, rb + 1)
        if phases:
            tot = sum(phases.values())
            for k, v in phases.items():
                print(f"  {k:46s} {v:7.3f} s  {100 * v / tot:5.1f} %")
            print(f"  {'sum':46s} {tot:7.3f} s")
            result["phases_s"] = phases
        nc = min(n, 500_000)
        print(f"\ncovariates one by one at n = {nc:,} (marginal cost, min of 3; "
              f"per 2M patients in brackets):")
        covs = covariate_breakdown(gen, nc, seed, 3)
        if covs:
            for name, kind, v in covs:
                print(f"  {name:10s} {kind:32s} {v:7.3f} s  [{v * 2_000_000 / nc:6.3f} s]")
            result["covariates_s"] = {name: v for name, _, v in covs}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
