"""Shared by the benchmarks: a simulated patient table and the spec that models it.

Ten covariates of mixed types (the issue's "~10 covariates"), 12 design columns:

    age        continuous, range [18, 100]
    female     binary 0/1
    bmi        continuous, log transform, range [12, 70]
    stage      categorical, 4 string levels I..IV (3 dummies)
    prior_tx   count (negative binomial)
    crp        continuous, quantile transform (skewed, 25 % zeros), range [0, 500]
    smoker     binary 0/1
    sbp        continuous, range [70, 240]
    egfr       continuous, log transform, range [5, 150]
    hba1c      continuous, unbounded

and a survival outcome (Weibull proportional hazards by default, ~25 % censored), plus
a patient id column as the bundled example specs have.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from insilico.virtual_patients.spec import GeneratorSpec  # noqa: E402

COVARIATES = [
    {"name": "age", "type": "continuous", "range": [18, 100]},
    {"name": "female", "type": "binary", "levels": [0, 1]},
    {"name": "bmi", "type": "continuous", "transform": "log", "range": [12, 70]},
    {"name": "stage", "type": "categorical", "levels": ["I", "II", "III", "IV"]},
    {"name": "prior_tx", "type": "count"},
    {"name": "crp", "type": "continuous", "transform": "quantile", "range": [0, 500]},
    {"name": "smoker", "type": "binary", "levels": [0, 1]},
    {"name": "sbp", "type": "continuous", "range": [70, 240]},
    {"name": "egfr", "type": "continuous", "transform": "log", "range": [5, 150]},
    {"name": "hba1c", "type": "continuous"},
]
N_COVARIATES = len(COVARIATES)


def make_spec(family: str = "weibull", draws: int = 1000, tune: int = 1000, chains: int = 4,
              with_id: bool = True) -> GeneratorSpec:
    outcome: dict = {"family": family, "time": "time", "event": "event"}
    if family == "piecewise_exponential":
        outcome["intervals"] = 6
    data = {"covariates": COVARIATES, "outcome": outcome,
            "sampler": {"draws": draws, "tune": tune, "chains": chains}}
    if with_id:
        data["id"] = "pid"
    return GeneratorSpec.from_dict(data, source="benchmarks/_common.py")


def simulate(n: int = 1000, seed: int = 20261123) -> pd.DataFrame:
    """n patients with realistic dependence between covariates and a Weibull PH outcome."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(62, 11, n), 18, 100).round()
    female = (rng.random(n) < 0.45).astype(np.int64)
    bmi = np.clip(np.exp(rng.normal(np.log(27) + 0.003 * (age - 62) - 0.03 * female, 0.16, n)), 12, 70)
    stage_lin = 0.02 * (age - 62)
    stage_p = np.array([0.25, 0.35, 0.25, 0.15])
    u = rng.random(n)
    cut = np.cumsum(stage_p)[None, :-1] - 0.1 * np.tanh(stage_lin)[:, None]
    stage_code = (u[:, None] > cut).sum(axis=1)
    stage = np.array(["I", "II", "III", "IV"], dtype=object)[stage_code]
    mu_tx = np.exp(0.2 + 0.35 * stage_code)
    prior_tx = rng.poisson(rng.gamma(3.0, mu_tx / 3.0))
    crp = np.where(rng.random(n) < 0.25, 0.0,
                   np.clip(np.exp(rng.normal(1.2 + 0.25 * stage_code + 0.02 * (bmi - 27), 1.0, n)), 0, 500))
    crp = crp.round(1)
    smoker = (rng.random(n) < 1 / (1 + np.exp(-(-1.2 + 0.4 * (1 - female))))).astype(np.int64)
    sbp = np.clip(rng.normal(128 + 0.4 * (age - 62) + 0.8 * (bmi - 27), 14, n), 70, 240).round()
    egfr = np.clip(np.exp(rng.normal(np.log(80) - 0.01 * (age - 62), 0.22, n)), 5, 150)
    hba1c = rng.normal(5.8 + 0.04 * (bmi - 27), 0.7, n)
    # Weibull PH: H(t) = (t / scale)^k exp(eta)
    eta = (0.025 * (age - 62) + 0.55 * stage_code + 0.15 * prior_tx + 0.15 * np.log1p(crp)
           + 0.3 * smoker - 0.006 * (egfr - 80) - 0.2 * female)
    eta -= eta.mean()
    k, scale = 1.3, 36.0
    t = scale * (rng.standard_exponential(n) * np.exp(-eta)) ** (1 / k)
    c = np.minimum(60.0, rng.exponential(200.0, n))
    time_obs = np.maximum(np.minimum(t, c), 0.1).round(2)
    event = (t <= c).astype(np.int64)
    return pd.DataFrame({
        "pid": [f"P{i:05d}" for i in range(n)], "age": age, "female": female, "bmi": bmi.round(1),
        "stage": stage, "prior_tx": prior_tx, "crp": crp, "smoker": smoker, "sbp": sbp,
        "egfr": egfr.round(1), "hba1c": hba1c.round(2), "time": time_obs, "event": event,
    })


def cache_dir(override: str | None = None) -> Path:
    """Where fitted generators are cached (outside the repository)."""
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "insilico-benchmarks"


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M/s"
