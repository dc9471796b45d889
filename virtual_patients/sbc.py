"""Simulation-based calibration of a generator spec on (a subsample of) its data.

Builds the generator's PyMC model exactly as `generator.fit` does, but with every
observed value in a pm.Data container (`model.build_model(data_containers=True)`), and
pairs it with its prior-predictive simulator. The design matrix D of the subsample is
held fixed: the model treats D as known predictors, so SBC checks p(theta | data, D).
The SBC loop itself is `insilico.validation.sbc`; `insilico.checks.sbc.sbc_for_spec`
joins the two.

Covariates and normal/bernoulli/poisson outcomes are simulated by PyMC's forward graph
of the same model; survival outcomes (a Potential in the model) by the generator's own
numpy kernels (`kernels.outcome_from_noise`, censored as virtual patients are by
`kernels.censor`), so for them SBC also checks that the likelihood in `model.py` and the
simulator in `kernels.py` describe the same distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from insilico.common.errors import InputError

from . import kernels
from .fitting import drop_missing, model_inputs, select_rows
from .model import OutcomeData, build_model, outcome_data_values, prior_predictive
from .spec import GeneratorSpec

DEFAULT_MAX_OBS = 200


@dataclass(frozen=True)
class SpecSBCProblem:
    """The refit model of a spec on n_obs patients and its simulator rng -> (theta, data)."""

    model: object
    simulate: Callable
    n_obs: int
    rows: np.ndarray  # positions of the subsampled patients in the complete-case data


def sbc_problem(spec: GeneratorSpec, data: pd.DataFrame, *, n_obs: int | None = None,
                seed: int = 0) -> SpecSBCProblem:
    """The spec's model on a seeded subsample of n_obs complete patients (default
    min(n, 200)), with data containers, and its prior-predictive simulator."""
    absent = [c for c in spec.columns if c not in data.columns]
    if absent:
        raise InputError(f"the data lack the spec's columns {absent}")
    df, _ = drop_missing(select_rows(data, spec), spec)
    n = len(df)
    n_obs = min(n, DEFAULT_MAX_OBS) if n_obs is None else n_obs
    if int(n_obs) != n_obs or not 10 <= n_obs <= n:
        raise ValueError(f"n_obs must be a whole number in [10, {n}] (complete patients), got {n_obs}")
    rows = np.sort(np.random.default_rng(np.random.SeedSequence([seed, 1])).choice(n, int(n_obs), replace=False))
    df = df.iloc[rows].reset_index(drop=True)
    m = model_inputs(df, spec)
    model = build_model(m.D, m.covariates, m.encoders, m.outcome, m.codes, len(m.studies), spec,
                        data_containers=True)
    simulate = prior_predictive(model)
    if spec.outcome.survival:
        simulate = _with_survival(simulate, m.outcome, m.scale, m.D, m.codes, len(m.studies) >= 2)
    return SpecSBCProblem(model, simulate, int(n_obs), rows)


def _with_survival(simulate: Callable, outcome: OutcomeData, scale: dict, D: np.ndarray, codes: np.ndarray,
                   hierarchical: bool) -> Callable:
    """Add censored survival times drawn by the generator's kernels to a simulator."""
    admin = scale["administrative"] / scale["time_unit"]
    dropout = scale["dropout_rate"] * scale["time_unit"]  # per internal time unit
    tiny = np.finfo(float).tiny

    def simulate_survival(rng: np.random.Generator):
        theta, data = simulate(rng)
        alpha = theta["mu"] + theta["tau"] * theta["study_z"][codes] if hierarchical else theta["mu"]
        eta = alpha + D @ theta["beta"]
        t = kernels.outcome_from_noise(outcome.family, eta, kernels.outcome_noise(outcome.family, len(eta), rng),
                                       theta, outcome.cuts)
        t, event = kernels.censor(np.maximum(t, tiny), admin, dropout, rng)  # t > 0: log t enters the likelihood
        sim = OutcomeData(outcome.family, t, event, outcome.cuts)
        data.update({f"{k}_data": v for k, v in outcome_data_values(sim).items()})
        return theta, data

    return simulate_survival


__all__ = ["SpecSBCProblem", "sbc_problem"]
