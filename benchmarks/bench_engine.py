#!/usr/bin/env python
"""Benchmark: the whole simulation engine (design -> chunks -> analyses -> results) on the
rpact reference designs, against rpact and a NumPy floor timed in the same run, and its
parallel efficiency from 1 to 2 Dask workers.

1. Serial engine, one core, 10,000 replicates of the group-sequential means design
   (looks at 119/237/356 patients, asOF, effect 0.3) and survival design (HR 0.7, 376
   patients over 24 months, looks at 83/167/250 events); best of ``--repeats``.
2. NumPy floor: the random numbers each simulation must draw (a stage mean and a
   chi-square per arm and look for means — the engine simulates sufficient statistics;
   entry and event times and one sort of 376 times per look for survival).
3. rpact (if ``Rscript -e 'library(rpact)'`` works): the same designs with
   getSimulationMeans / getSimulationSurvival, 10,000 iterations, timed inside one R
   process (start-up excluded).
   Also a multi-arm design (3 treatment arms + control, looks at 34/67/100 patients per
   arm) against rpact's getSimulationMultiArmMeans with the same arms, looks, effects and
   Bonferroni intersection tests (rpact combines stages by the inverse-normal method and
   closed testing; ours tests each arm with Bonferroni-adjusted group-sequential t tests:
   the same workload, not the same procedure).
4. Parallel efficiency: a 40,000-replicate survival study on an already started local
   Dask cluster with 1 and then 2 single-threaded worker processes:
   efficiency = T1 / (2 T2).

Run: .venv/bin/python benchmarks/bench_engine.py [--repeats 3] [--no-r]
A measurement, never a test.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.design import TrialDesign  # noqa: E402
from trials.engine import run  # noqa: E402

RATES = [1 / 3, 2 / 3, 1.0]
BASE = {"seed": 12345, "replicates": 10_000, "chunk_size": 2500,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}]}
MEANS = {**BASE, "endpoint": {"family": "normal", "sd": 1.0},
         "sample_size": {"stages": [119, 237, 356], "information_rates": RATES},
         "scenarios": [{"name": "alt", "effect": 0.3}], "analyses": [{"name": "t", "method": "difference_in_means"}]}
MULTI = {**BASE, "arms": [{"name": "placebo", "allocation": 1}, {"name": "low", "allocation": 1},
                          {"name": "mid", "allocation": 1}, {"name": "high", "allocation": 1}],
         "endpoint": {"family": "normal", "sd": 1.0},
         "sample_size": {"stages": [136, 268, 400], "information_rates": RATES},
         "scenarios": [{"name": "dose", "arm_effects": {"low": 0.1, "mid": 0.3, "high": 0.45}}],
         "analyses": [{"name": "t", "method": "difference_in_means"}]}
SURV = {**BASE, "endpoint": {"family": "time_to_event", "control_median": 12, "accrual": 24, "entry": "regular"},
        "sample_size": {"total": 376, "stages": [83, 167, 250], "information_rates": RATES},
        "scenarios": [{"name": "hr07", "effect": 0.7}], "analyses": [{"name": "logrank", "method": "logrank"}]}

R_SCRIPT = r"""
suppressMessages(library(rpact))
d <- getDesignGroupSequential(kMax = 3, alpha = 0.025, beta = 0.2, typeOfDesign = "asOF")
tm <- function(f) { f(); t <- c(); for (i in 1:REPEATS) t <- c(t, system.time(f())[["elapsed"]]); min(t) }
m <- tm(function() getSimulationMeans(d, alternative = 0.3, stDev = 1, plannedSubjects = c(119, 237, 356),
                                       maxNumberOfIterations = 10000, seed = 12345))
s <- tm(function() getSimulationSurvival(d, hazardRatio = 0.7, lambda2 = log(2)/12, directionUpper = FALSE,
       accrualTime = c(0, 24), plannedEvents = c(83, 167, 250), maxNumberOfSubjects = 376,
       maxNumberOfIterations = 10000, seed = 12345))
