"""Parameter recovery: fits to data simulated from known parameters cover the truth.

Each model is fitted once (module-scoped fixtures) to a few hundred simulated patients.
The truth is written on the data's own scale and mapped EXACTLY to the model's internal
scale (each `simulate_*` returns the truth as a function of the fitted generator): a
continuous covariate enters as z = (x - m) / s with the fitting sample's mean m and sd s,
so a raw-scale term B (x - c) is B s z + B (m - c); a normal outcome is standardised by
its own mean and sd; survival time is divided by the median observed time u, which for a
Weibull PH model adds k log u to the intercept.

Coverage criterion: |posterior mean - truth| < 3.5 posterior sd, i.e. the truth inside
a ~99.95% normal-approximation interval. With ~25 checked parameters a calibrated
posterior fails one of them with probability ~1%; the simulations are seeded, so the
outcome is reproducible. Every fit must also converge by the thresholds of
`validation.diagnostics`: max R-hat < 1.01, min bulk ESS >= 400, no divergences.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from conftest import with_sampler
from scipy import special

from insilico.validation.diagnostics import mcmc_diagnostics
from insilico.virtual_patients.fitting import fit
from insilico.virtual_patients.generator import Generator
from insilico.virtual_patients.spec import GeneratorSpec

pytestmark = pytest.mark.slow

Z_MAX = 3.5  # two-sided normal tail 4.7e-4: the truth lies inside a ~99.95% interval
FITS = ["normal_fit", "weibull_fit", "bernoulli_fit", "count_fit"]


def z_scores(gen: Generator, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(posterior mean - truth) / posterior sd, elementwise, for each named parameter."""
    out = {}
    for name, value in truth.items():
        d = gen.params[name]
        assert d.shape[1:] == np.shape(value), name
        out[name] = (d.mean(axis=0) - value) / d.std(axis=0, ddof=1)
    return out


def assert_covers(gen: Generator, truth: dict[str, np.ndarray]) -> None:
    z = z_scores(gen, truth)
    report = {k: np.round(v, 2).tolist() for k, v in z.items()}
    print(f"\nz-scores: {report}")  # shown with -s: the measured recovery
    assert all(np.all(np.abs(v) < Z_MAX) for v in z.values()), report


def fitted_scale(df: pd.DataFrame, col: str) -> tuple[float, float]:
    """Mean and sd (ddof 1) that the encoders learn from the fitting data."""
    x = df[col].to_numpy(dtype=float)
    return float(x.mean()), float(x.std(ddof=1))


# ---------------------------------------------------------------------- simulations
def simulate_normal() -> tuple[pd.DataFrame, GeneratorSpec, Callable]:
    """Continuous x1 -> binary x2 | x1 -> 3-level x3 | x1, x2 -> normal y | all."""
    rng = np.random.default_rng(1)
    n = 400
    x1 = rng.normal(50.0, 10.0, n)
    a2, b2 = -0.5, 0.08  # logit P(x2 = 1) = a2 + b2 (x1 - 50)
    x2 = (rng.random(n) < special.expit(a2 + b2 * (x1 - 50))).astype(int)
    a3, b3, c3 = np.array([0.3, -0.4]), np.array([0.05, -0.06]), np.array([0.8, 1.0])  # levels L1, L2 vs L0
    eta3 = a3 + np.outer(x1 - 50, b3) + np.outer(x2, c3)
    p3 = special.softmax(np.column_stack([np.zeros(n), eta3]), axis=1)
    x3 = (rng.random(n)[:, None] > p3.cumsum(axis=1)[:, :-1]).sum(axis=1)
    c0, b_y, sigma = 10.0, np.array([0.3, 2.0, 1.5, -2.5]), 3.0  # y = c0 + b_y . (x1 - 50, x2, 1[L1], 1[L2]) + e
    y = c0 + b_y[0] * (x1 - 50) + b_y[1] * x2 + b_y[2] * (x3 == 1) + b_y[3] * (x3 == 2) + rng.normal(0, sigma, n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "x3": np.array(["L0", "L1", "L2"])[x3], "y": y})
    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "x1", "type": "continuous"}, {"name": "x2", "type": "binary", "levels": [0, 1]},
                       {"name": "x3", "type": "categorical", "levels": ["L0", "L1", "L2"]}],
        "outcome": {"family": "normal", "column": "y"},
    })
    m1, s1 = fitted_scale(df, "x1")
    ym, ys = fitted_scale(df, "y")
    return df, spec, lambda gen: {
        "mu": (c0 + b_y[0] * (m1 - 50) - ym) / ys,
        "beta": np.array([b_y[0] * s1, *b_y[1:]]) / ys,
        "sigma": sigma / ys,
        "cov_x2_intercept": a2 + b2 * (m1 - 50),
        "cov_x2_coef": np.array([b2 * s1]),  # the binary covariate's logistic coefficient on x1
        "cov_x3_intercept": a3 + b3 * (m1 - 50),
        "cov_x3_coef": np.vstack([b3 * s1, c3]),  # rows: predictors x1, x2; columns: levels L1, L2
    }


