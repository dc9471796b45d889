"""Group-sequential boundaries and exact characteristics (trials/gsd.py) against rpact and
closed forms. Simulated trials go through the engine: tests/test_engine_gsd.py.

References
----------
* ``../shared/reference/rpact_gsd.json``: rpact 3.3.4 boundaries (4 decimals) and
  simulated operating characteristics (10,000 iterations, seed 12345), calls quoted there.
* ``validation/reference/rpact_gsd_exact.json``: exact (non-simulated) rpact 3.3.4 values with
  12 significant digits, produced by ``validation/reference/rpact_gsd_exact.R`` (calls inside).
* Jennison & Turnbull (2000), Table 2.1 (Pocock C_P) and Table 2.3 (O'Brien-Fleming C_B),
  K = 3, two-sided 0.05 ~ one-sided 0.025: C_P = 2.289, C_B = 2.004 (3 decimals).
* Dunnett (1955) one-sided 0.025, infinite df: 2.21 (k=2), 2.35 (k=3), 2.44 (k=4).

Tolerances
----------
* Boundaries vs the shared JSON: 1e-3 as specified, and also 6e-5, because rpact prints 4
  decimals, so a correct value lies within 5e-5 of the printed one; vs the 12-digit JSON:
  1e-6 (both are numerical integrations; ours agrees to ~1e-8).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from insilico.common.resources import REFERENCE, data_file
from insilico.trials import gsd

HERE = Path(__file__).resolve().parent
# a verbatim copy of ../shared/reference/rpact_gsd.json, kept with the tests
SHARED = json.loads(data_file(REFERENCE, "rpact_gsd.json").read_text())
EXACT = json.loads(data_file(REFERENCE, "rpact_gsd_exact.json").read_text())
RATES = [0.3333333, 0.6666667, 1.0]
LAMBDA2 = np.log(2) / 12


@pytest.fixture(scope="module")
def design():
    return gsd.group_sequential_design(RATES, alpha=0.025, beta=0.2, type_of_design="asOF")


# --------------------------------------------------------------------------- boundaries

def test_asof_boundaries_match_rpact_4_decimals(design):
    # rpact prints 4 decimals; the shared JSON has exactly those
    np.testing.assert_allclose(design.critical_values, SHARED["design"]["critical_z"], atol=1e-3)
    np.testing.assert_allclose(design.critical_values, SHARED["design"]["critical_z"], atol=6e-5)


def test_asof_boundaries_match_rpact_exact(design):
    np.testing.assert_allclose(design.critical_values, EXACT["asOF_critical"], atol=1e-6)
    np.testing.assert_allclose(design.alpha_spent, EXACT["asOF_alpha_spent"], atol=1e-9)


@pytest.mark.parametrize(("kind", "kw", "key", "rates"), [
    ("asP", {}, "asP_critical", None),
    ("P", {}, "P_critical", None),
    ("OF", {}, "OF_critical", None),
    ("asHSD", {"gamma": -4}, "asHSD_m4_critical", None),
    ("asKD", {"gamma": 2}, "asKD_2_unequal_critical", [0.2, 0.5, 0.8, 1.0]),
])
def test_other_boundaries_match_rpact_exact(kind, kw, key, rates):
    d = gsd.group_sequential_design(rates, kmax=3, type_of_design=kind, **kw)
    np.testing.assert_allclose(d.critical_values, EXACT[key], atol=1e-6)


def test_constant_boundaries_match_jennison_turnbull_tables():
    # J&T Table 2.1 C_P(3, 0.05) = 2.289, Table 2.3 C_B(3, 0.05) = 2.004 (3 decimals printed)
    p = gsd.group_sequential_design(kmax=3, type_of_design="P").critical_values
    of = gsd.group_sequential_design(kmax=3, type_of_design="OF").critical_values
    np.testing.assert_allclose(p, 2.289, atol=1e-3)
    np.testing.assert_allclose(of, 2.004 * np.sqrt(3 / np.arange(1, 4)), atol=2e-3)


@pytest.mark.parametrize("kind", ["P", "asOF"])
def test_h0_crossing_probability_independent_check(kind):
    """1 - P(all Z_k < c_k) by scipy's Genz QMC integration of the canonical covariance."""
    t = np.array([1 / 3, 2 / 3, 1.0])
    c = gsd.group_sequential_design(t, type_of_design=kind).critical_values
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    cover = stats.multivariate_normal.cdf(c, mean=np.zeros(3), cov=cov, abseps=1e-10, releps=0,
                                          maxpts=5_000_000, rng=np.random.default_rng(0))
    assert abs((1 - cover) - 0.025) < 1e-6


@pytest.mark.parametrize(("kind", "kw"), [("asOF", {}), ("asP", {}), ("asHSD", {"gamma": 1}),
                                          ("asKD", {"gamma": 3}), ("P", {}), ("OF", {})])
def test_exact_h0_rejections_sum_to_alpha(kind, kw):
    d = gsd.group_sequential_design([0.25, 0.6, 1.0], type_of_design=kind, **kw)
    ex = gsd.exact_characteristics(d, 0.0)
    assert abs(ex.reject_per_stage.sum() - 0.025) < 1e-6
    if kind.startswith("as"):  # each stage spends exactly its increment
        cum = gsd.spending_function(kind, d.information_rates, 0.025, kw.get("gamma"))
        np.testing.assert_allclose(np.cumsum(ex.reject_per_stage), cum, atol=1e-9)


