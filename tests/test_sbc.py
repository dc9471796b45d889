"""Simulation-based calibration: the rank kernels against hand counts and scipy, and SBC
of a small generator spec that must pass when inference is right and fail when it is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from insilico.checks.sbc import sbc_for_spec
from insilico.validation.sbc import (
    SBC,
    bin_counts,
    default_bins,
    rank_statistics,
    rank_uniformity,
    thin_indices,
)
from insilico.virtual_patients.sbc import sbc_problem
from insilico.virtual_patients.spec import GeneratorSpec


# ---------------------------------------------------------------------- kernels
def test_rank_statistics_counts_draws_below_theta():
    theta = np.array([0.5, 2.0, -1.0])
    draws = np.array([[0.1, 3.0, 0.0], [0.7, 1.0, 0.0], [0.3, 2.5, 0.0]])
    # by hand: 0.1, 0.3 < 0.5; 1.0 < 2.0; nothing < -1
    assert rank_statistics(theta, draws, np.random.default_rng(0)).tolist() == [2, 1, 0]


def test_rank_statistics_splits_ties_uniformly():
    # theta = 1 ties with 3 of 4 draws and exceeds one: rank uniform on {1, 2, 3, 4}
    draws = np.array([[1.0], [1.0], [1.0], [0.0]])
    rng = np.random.default_rng(1)
    r = np.array([rank_statistics(np.array([1.0]), draws, rng)[0] for _ in range(4000)])
    assert set(r) == {1, 2, 3, 4}
    # mean 2.5, sd of the mean sqrt(1.25 / 4000) = 0.018: 0.08 is 4.5 sd
    assert r.mean() == pytest.approx(2.5, abs=0.08)


def test_chi_square_matches_scipy_equal_bins():
    # L = 9 -> ranks 0..9, 5 bins of 2 ranks each: {0,1} {2,3} {4,5} {6,7} {8,9}
    ranks = np.array([0, 1, 1, 2, 3, 5, 5, 5, 9, 9, 8, 7, 0, 0, 4])
    observed, prob = bin_counts(ranks, L=9, bins=5)
    assert observed[:, 0].tolist() == [5, 2, 4, 1, 3]  # counted by hand
    assert prob.tolist() == [0.2] * 5
    chi2, p = rank_uniformity(ranks, L=9, bins=5)
    ref = stats.chisquare([5, 2, 4, 1, 3])
    assert chi2[0] == pytest.approx(ref.statistic, rel=1e-12)
    assert p[0] == pytest.approx(ref.pvalue, rel=1e-12)
    assert chi2[0] == pytest.approx((4 + 1 + 1 + 4 + 0) / 3, rel=1e-12)  # E = 15 / 5 = 3


def test_chi_square_matches_scipy_unequal_bins():
    # L = 10 -> 11 ranks in 4 bins: floor(r * 4 / 11) puts {0,1,2} {3,4,5} {6,7,8} {9,10}
    ranks = np.array([[0, 10], [2, 9], [3, 9], [4, 0], [6, 1], [7, 5], [8, 6], [9, 3], [10, 10], [1, 2], [5, 4]])
    observed, prob = bin_counts(ranks, L=10, bins=4)
    assert observed[:, 0].tolist() == [3, 3, 3, 2]
    assert observed[:, 1].tolist() == [3, 3, 1, 4]
    np.testing.assert_allclose(prob, np.array([3, 3, 3, 2]) / 11, rtol=1e-15)
    chi2, p = rank_uniformity(ranks, L=10, bins=4)
    for k in range(2):
        ref = stats.chisquare(observed[:, k], f_exp=11 * prob)
        assert chi2[k] == pytest.approx(ref.statistic, rel=1e-12)
        assert p[k] == pytest.approx(ref.pvalue, rel=1e-12)
    assert chi2[0] == pytest.approx(0.0, abs=1e-12)  # exactly the expected 3, 3, 3, 2


def test_default_bins_and_thinning():
    assert default_bins(99, 100) == 10  # 10 ranks expected per bin, 10 divides 100
    assert default_bins(99, 50) == 5
    assert default_bins(99, 1000) == 20  # capped
    assert default_bins(99, 5) == 2
    assert default_bins(10, 200) == 11  # 11 ranks: 11 is the only divisor
    assert thin_indices(500, 99).tolist()[:3] == [0, 5, 10]
    assert thin_indices(500, 99)[-1] == 499 and len(np.unique(thin_indices(500, 99))) == 99
    with pytest.raises(ValueError, match="L=99"):
        thin_indices(50, 99)


# ---------------------------------------------------------------------- SBC of a spec
SPEC = GeneratorSpec.from_dict({
    "covariates": [{"name": "x1", "type": "continuous"}, {"name": "x2", "type": "binary"}],
    "outcome": {"family": "normal", "column": "y"},
})


def _data(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    df = pd.DataFrame({"x1": rng.normal(50, 10, n), "x2": rng.integers(0, 2, n)})
    df["y"] = 1 + 0.1 * df["x1"] + df["x2"] + rng.normal(0, 1, n)
    return df


@pytest.fixture(scope="module")
def small_sbc():
    """The small spec's model, compiled once for every SBC test below."""
    problem = sbc_problem(SPEC, _data(), seed=0)
    return problem, SBC(problem.model, problem.simulate)


