"""PROCOVA with digital-twin scores from a fitted generator: the type I error stays at
its nominal level and the variance of the effect estimate falls by (1 - rho^2), rho the
correlation between prognostic score and outcome — the EMA-qualified claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import with_sampler

from insilico.trials.analyses import power_t_test
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics
from insilico.virtual_patients.fitting import fit
from insilico.virtual_patients.spec import GeneratorSpec

pytestmark = pytest.mark.slow


def _truth(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """The historical data-generating process: y = 1 + 0.8 x1 + 0.5 x2 + N(0, 0.6^2)."""
    x1 = rng.standard_normal(n)
    x2 = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x1))).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": 1 + 0.8 * x1 + 0.5 * x2 + 0.6 * rng.standard_normal(n)})


# the true outcome variance and rho^2 = 1 - residual / total variance, from 10^6 patients (se < 0.001)
TOTAL_VAR = float(_truth(1_000_000, np.random.default_rng(0))["y"].var())
RHO2 = 1 - 0.36 / TOTAL_VAR


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    """Historical controls with a strong prognostic signal; fitted once."""
    spec = with_sampler(GeneratorSpec.from_dict({
        "covariates": [{"name": "x1", "type": "continuous"}, {"name": "x2", "type": "binary", "levels": [0, 1]}],
        "outcome": {"family": "normal", "column": "y"}}))
    gen = fit(_truth(1500, np.random.default_rng(11)), spec, seed=2, progress=False)
    return str(gen.save(tmp_path_factory.mktemp("gen") / "generator"))


@pytest.fixture(scope="module")
def results(generator_dir):
    design = TrialDesign.from_dict({
        "seed": 7, "replicates": 4000, "chunk_size": 500,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "patients": {"generator": generator_dir},
        "sample_size": {"total": 100},
        "scenarios": [{"name": "null", "effect": 0.0}, {"name": "target", "effect": 0.3}],
        "analyses": [{"name": "unadjusted", "method": "difference_in_means"},
                     {"name": "procova", "method": "procova"},
                     {"name": "ancova", "method": "ancova", "covariates": ["x1", "x2"]}],
    })
    res = run(design, executor="serial")
    return res, operating_characteristics(res)


def test_type_one_error_stays_nominal(results):
    _, oc = results
    for a in ("unadjusted", "procova", "ancova"):
        rate = float(oc.rejection_rate.sel(scenario="null", analysis=a))
        assert abs(rate - 0.025) <= 3 * np.sqrt(0.025 * 0.975 / 4000), (a, rate)


def test_unbiased_with_nominal_coverage(results):
    _, oc = results
    for a in ("unadjusted", "procova"):
        cell = oc.sel(scenario="target", analysis=a)
        assert abs(float(cell.bias)) <= 3 * float(cell.bias_mcse)
        assert abs(float(cell.coverage) - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / 4000)


def test_variance_falls_by_one_minus_rho_squared(results):
    """Var(procova) / Var(unadjusted) ~ 1 - rho^2 = 0.34. With 4,000 replicates the ratio of
    two sample variances has a relative standard error of about sqrt(2 * 2 / 4000) = 3%,
    and the generator's posterior rho differs from the simulation truth by a little more:
    a 0.04 absolute tolerance is ~3.5 such errors."""
    res, _ = results
    est = res.estimate.sel(scenario="target")
    ratio = float(est.sel(analysis="procova").var() / est.sel(analysis="unadjusted").var())
    assert abs(ratio - (1 - RHO2)) < 0.04, ratio
    # ANCOVA on the raw covariates is the same linear predictor: same efficiency
    ratio_ancova = float(est.sel(analysis="ancova").var() / est.sel(analysis="unadjusted").var())
    assert abs(ratio_ancova - ratio) < 0.02


def test_power_gain_matches_noncentral_t(results):
    """Unadjusted and PROCOVA power against the noncentral-t closed forms with outcome sd
    sqrt(total variance) and sqrt((1 - rho^2) total variance), within 3 MCSE plus 0.01 for
    the posterior's spread of sd and rho across replicates."""
    _, oc = results
    sd = np.sqrt(TOTAL_VAR)
    for a, s in (("unadjusted", sd), ("procova", sd * np.sqrt(1 - RHO2))):
        exact = power_t_test(0.3, s, 50, 50, 0.025)
        cell = oc.sel(scenario="target", analysis=a)
        assert abs(float(cell.rejection_rate) - exact) <= 3 * np.sqrt(exact * (1 - exact) / 4000) + 0.01, (a, exact)


def test_hybrid_with_generator_external_controls(generator_dir):
    """External controls drawn from the generator's (historical) population, propensity-
    weighted on the twins' covariates: no drift keeps the type I error at or below its
    nominal level (a0 < 1 discounts), drift of +0.3 outcome units inflates it."""
    design = TrialDesign.from_dict({
        "seed": 9, "replicates": 2000, "chunk_size": 500,
        "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
        "patients": {"generator": generator_dir}, "sample_size": {"total": 100},
        "external_control": {"n": 150, "source": "generator"},
        "scenarios": [{"name": "null", "effect": 0.0}, {"name": "drift", "effect": 0.0, "control_shift": 0.3}],
        "analyses": [{"name": "hybrid", "method": "hybrid_power_prior", "a0": 0.5}],
    })
    res = run(design, executor="serial")
    oc = operating_characteristics(res).sel(analysis="hybrid")
    assert float(oc.rejection_rate.sel(scenario="null")) <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / 2000)
    assert float(oc.rejection_rate.sel(scenario="drift")) > 0.05
    assert float(res.prior_ess.mean()) == pytest.approx(75.0)  # a0 x sum of weights normalised to n_ext
