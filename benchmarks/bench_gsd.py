#!/usr/bin/env python
"""Benchmark: group-sequential trial simulation (`trials/gsd.py`) vs a NumPy floor and rpact.

What it does
------------
1. Builds the 3-look asOF design of ``../shared/reference/rpact_gsd.json`` and times, on one
   core (OMP/OPENBLAS/MKL threads = 1), 10,000-replicate runs of
   * ``simulate_means`` (known-sd z, rpact's default, and the cumulative t statistic),
     planned subjects 119/237/356, alternative 0.3, sd 1;
   * ``simulate_survival``: HR 0.7, lambda2 = log(2)/12, 376 subjects accrued over 24
     months, looks at 83/167/250 events, ``directionUpper = FALSE``;
   each warmed up once, then ``--repeats`` times (min and median reported).
2. Times the NumPy floor in the same process: the random-number generation alone, i.e.
   the draws each simulation cannot avoid — ``standard_normal((R, K, 2))`` (+
   ``standard_gamma`` for t) for means, ``standard_exponential((R, 376))`` for survival —
   and prints 'ours / floor'.
3. If ``Rscript -e 'library(rpact)'`` works (Debian: ``apt-get install r-cran-rpact``),
   times rpact's ``getSimulationMeans`` / ``getSimulationSurvival`` with the JSON's calls
   (10,000 iterations, seed 12345) inside one R process in the same benchmark run (one
   warm-up, then the same number of repeats; R start-up excluded), and prints
   'ours / rpact' time ratios. Otherwise it prints that the comparison was skipped.

Run:  .venv/bin/python benchmarks/bench_gsd.py              (10,000 replicates, 5 repeats)
      .venv/bin/python benchmarks/bench_gsd.py --no-r       (skip rpact)
This is a measurement, never a test: nothing here passes or fails.

Measured (2-vCPU shared machine, Python 3.12.1, numpy 2.5.5, scipy 1.18.1, R 4.2.2 +
rpact 3.3.4; one run of ``bench_gsd.py`` with defaults, min of 5; expect ~20 % run-to-run
movement on this shared machine)
-------------------------------------------------------------------------------------
==========================  ========  =========  ===========  ===========  ===========
task (10,000 replicates)    ours      RNG floor  ours / floor  rpact        ours / rpact
==========================  ========  =========  ===========  ===========  ===========
means GSD, z (rpact dflt)   2.9 ms    0.5 ms     5.6          160 ms       0.018
means GSD, t statistic      21.2 ms   2.0 ms     10.5         155 ms (*)   0.14
survival GSD                396 ms    23.6 ms    16.8         2.42 s       0.16
==========================  ========  =========  ===========  ===========  ===========

(*) rpact with ``normalApproximation = FALSE`` (its stage-wise t approximation), against
our cumulative t path. About two thirds of the t path's time is ``scipy.special.stdtr``
+ ``ndtri`` mapping every t statistic to the z scale (kept because the z path is
returned). ``ours / rpact`` < 1 means ours is faster: about 55x (means, z), 7x (means,
t) and 6x (survival).

Where the survival time goes: per look one ``np.sort`` of an (R, N) int64
key array that carries the follow-up time with the arm and event flags packed in its two
lowest bits, plus ~10 elementwise passes; the look times themselves come from one sort of
the calendar event times (a SIMD sort beats ``np.partition`` here). Replicates are
processed in chunks of 2,048 rows (cache-friendly; results do not depend on the chunk).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, before numpy is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from trials import gsd  # noqa: E402

RATES = [0.3333333, 0.6666667, 1.0]
SUBJECTS = [119, 237, 356]
SURV = dict(hazard_ratio=0.7, lambda2=float(np.log(2) / 12), planned_events=[83, 167, 250],
            max_subjects=376, accrual_time=24.0)

R_SCRIPT = r"""
suppressMessages(library(rpact))
design <- getDesignGroupSequential(kMax = 3, alpha = 0.025, beta = 0.2, typeOfDesign = "asOF",
                                   informationRates = c(0.3333333, 0.6666667, 1))