def test_binding_futility_spends_alpha_with_futility():
    fut = [0.0, 0.5]
    nb = gsd.group_sequential_design(kmax=3, futility=fut)
    b = gsd.group_sequential_design(kmax=3, futility=fut, binding_futility=True)
    assert np.all(b.critical_values[1:] < nb.critical_values[1:])
    assert b.critical_values[0] == pytest.approx(nb.critical_values[0], abs=1e-12)
    assert abs(gsd.exact_characteristics(b, 0.0).power - 0.025) < 1e-6  # futility obeyed
    assert gsd.exact_characteristics(nb, 0.0).power < 0.025  # non-binding: conservative if obeyed


def test_grid_converged(design):
    coarse = gsd.crossing_probabilities(RATES, design.critical_values, drift=2.8, grid_points=32)[0]
    fine = gsd.crossing_probabilities(RATES, design.critical_values, drift=2.8, grid_points=128)[0]
    np.testing.assert_allclose(coarse, fine, atol=1e-9)


def test_drift_characteristics_match_rpact(design):
    theta = gsd.drift_for_power(design)
    assert abs(theta**2 - EXACT["asOF_shift"]) < 1e-6
    ex = gsd.exact_characteristics(design, theta)
    np.testing.assert_allclose(ex.reject_per_stage, EXACT["asOF_rejection_probabilities_at_shift"], atol=1e-7)
    inflation = theta**2 / (stats.norm.isf(0.025) + stats.norm.isf(0.2)) ** 2
    assert abs(inflation - EXACT["asOF_inflation_factor"]) < 1e-7
    # rpact's average sample numbers are E[information fraction] x inflation factor
    assert abs(ex.expected_information * inflation - EXACT["asOF_average_sample_number_H1"]) < 1e-7
    h0 = gsd.exact_characteristics(design, 0.0)
    assert abs(h0.expected_information * inflation - EXACT["asOF_average_sample_number_H0"]) < 1e-7


def test_beta_spending_futility_matches_rpact():
    d = gsd.group_sequential_design(kmax=3, alpha=0.025, beta=0.2, type_of_design="asOF", futility="bsOF")
    np.testing.assert_allclose(d.critical_values, EXACT["asOF_bsOF_critical"], atol=1e-6)
    np.testing.assert_allclose(d.futility_bounds[:-1], EXACT["asOF_bsOF_futility"], atol=1e-6)
    assert d.futility_bounds[-1] == -np.inf
    assert abs(d.drift_beta_spending**2 - EXACT["asOF_bsOF_shift"]) < 1e-6
    ex = gsd.exact_characteristics(d, d.drift_beta_spending)
    np.testing.assert_allclose(ex.futility_per_stage[:-1], EXACT["asOF_bsOF_futility_probabilities"], atol=1e-7)
    np.testing.assert_allclose(ex.reject_per_stage, EXACT["asOF_bsOF_rejection_probabilities"], atol=1e-7)
    assert abs(ex.power - 0.8) < 1e-9


def test_exact_power_means_and_survival_match_rpact(design):
    # getPowerMeans(normalApproximation = TRUE): drift = delta / sigma * sqrt(N / 4)
    ex = gsd.exact_characteristics(design, gsd.means_drift(0.3, 1.0, 178, 178))
    np.testing.assert_allclose(ex.reject_per_stage, EXACT["powerMeans_z_rejectPerStage"], atol=1e-7)
    assert abs(356 * ex.expected_information - EXACT["powerMeans_z_expectedN"]) < 1e-4
    # getPowerSurvival: Schoenfeld drift, expected event curve for the look times
    ex = gsd.exact_characteristics(design, gsd.logrank_drift(0.7, 250))
    np.testing.assert_allclose(ex.reject_per_stage, EXACT["powerSurvival_rejectPerStage"], atol=1e-7)
    kw = dict(lambda2=LAMBDA2, hazard_ratio=0.7, max_subjects=376, accrual_time=24.0)
    times = gsd.analysis_time_exponential(250 * np.asarray(RATES), **kw)
    np.testing.assert_allclose(times, EXACT["powerSurvival_analysisTime"], atol=1e-4)
    stop = np.append(ex.reject_per_stage[:-1], 1 - ex.reject_per_stage[:-1].sum())
    assert abs(stop @ (250 * np.asarray(RATES)) - EXACT["powerSurvival_expectedEvents"]) < 1e-3
    n_at = np.minimum(376, 376 * times / 24)
    assert abs(stop @ n_at - EXACT["powerSurvival_expectedN"]) < 1e-3


# --------------------------------------------------------------------------- multi-arm

def test_dunnett_critical_values():
    # Dunnett (1955) table, one-sided 0.025, df = inf, 2 decimals
    for k, table in ((2, 2.21), (3, 2.35), (4, 2.44)):
        assert abs(gsd.dunnett_critical_value(k, 0.025) - table) < 6e-3
    c = gsd.dunnett_critical_value(3, 0.025)
    cov = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    cover = stats.multivariate_normal.cdf(np.full(3, c), mean=np.zeros(3), cov=cov, abseps=1e-10, releps=0,
                                          maxpts=2_000_000, rng=np.random.default_rng(0))
    assert abs(1 - cover - 0.025) < 1e-6


# --------------------------------------------------------------------------- input checks

def test_input_validation(design):
    with pytest.raises(ValueError, match="information_rates"):
        gsd.group_sequential_design([0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="type_of_design"):
        gsd.group_sequential_design(kmax=2, type_of_design="xx")
    with pytest.raises(ValueError, match="gamma"):
        gsd.group_sequential_design(kmax=2, type_of_design="asHSD")
