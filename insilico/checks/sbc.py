"""Simulation-based calibration of a generator spec: its model (virtual_patients) run
through the SBC loop (validation)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from insilico.progress import progress_bar
from insilico.reports.figures import rank_histograms
from insilico.validation.sbc import SBC, SBCResult
from insilico.virtual_patients.sbc import sbc_problem
from insilico.virtual_patients.spec import GeneratorSpec

from .metrics import Metrics, metric

logger = logging.getLogger(__name__)


def sbc_for_spec(
    spec: GeneratorSpec,
    data: pd.DataFrame,
    *,
    replicates: int = 100,
    n_obs: int | None = None,
    seed: int = 0,
    draws: int = 250,
    tune: int = 250,
    chains: int = 2,
    L: int = 99,
    bins: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SBCResult:
    """SBC of the spec's generator model on n_obs of its patients.

    Short chains (chains x draws, thinned to L) keep a refit of a small model well under
    a second; the sampler's target acceptance is the spec's.
    """
    problem = sbc_problem(spec, data, n_obs=n_obs, seed=seed)
    result = SBC(problem.model, problem.simulate).run(
        replicates, seed=seed, draws=draws, tune=tune, chains=chains, L=L, bins=bins,
        target_accept=spec.sampler.target_accept, progress=progress,
    )
    return replace(result, settings={**result.settings, "n_obs": problem.n_obs, "spec_hash": spec.hash()})


def check_sbc(spec: GeneratorSpec, train: pd.DataFrame, plan, figures: Path, *, progress: bool = False) -> Metrics:
    """Simulation-based calibration of the generator's model on a subsample of the training rows."""
    v = plan.verification
    logger.info("simulation-based calibration: %d replicates on %d patients", v.sbc_replicates, v.sbc_observations)
    with progress_bar("SBC refits", v.sbc_replicates, enabled=progress) as tick:
        res = sbc_for_spec(spec, train, replicates=v.sbc_replicates, n_obs=v.sbc_observations, seed=plan.seed,
                           progress=tick)
    png = rank_histograms(res.ranks, res.L, res.bins, figures / "sbc_ranks.png")
    return {"sbc_min_p_bonferroni": metric("simulation_based_calibration", res.bonferroni_p, artifact=png,
                                           detail=res.summary())}
