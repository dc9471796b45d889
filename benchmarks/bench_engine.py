#!/usr/bin/env python
"""Benchmark: the whole simulation engine (design -> chunks -> analyses -> results) on the
rpact reference designs, against rpact and a NumPy floor timed in the same run, and its
parallel efficiency from 1 to 2 Dask workers.

1. Serial engine, one core, 10,000 replicates of the group-sequential means design
   (looks at 119/237/356 patients, asOF, effect 0.3, pooled t test) and survival design
   (HR 0.7, 376 patients entering at 24 i / 376 months as rpact's do, alternating arms,
   log-rank looks at 83/167/250 events); best of ``--repeats``. The survival design is
   also timed with random (sorted uniform) entry, the engine's default, for information.
2. NumPy floor: the same computation written plainly in vectorised NumPy for these two
   designs only (`means_floor`, `survival_floor`: the draws, each look's statistic, the
   boundaries, the stopping look; no design parsing, chunks, seeds per chunk or results
   Dataset). ours / floor says what the engine's generality costs.
3. rpact (if ``Rscript -e 'library(rpact)'`` works): the same designs with
   getSimulationMeans(normalApproximation = FALSE: the t test) / getSimulationSurvival,
   10,000 iterations, timed inside one R process (start-up excluded).
   Also a multi-arm design (3 treatment arms + control, looks at 34/67/100 patients per
   arm) against rpact's getSimulationMultiArmMeans with the same arms, looks, effects and
   Bonferroni intersection tests (rpact combines stages by the inverse-normal method and
   closed testing; ours tests each arm with Bonferroni-adjusted group-sequential t tests:
   the same workload, not the same procedure).
4. Parallel efficiency: the shipped survival study (examples/design_survival.yaml: 10,000
   replicates of a null and a target scenario, log-rank and Cox) on the engine's own local
   Dask cluster (`trials.engine.make_client`) with 1 and then 2 single-threaded worker processes:
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

from insilico.trials.design import TrialDesign  # noqa: E402
from insilico.trials.engine import make_client, run  # noqa: E402

RATES = [1 / 3, 2 / 3, 1.0]
# the shipped survival study: 10,000 replicates of a null and a target scenario, log-rank and Cox
EXAMPLE_STUDY = Path(__file__).resolve().parents[1] / "examples" / "design_survival.yaml"
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
                                       normalApproximation = FALSE, maxNumberOfIterations = 10000, seed = 12345))
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


def means_floor(rng: np.random.Generator, boundaries, R: int = 10_000, stages=(119, 237, 356),
                effect: float = 0.3) -> tuple[float, np.ndarray]:
    """The means design in plain NumPy: per arm and stage a sufficient-statistic draw (stage
    mean, within-stage sum of squares), cumulative pooled t per look, the z boundaries
    carried to the t scale, the stopping look, the p-value there; returns the power and
    those p-values."""
    from scipy import special

    n = np.diff(np.concatenate([[0], stages]))
    m = np.stack([n // 2, n - n // 2])  # (arm, stage) patients
    means = effect * np.arange(2)[:, None, None] + rng.standard_normal((2, 3, R)) / np.sqrt(m)[:, :, None]
    ss = rng.chisquare(m[:, :, None] - 1, (2, 3, R))
    cum_n = np.cumsum(m, axis=1)[:, :, None]
    cum_mean = np.cumsum(means * m[:, :, None], axis=1) / cum_n
    # within-arm sum of squares of the cumulative data: stage sums plus between-stage spread
    cum_ss = np.cumsum(ss + m[:, :, None] * means**2, axis=1) - cum_n * cum_mean**2
    df = cum_n.sum(axis=0)[:, 0] - 2
    se = np.sqrt(cum_ss.sum(axis=0) / df[:, None] * (1 / cum_n[0] + 1 / cum_n[1]))
    t = (cum_mean[1] - cum_mean[0]) / se  # (look, replicate)
    bound = -special.stdtrit(df, special.ndtr(-np.asarray(boundaries)))
    crossed = t >= bound[:, None]
    stop = np.where(crossed.any(axis=0), crossed.argmax(axis=0), 2)
    p = special.stdtr(df[stop], -t[stop, np.arange(R)])
    return float(crossed.any(axis=0).mean()), p


def survival_floor(rng: np.random.Generator, boundaries, R: int = 10_000, N: int = 376, events=(83, 167, 250),
                   hr: float = 0.7) -> float:
    """The survival design in plain NumPy: rpact's regular entry and alternating arms,
    exponential event times, each look at the calendar time of its d-th event (one sort),
    then per look one sort of the follow-up times with the arm and event flags in their
    two lowest bits and the log-rank sums from a cumulative count; returns the power."""
    entry = np.arange(1, N + 1) * (24.0 / N)
    arm = np.arange(N) % 2  # control first, then alternate (the engine's 1:1 order)
    t = rng.standard_exponential((R, N)) / (np.log(2) / 12 * np.where(arm == 1, hr, 1.0))
    calendar = np.sort(entry + t, axis=1)
    z = np.empty((3, R))
    for k, d in enumerate(events):
        cut = calendar[:, d - 1][:, None]
        follow = np.clip(np.minimum(t, cut - entry), 0.0, None)
        event = (entry + t <= cut).astype(np.int64)
        key = (follow.view(np.int64) & ~np.int64(3)) | event | (arm << 1)
        key.sort(axis=1)
        trt, ev = (key >> 1) & 1, (key & 1).astype(float)
        f = np.cumsum(trt[:, ::-1], axis=1)[:, ::-1] / (N - np.arange(N))  # treated share of each risk set
        U = (ev * (f - trt)).sum(axis=1)  # expected minus observed treated events: benefit > 0
        z[k] = U / np.sqrt((ev * f * (1 - f)).sum(axis=1))
    crossed = z >= np.asarray(boundaries)[:, None]
    return float(crossed.any(axis=0).mean())


def floors(repeats: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    bounds = TrialDesign.from_dict(MEANS).boundaries().critical_values  # the same asOF bounds as the engine's
    return best(lambda: means_floor(rng, bounds), repeats), best(lambda: survival_floor(rng, bounds), repeats)


def rpact(repeats: int) -> tuple[float, float, float] | None:
    if shutil.which("Rscript") is None:
        return None
    probe = subprocess.run(["Rscript", "-e", "library(rpact)"], capture_output=True)
    if probe.returncode != 0:
        return None
    out = subprocess.run(["Rscript", "-e", R_SCRIPT.replace("REPEATS", str(repeats))], capture_output=True,
                         text=True, check=True)
    return tuple(map(float, out.stdout.split()))


def _warm_worker() -> None:
    """Import the engine and run one small chunk: loads the compiled (numba) kernels."""
    from insilico.trials.engine import simulate_chunk

    simulate_chunk(TrialDesign.from_yaml(EXAMPLE_STUDY).model_copy(update={"replicates": 100}).model_dump_json(), 0, 0)


def parallel_efficiency(repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` runs with 1 and with 2 workers (single runs on a shared 2-core
    machine scatter by +-30 %)."""
    design = TrialDesign.from_yaml(EXAMPLE_STUDY)
    times = []
    for workers in (1, 2):
        with make_client(workers) as client:  # the engine's own local cluster
            client.run(_warm_worker)  # on every worker, before the clock starts
            address = client.scheduler.address
            times.append(best(lambda: run(design, scheduler=address), repeats))
            client.cluster.close()
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
    random_entry = TrialDesign.from_dict({**SURV, "endpoint": {**SURV["endpoint"], "entry": "random"}})
    t_surv_random = best(lambda: run(random_entry, executor="serial"), args.repeats)
    multi = TrialDesign.from_dict(MULTI)
    t_multi = best(lambda: run(multi, executor="serial"), args.repeats)
    f_means, f_surv = floors(args.repeats)
    print(f"engine, one core, 10,000 replicates (best of {args.repeats})")
    print(f"  means GSD     ours {t_means:7.3f} s   NumPy floor {f_means:6.3f} s   ours/floor {t_means / f_means:5.2f}")
    print(f"  survival GSD  ours {t_surv:7.3f} s   NumPy floor {f_surv:6.3f} s   ours/floor {t_surv / f_surv:5.2f}")
    print(f"  survival GSD with random entry (the engine's default): ours {t_surv_random:.3f} s")
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
        t1, t2 = parallel_efficiency(args.repeats)
        print(f"parallel efficiency, shipped survival study (10,000 replicates x 2 scenarios, log-rank + Cox): 1 worker {t1:.2f} s, 2 workers {t2:.2f} s, "
              f"efficiency {t1 / (2 * t2):.0%}")


if __name__ == "__main__":
    main()