dm <- getDesignInverseNormal(kMax = 3, alpha = 0.025, typeOfDesign = "asOF", informationRates = c(1/3, 2/3, 1))
a <- tm(function() getSimulationMultiArmMeans(dm, activeArms = 3, typeOfShape = "userDefined",
       effectMatrix = matrix(c(0.1, 0.3, 0.45), ncol = 3), plannedSubjects = c(34, 67, 100), stDev = 1,
       intersectionTest = "Bonferroni", typeOfSelection = "all", maxNumberOfIterations = 10000, seed = 1))
cat(m, s, a, "\n")
"""


def best(f, repeats: int) -> float:
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def floors(repeats: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)

    def means_floor():  # the sufficient statistics: a stage mean and a chi-square per arm and look
        rng.standard_normal((10_000, 3, 2))
        rng.chisquare(59.0, (10_000, 3, 2))

    means = best(means_floor, repeats)

    def surv():
        e = rng.random((10_000, 376))
        t = rng.standard_exponential((10_000, 376))
        for _ in range(3):
            np.sort(e + t, axis=1)

    return means, best(surv, repeats)


def rpact(repeats: int) -> tuple[float, float, float] | None:
    if shutil.which("Rscript") is None:
        return None
    probe = subprocess.run(["Rscript", "-e", "library(rpact)"], capture_output=True)
    if probe.returncode != 0:
        return None
    out = subprocess.run(["Rscript", "-e", R_SCRIPT.replace("REPEATS", str(repeats))], capture_output=True,
                         text=True, check=True)
    return tuple(map(float, out.stdout.split()))


def parallel_efficiency() -> tuple[float, float]:
    from dask.distributed import LocalCluster

    design = TrialDesign.from_dict({**SURV, "replicates": 40_000, "chunk_size": 2500})
    times = []
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
            run(design.model_copy(update={"replicates": 2500}), scheduler=c.scheduler_address)  # warm workers
            t = time.perf_counter()
            run(design, scheduler=c.scheduler_address)
            times.append(time.perf_counter() - t)
    return times[0], times[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-parallel", action="store_true")
    args = ap.parse_args()
    means = TrialDesign.from_dict(MEANS)
    surv = TrialDesign.from_dict(SURV)
    t_means = best(lambda: run(means, executor="serial"), args.repeats)
    t_surv = best(lambda: run(surv, executor="serial"), args.repeats)
    multi = TrialDesign.from_dict(MULTI)
    t_multi = best(lambda: run(multi, executor="serial"), args.repeats)
    f_means, f_surv = floors(args.repeats)
    print("engine, one core, 10,000 replicates (best of %d)" % args.repeats)
    print(f"  means GSD     ours {t_means:7.3f} s   NumPy floor {f_means:6.3f} s   ours/floor {t_means / f_means:5.1f}")
    print(f"  survival GSD  ours {t_surv:7.3f} s   NumPy floor {f_surv:6.3f} s   ours/floor {t_surv / f_surv:5.1f}")
    r = None if args.no_r else rpact(args.repeats)
    if r is None:
        print("  rpact: skipped (no Rscript with rpact; Debian: apt-get install r-cran-rpact)")
    else:
        print(f"  rpact means {r[0]:.3f} s -> ours is {r[0] / t_means:5.1f}x faster")
        print(f"  rpact surv  {r[1]:.3f} s -> ours is {r[1] / t_surv:5.1f}x faster")
        print(f"  multi-arm (3 arms + control, 3 looks): ours {t_multi:.3f} s, rpact {r[2]:.3f} s -> "
              f"ours is {r[2] / t_multi:5.1f}x faster (same workload; rpact's procedure is an inverse-normal "
              "combination test with Bonferroni intersections, ours Bonferroni-adjusted group-sequential t tests)")
    if not args.no_parallel:
        t1, t2 = parallel_efficiency()
        print(f"parallel efficiency, 40,000 survival replicates: 1 worker {t1:.2f} s, 2 workers {t2:.2f} s, "
              f"efficiency {t1 / (2 * t2):.0%}")


if __name__ == "__main__":
    main()