def simulate_weibull() -> tuple[pd.DataFrame, GeneratorSpec, Callable]:
    """Weibull PH times (days) with ~45% random censoring, continuous and binary covariates."""
    rng = np.random.default_rng(2)
    n = 400
    x1, x2 = rng.normal(60.0, 8.0, n), (rng.random(n) < 0.5).astype(int)
    k, b = 1.4, np.array([0.04, -0.7])
    c0 = np.log(np.log(2)) - k * np.log(500.0)  # baseline median 500 days
    eta = c0 + b[0] * (x1 - 60) + b[1] * x2  # H(t) = t^k e^eta
    t_event = (rng.standard_exponential(n) * np.exp(-eta)) ** (1 / k)
    t_censor = rng.uniform(200.0, 1500.0, n)  # independent censoring: ignorable in the likelihood
    df = pd.DataFrame({"x1": x1, "x2": x2, "t": np.minimum(t_event, t_censor),
                       "e": (t_event <= t_censor).astype(int)})
    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "x1", "type": "continuous"}, {"name": "x2", "type": "binary", "levels": [0, 1]}],
        "outcome": {"family": "weibull", "time": "t", "event": "e"},
    })
    m1, s1 = fitted_scale(df, "x1")

    def truth(gen: Generator) -> dict:
        u = gen.meta["outcome_scale"]["time_unit"]
        assert u == pytest.approx(df["t"].median())
        # (u t')^k e^eta = t'^k e^(eta + k log u) on the internal time scale t' = t / u
        return {"shape": k, "beta": np.array([b[0] * s1, b[1]]), "mu": c0 + b[0] * (m1 - 60) + k * np.log(u)}

    return df, spec, truth


def simulate_bernoulli() -> tuple[pd.DataFrame, GeneratorSpec, Callable]:
    """Bernoulli outcome in 8 studies of 60 with between-study sd tau = 0.5 (logit scale)."""
    rng = np.random.default_rng(3)
    n_studies, per = 8, 60
    mu0, tau, b = -0.3, 0.5, 0.4
    alpha = mu0 + tau * rng.standard_normal(n_studies)
    study = np.repeat(np.arange(n_studies), per)
    x1 = rng.normal(5.0, 2.0, n_studies * per)
    r = (rng.random(len(x1)) < special.expit(alpha[study] + b * (x1 - 5))).astype(int)
    df = pd.DataFrame({"site": [f"s{i}" for i in study], "x1": x1, "r": r})
    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "x1", "type": "continuous"}],
        "outcome": {"family": "bernoulli", "column": "r"},
        "study": "site",
    })
    m1, s1 = fitted_scale(df, "x1")
    return df, spec, lambda gen: {"mu": mu0 + b * (m1 - 5), "beta": np.array([b * s1]), "tau": tau}