el <- function(expr) system.time(expr)[["elapsed"]]
runs <- list(
  means = function() getSimulationMeans(design, alternative = 0.3, stDev = 1,
    plannedSubjects = c(119, 237, 356), maxNumberOfIterations = R_ITER, seed = 12345),
  means_t = function() getSimulationMeans(design, alternative = 0.3, stDev = 1,
    plannedSubjects = c(119, 237, 356), maxNumberOfIterations = R_ITER, seed = 12345,
    normalApproximation = FALSE),
  survival = function() getSimulationSurvival(design, hazardRatio = 0.7, lambda2 = log(2) / 12,
    directionUpper = FALSE, accrualTime = c(0, 24), plannedEvents = c(83, 167, 250),
    maxNumberOfSubjects = 376, maxNumberOfIterations = R_ITER, seed = 12345))
for (name in names(runs)) {
  invisible(runs[[name]]())  # warm-up
  for (i in seq_len(R_REPEATS)) cat(name, el(runs[[name]]()), "\n")
}
cat("version", as.character(packageVersion("rpact")), "\n")
"""


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _fmt(s: float) -> str:
    return f"{s * 1e3:8.1f} ms" if s < 1 else f"{s:8.2f} s "


def _rpact_timings(n_iter: int, repeats: int) -> tuple[dict[str, list[float]], str] | None:
    if shutil.which("Rscript") is None:
        print("rpact comparison skipped: Rscript not found (apt-get install r-cran-rpact)")
        return None
    probe = subprocess.run(["Rscript", "-e", "library(rpact)"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("rpact comparison skipped: R is present but library(rpact) fails")
        return None
    script = R_SCRIPT.replace("R_ITER", str(n_iter)).replace("R_REPEATS", str(repeats))
    res = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True)
    times: dict[str, list[float]] = {}
    version = "?"
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "version":
            version = parts[1]
        elif len(parts) == 2:
            times.setdefault(parts[0], []).append(float(parts[1]))
    return times, version


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicates", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-r", action="store_true", help="skip the rpact comparison")
    args = ap.parse_args()
    R, reps = args.replicates, args.repeats

    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cpu(s) visible, 1 thread")
    print(f"{R:,} replicates, {reps} repeats after one warm-up (min / median)\n")
    design = gsd.group_sequential_design(RATES, type_of_design="asOF")
    m = np.diff(np.concatenate([[0], SUBJECTS]))
    m2 = np.stack([np.ceil(m / 2), np.floor(m / 2)], axis=1)

    tasks = {
        "means": (lambda: gsd.simulate_means(design, alternative=0.3, planned_subjects=SUBJECTS, n_replicates=R,
                                             rng=np.random.default_rng(1)),
                  lambda: np.random.default_rng(1).standard_normal((R, 3, 2))),
        "means_t": (lambda: gsd.simulate_means(design, alternative=0.3, planned_subjects=SUBJECTS, n_replicates=R,
                                               rng=np.random.default_rng(1), statistic="t"),
                    lambda: (lambda g: (g.standard_normal((R, 3, 2)),
                                        g.standard_gamma((m2 - 1) / 2, size=(R, 3, 2))))(np.random.default_rng(1))),
        "survival": (lambda: gsd.simulate_survival(design, n_replicates=R, rng=np.random.default_rng(1), **SURV),
                     lambda: np.random.default_rng(1).standard_exponential((R, 376))),
    }
    ours = {}
    print(f"{'task':<12}{'ours min':>12}{'ours median':>14}{'floor min':>12}{'ours/floor':>12}")
    for name, (fn, floor) in tasks.items():
        t_ours = _time(fn, reps)
        t_floor = _time(floor, reps)
        ours[name] = t_ours
        print(f"{name:<12}{_fmt(min(t_ours)):>12}{_fmt(statistics.median(t_ours)):>14}"
              f"{_fmt(min(t_floor)):>12}{min(t_ours) / min(t_floor):>12.1f}")

    if args.no_r:
        print("\nrpact comparison skipped (--no-r)")
        return
    got = _rpact_timings(R, reps)
    if got is None:
        return
    rt, version = got
    print(f"\nrpact {version} in R, same run ({R:,} iterations, seed 12345; R start-up excluded)")
    print(f"{'task':<12}{'rpact min':>12}{'rpact median':>14}{'ours min':>12}{'ours/rpact':>12}")
    for name in tasks:
        if name not in rt:
            continue
        print(f"{name:<12}{_fmt(min(rt[name])):>12}{_fmt(statistics.median(rt[name])):>14}"
              f"{_fmt(min(ours[name])):>12}{min(ours[name]) / min(rt[name]):>12.3f}")


if __name__ == "__main__":
    main()