PARAMS = ["cov_x1_intercept", "cov_x1_sigma", "cov_x2_intercept", "cov_x2_coef[0]", "mu", "beta[0]", "beta[1]",
          "sigma"]


@pytest.mark.slow
def test_sbc_passes_for_correct_inference(small_sbc):
    problem, sbc = small_sbc
    assert problem.n_obs == 60  # default min(n, 200)
    res = sbc.run(50, seed=1, target_accept=0.9)
    assert list(res.ranks.columns) == PARAMS  # every free scalar, no deterministics
    assert res.ranks.shape == (50, 8) and res.L == 99 and res.bins == 5
    assert res.ranks.to_numpy().min() >= 0 and res.ranks.to_numpy().max() <= 99
    # under correct inference the Bonferroni p-value is >= 0.01 with probability >= 0.99
    assert res.bonferroni_p >= 0.01 and res.passed(0.01)
    assert res.bonferroni_p == pytest.approx(min(1.0, 8 * res.pvalues.min()))
    assert res.divergent_share <= 0.1  # a normal regression samples cleanly
    s = res.summary()
    assert s["passed"] and s["replicates"] == 50 and s["n_params"] == 8


@pytest.mark.slow
def test_sbc_fails_when_the_refit_prior_differs(small_sbc):
    # theta and data from priors 3x wider than the refit's: the refit shrinks large
    # intercepts and coefficients towards 0, so their ranks pile up at the extremes
    _, sbc = small_sbc
    wide = SPEC.model_copy(update={"priors": SPEC.priors.model_copy(
        update={"intercept_sd": 3 * SPEC.priors.intercept_sd, "coefficient_sd": 3 * SPEC.priors.coefficient_sd})})
    truth = sbc_problem(wide, _data(), seed=0)  # same seed: same patients, same data containers
    res = sbc.run(50, seed=1, simulate=truth.simulate, target_accept=0.9)
    assert res.bonferroni_p < 0.01 and not res.passed(0.01)


@pytest.mark.slow
def test_sbc_fails_when_theta_is_misrecorded(small_sbc):
    # data simulated with sigma, but 1.3 sigma recorded: posterior draws fall below it
    problem, sbc = small_sbc

    def misrecorded(rng):
        theta, data = problem.simulate(rng)
        return {**theta, "sigma": 1.3 * theta["sigma"]}, data

    res = sbc.run(50, seed=1, simulate=misrecorded, target_accept=0.9)
    assert not res.passed(0.01)
    assert res.pvalues.idxmin() == "sigma" and res.pvalues["sigma"] < 1e-6
    assert res.ranks["sigma"].mean() > 80  # piled at the top of 0..99


@pytest.mark.slow
def test_sbc_is_deterministic(small_sbc):
    _, sbc = small_sbc
    a = sbc.run(4, seed=7)
    b = sbc.run(4, seed=7)
    c = sbc.run(4, seed=8)
    pd.testing.assert_frame_equal(a.ranks, b.ranks)
    np.testing.assert_array_equal(a.divergences, b.divergences)
    assert not a.ranks.equals(c.ranks)


@pytest.mark.slow
def test_sbc_rejects_bad_arguments(small_sbc):
    problem, sbc = small_sbc
    with pytest.raises(ValueError, match="n_obs"):
        sbc_problem(SPEC, _data(), n_obs=61)
    with pytest.raises(ValueError, match=r"\['y'\]"):
        sbc_problem(SPEC, _data().drop(columns="y"))
    with pytest.raises(ValueError, match="bins"):
        sbc.run(2, bins=101)
    with pytest.raises(ValueError, match="replicates"):
        sbc.run(0)

    def incomplete(rng):
        theta, data = problem.simulate(rng)
        return theta, {k: v for k, v in data.items() if k != "y_obs_data"}

    with pytest.raises(ValueError, match="y_obs_data"):
        sbc.run(1, simulate=incomplete)


@pytest.mark.slow
def test_sbc_for_spec_is_problem_plus_run(small_sbc):
    # the one-call wrapper builds the same model and subsample, so the same seed gives
    # the same ranks as the fixture's SBC run with the spec's target_accept
    _, sbc = small_sbc
    res = sbc_for_spec(SPEC, _data(), replicates=3, seed=1, bins=2)
    ref = sbc.run(3, seed=1, bins=2, target_accept=SPEC.sampler.target_accept)
    pd.testing.assert_frame_equal(res.ranks, ref.ranks)
    assert res.settings["n_obs"] == 60 and res.settings["spec_hash"] == SPEC.hash()