def simulate_count() -> tuple[pd.DataFrame, GeneratorSpec, Callable]:
    """Negative-binomial count k | x1 (mean 3 at x1 = 20, dispersion phi = 2), normal y | x1, k."""
    rng = np.random.default_rng(4)
    n = 400
    x1 = rng.normal(20.0, 5.0, n)
    a, b, phi = np.log(3.0), 0.06, 2.0  # log E k = a + b (x1 - 20)
    k = rng.poisson(rng.gamma(phi, np.exp(a + b * (x1 - 20)) / phi))  # gamma-Poisson = NB(mean, phi)
    y = 1.0 + 0.5 * np.log1p(k) + rng.normal(0.0, 1.0, n)
    df = pd.DataFrame({"x1": x1, "k": k, "y": y})
    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "x1", "type": "continuous"}, {"name": "k", "type": "count"}],
        "outcome": {"family": "normal", "column": "y"},
    })
    m1, s1 = fitted_scale(df, "x1")
    # the count is modelled on its raw scale: only its predictor x1 is standardised
    return df, spec, lambda gen: {"cov_k_intercept": a + b * (m1 - 20), "cov_k_coef": np.array([b * s1]),
                                  "cov_k_phi": phi}


# ---------------------------------------------------------------------- fits
# Draws/tune per chain, 2 chains. R-hat from 2 chains is noisy: at 500/500 the max R-hat of
# these fits reached 1.0098-1.011 on some of 4 seeds; at 1000/1000 it stayed <= 1.0073 on 5.
SAMPLER = {"draws": 1000, "tune": 1000}
# mu of the study hierarchy mixes slowly through its trade-off with tau * study_z: 500
# draws per chain give bulk ESS ~190 and R-hat ~1.015 for mu; 2000 give ESS > 750
HIERARCHICAL_SAMPLER = {"draws": 2000, "tune": 1000}


def fit_simulation(simulate: Callable, seed: int, sampler: dict) -> tuple[Generator, dict]:
    df, spec, truth = simulate()
    gen = fit(df, with_sampler(spec, **sampler), seed=seed, progress=False)
    return gen, truth(gen)


@pytest.fixture(scope="module")
def normal_fit():
    return fit_simulation(simulate_normal, 1, SAMPLER)


@pytest.fixture(scope="module")
def weibull_fit():
    return fit_simulation(simulate_weibull, 2, SAMPLER)


@pytest.fixture(scope="module")
def bernoulli_fit():
    return fit_simulation(simulate_bernoulli, 3, HIERARCHICAL_SAMPLER)


@pytest.fixture(scope="module")
def count_fit():
    return fit_simulation(simulate_count, 4, SAMPLER)


# ---------------------------------------------------------------------- tests
def test_normal_outcome_and_covariate_models_cover_the_truth(normal_fit):
    assert_covers(*normal_fit)


def test_weibull_shape_and_log_hazard_ratios_cover_the_truth(weibull_fit):
    assert_covers(*weibull_fit)


def test_bernoulli_hierarchy_covers_mu_beta_and_tau(bernoulli_fit):
    gen, truth = bernoulli_fit
    assert_covers(gen, {k: truth[k] for k in ("mu", "beta")})
    # tau from 8 studies is weakly identified and right-skewed (half-normal prior at 0):
    # only ask for the truth inside the central 99% posterior interval
    lo, hi = np.quantile(gen.params["tau"], [0.005, 0.995])
    print(f"\ntau 99% interval [{lo:.3f}, {hi:.3f}], truth {truth['tau']}")
    assert lo < truth["tau"] < hi


def test_negative_binomial_count_covariate_covers_the_truth(count_fit):
    assert_covers(*count_fit)


@pytest.mark.parametrize("fixture", FITS)
def test_fits_converged(fixture, request):
    """max R-hat < 1.01 and bulk ESS >= 400 over every parameter, no divergences."""
    gen, _ = request.getfixturevalue(fixture)
    diag = mcmc_diagnostics(gen.posterior)
    print(f"\n{fixture}: {diag}")
    assert diag["max_rhat"] < 1.01, diag
    assert diag["min_ess_bulk"] >= 400, diag
    assert diag["divergences"] == 0, diag
