"""Run-to-run spread of checks computed on synthetic cohorts: what a re-run is held to when
its posterior draws differ from the package's (another platform, another library build).

Such a re-run draws other virtual patients, so a metric of the cohort (SMD, pMSE, KS, DCR,
exact copies, ...) moves by the difference of two independent evaluations. Its standard
deviation is estimated where it is cheap and exact to do so: the check is re-run with
``reruns`` fresh seeds on the same posterior and data, and the sample SD of the
``reruns + 1`` values is stated in the record (``detail["spread"]``). A metric that comes out
the same for every seed (computed from the posterior alone) gets no spread. The package's tolerance
for the metric is then 3 x sqrt(2) x that SD (`insilico.reports.tolerances`): sqrt(2) for
the difference of two independent runs, 3 for a 0.27 % false alarm per metric under
normality. With 5 values the SD itself is uncertain (its 90 % interval is 0.6-2.4 x the
true SD), which the verdict rule absorbs: verdicts must agree regardless.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .metrics import Metrics

RERUNS = 4
SEED_STEP = 7919  # a prime: re-run seeds never collide with the plan's other seed offsets


def with_spread(out: Metrics, rerun: Callable[[int, Path], Metrics], seed: int, reruns: int = RERUNS) -> Metrics:
    """``out`` with ``detail["spread"]`` on every metric with a value: the SD over ``reruns`` re-runs
    ``rerun(seed', scratch_folder)`` with fresh seeds and the original. Figures of the re-runs go
    to a scratch folder and are discarded."""
    seeds = [seed + SEED_STEP * (i + 1) for i in range(reruns)]
    values: dict[str, list[float]] = {k: [m["value"]] for k, m in out.items() if m.get("value") is not None}
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            again = rerun(s, Path(tmp))
            for k in values:
                v = (again.get(k) or {}).get("value")
                if v is not None:
                    values[k].append(float(v))
    for k, vs in values.items():
        if len(vs) < 3 or len(set(vs)) == 1:
            # too few defined values, or a metric the cohort's seed does not move (computed from the
            # posterior alone: c-index, calibration): its spread says nothing, other rules apply
            continue
        detail = dict(out[k].get("detail") or {})
        detail["spread"] = {"sd": float(np.std(vs, ddof=1)), "runs": len(vs), "seeds": [seed, *seeds],
                            "values": [round(v, 12) for v in vs]}
        out[k] = {**out[k], "detail": detail}
    return out
