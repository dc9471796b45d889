#!/usr/bin/env python
"""Benchmark: conjugate Bayesian borrowing decisions, `trials.borrowing.prob_diff_greater`.

Target (issue): <= 10 us per replicate for Pr(theta_t - theta_c > 0 | data), all component
pairs of the replicate included.  Three chunks of 10,000 replicates, best of 5, one core:

* dedupe: binary 24:6 trial, robust MAP control prior (3 components); binomial counts
  give at most 25 x 7 distinct posterior pairs, each integrated once;
* unique, 1 component: Jeffreys treatment posterior (n_t 100-200) against a weighted
  power-prior control (n_c 100-200, 150 external patients with fractional propensity-type
  weights, a0 = 0.5), as in `trials.external.hybrid_binary`: every replicate differs;
* unique, 3 components: the same treatment against the robust MAP posterior with n_c
  60-200: 3 pairs per replicate, every one different;
* closed forms, for comparison: normal mixtures (2 vs 2 components) and gamma mixtures
  (Poisson counts with a different exposure in every replicate, delta = 0).

Columns: the current rule (cumulative, betainc fallback) and the previous one (betainc at
every node, forced by making the cumulative rule reject every pair), and as a reference
one `scipy.special.betainc` call per component pair: not a floor, but the price of a
single exact incomplete-beta evaluation, which any exact method pays at least once.

With ``--mcmc`` also the MCMC path (`trials.mcmc.analyse_mcmc`, 2 chains x 1000 draws) on
the robust-MAP binary case at 200 and 1,000 replicates per chunk: the first call (imports
and compilation) and the best of 3 later calls.

Run:  .venv/bin/python benchmarks/bench_borrowing.py [--mcmc]
This is a measurement, never a test: nothing here passes or fails.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, before numpy is imported

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import insilico.trials.borrowing.difference as bd  # noqa: E402
from insilico.trials.borrowing import (  # noqa: E402
    BetaMixture,
    GammaMixture,
    NormalMixture,
    prob_diff_greater,
)

R = 10_000
REPEATS = 5


def best_us_per_replicate(fn) -> float:
    fn()  # warm-up
    best = np.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / R * 1e6


def cases(rng):
    robust_map = BetaMixture.from_components([[0.6, 18.0, 64.0], [0.4, 6.0, 18.0]]).robustify(0.2)
    jeffreys = BetaMixture(1.0, 0.5, 0.5)
    dedupe = (BetaMixture(1.0, 0.5, 1.0).posterior(rng.binomial(24, 0.45, R), 24),
              robust_map.posterior(rng.binomial(6, 0.3, R), 6))
    n_t = rng.integers(100, 201, R)
    treat = jeffreys.posterior(rng.binomial(n_t, 0.35), n_t)
    n_c = rng.integers(100, 201, R)
    x_c = rng.binomial(n_c, 0.3)
    w = rng.uniform(0.2, 1.5, (R, 150))
    y_ext = rng.random((R, 150)) < 0.3
    power = BetaMixture(1.0, 1.0, 1.0).posterior(0.5 * (w * y_ext).sum(axis=1), 0.5 * w.sum(axis=1))
    one = (treat, BetaMixture(power.weights, power.a + x_c[:, None], power.b + (n_c - x_c)[:, None]))
    n_m = rng.integers(60, 201, R)
    mix = (treat, robust_map.posterior(rng.binomial(n_m, 0.3), n_m))
    return {"dedupe, robust MAP 24:6": dedupe, "unique, 1 component": one, "unique, 3 components": mix}


def main() -> None:
    reject_all = mock.patch.object(bd, "_beta_diff_cumulative", lambda an, *_: np.full(an.size, np.nan))
    print(f"prob_diff_greater, {R:,} replicates, best of {REPEATS}, one core (us/replicate)")
    print(f"{'case':26s} {'pairs/rep':>9s} {'current':>9s} {'previous':>9s} {'1 betainc/pair':>15s}")
    for name, (post_t, post_c) in cases(np.random.default_rng(2024)).items():
        pairs = post_t.n_components * post_c.n_components
        a_c, b_c = (np.tile(np.broadcast_to(p, (R, post_c.n_components)), post_t.n_components)
                    for p in (post_c.a, post_c.b))
        current = best_us_per_replicate(lambda: prob_diff_greater(post_t, post_c))
        with reject_all:
            previous = best_us_per_replicate(lambda: prob_diff_greater(post_t, post_c))
        ref = best_us_per_replicate(lambda: special.betainc(a_c, b_c, 0.3))
        print(f"{name:26s} {pairs:9d} {current:9.2f} {previous:9.2f} {ref:15.2f}")
    rng = np.random.default_rng(7)
    normal = NormalMixture([0.8, 0.2], [0.0, 0.0], [0.3, 10.0], sigma=10.0)
    gamma = GammaMixture([0.8, 0.2], [20.0, 2.0], [10.0, 1.0])
    closed = {
        "normal, 2 vs 2": (normal.posterior(rng.normal(size=R), n=50), normal.posterior(rng.normal(size=R), n=50)),
        "poisson, own exposure": (gamma.posterior(rng.poisson(20, R), rng.uniform(8, 12, R)),
                                  gamma.posterior(rng.poisson(25, R), rng.uniform(8, 12, R))),
    }
    for name, (post_t, post_c) in closed.items():
        print(f"{name:26s} {4:9d} {best_us_per_replicate(lambda: prob_diff_greater(post_t, post_c)):9.2f}"
              "   (closed form)")


def mcmc_timing() -> None:
    from insilico.trials.bayesian import vague_prior
    from insilico.trials.mcmc import analyse_mcmc

    prior = BetaMixture.from_components([[0.6, 18.0, 64.0], [0.4, 6.0, 18.0]]).robustify(0.2)
    rng = np.random.default_rng(3)
    print("MCMC path, binary 24:6, robust MAP vs Beta(1, 1), 2 chains x 1000 draws")
    for reps in (200, 1000):
        s = {"n_t": 24, "n_c": 6, "mean_t": rng.binomial(24, 0.45, reps) / 24,
             "mean_c": rng.binomial(6, 0.26, reps) / 6}

        def call(seed):
            t0 = time.perf_counter()
            analyse_mcmc(prior, vague_prior("binary", None), s, "binary", None, direction="greater", level=0.95,
                         threshold=0.95, seed=seed)
            return time.perf_counter() - t0

        first = call(1)
        later = min(call(seed) for seed in (2, 3, 4))
        print(f"  {reps:5d} replicates: first call {first:5.1f} s, then {later:5.2f} s = "
              f"{1e3 * later / reps:.1f} ms/replicate")


if __name__ == "__main__":
    main()
    if "--mcmc" in sys.argv[1:]:
        mcmc_timing()
