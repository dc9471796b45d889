"""Group-sequential designs and simulation (trials/gsd.py) against rpact and closed forms.

References
----------
* ``../shared/reference/rpact_gsd.json``: rpact 3.3.4 boundaries (4 decimals) and
  simulated operating characteristics (10,000 iterations, seed 12345), calls quoted there.
* ``tests/reference/rpact_gsd_exact.json``: exact (non-simulated) rpact 3.3.4 values with
  12 significant digits, produced by ``tests/reference/rpact_gsd_exact.R`` (calls inside).
* ``tests/reference/rpact_gsd_sim.json``: rpact 3.3.4 simulations with 100,000 iterations
  (seed 777), both ``normalApproximation`` settings of ``getSimulationMeans``, produced by
  ``tests/reference/rpact_gsd_sim.R`` (calls recorded in the JSON). Note: the shared
  JSON's ``getSimulationMeans`` call leaves ``normalApproximation`` at its default TRUE,
  i.e. known-sd z statistics, so our default ``statistic="z"`` is the like-for-like one.
* Jennison & Turnbull (2000), Table 2.1 (Pocock C_P) and Table 2.3 (O'Brien-Fleming C_B),
  K = 3, two-sided 0.05 ~ one-sided 0.025: C_P = 2.289, C_B = 2.004 (3 decimals).
* Dunnett (1955) one-sided 0.025, infinite df: 2.21 (k=2), 2.35 (k=3), 2.44 (k=4).

Tolerances
----------
* Boundaries vs the shared JSON: 1e-3 as specified, and also 6e-5, because rpact prints 4
  decimals, so a correct value lies within 5e-5 of the printed one; vs the 12-digit JSON:
  1e-6 (both are numerical integrations; ours agrees to ~1e-8).
* Simulated vs rpact simulated: 3 combined Monte Carlo standard errors,
  ``sqrt(se_ours^2 + se_rpact^2)``; for proportions se = sqrt(p(1-p)/10000) at each
  side's own p; for means (expected N, events, analysis times) rpact reports no spread,
  so its se is taken equal to ours (same design, same R): ``sqrt(2) * se_ours``.
* Simulated vs exact / closed form: 3 MC se of the simulation (the closed form has none).
Seeds are fixed; no retries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from trials import gsd
from trials.survival import schoenfeld_power

HERE = Path(__file__).resolve().parent
# a verbatim copy of ../shared/reference/rpact_gsd.json, kept with the tests
SHARED = json.loads((HERE / "reference" / "rpact_gsd.json").read_text())
EXACT = json.loads((HERE / "reference" / "rpact_gsd_exact.json").read_text())
SIM100K = json.loads((HERE / "reference" / "rpact_gsd_sim.json").read_text())
R_RPACT = int(SIM100K["iterations"])

R = 10_000
SEED = 12345
RATES = [0.3333333, 0.6666667, 1.0]
LAMBDA2 = np.log(2) / 12
SURV = dict(lambda2=LAMBDA2, planned_events=[83, 167, 250], max_subjects=376, accrual_time=24.0)


def prop_se(p, n=R):
    return np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / n)


def assert_within(ours, ref, se, k=3.0, what=""):
    ours, ref, se = np.asarray(ours, float), np.asarray(ref, float), np.asarray(se, float)
    z = np.abs(ours - ref) / se
    assert np.all(z <= k), f"{what}: ours {ours} vs reference {ref}, |diff|/se = {z}"


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


# --------------------------------------------------------------------------- means

@pytest.fixture(scope="module")
def means_oc(design):
    sim = gsd.simulate_means(design, alternative=0.3, stdev=1.0, planned_subjects=[119, 237, 356],
                             n_replicates=R, rng=np.random.default_rng(SEED))
    return gsd.summarize(sim)


def _stagewise_match(oc, ref: dict) -> None:
    """Power, rejection per stage, early stop and expected N against rpact (combined MCSE)."""
    assert_within(oc.power, ref["power"], np.hypot(oc.power_mcse, prop_se(ref["power"])), what="power")
    assert_within(oc.reject_per_stage, ref["rejectPerStage"],
                  np.hypot(oc.reject_per_stage_mcse, prop_se(ref["rejectPerStage"])), what="rejectPerStage")
    assert_within(oc.early_stop, ref["earlyStop"], np.hypot(oc.early_stop_mcse, prop_se(ref["earlyStop"])),
                  what="earlyStop")
    assert_within(oc.expected_n, ref["expectedN"], np.sqrt(2) * oc.expected_n_mcse, what="expectedN")


def test_means_simulation_matches_rpact(means_oc):
    ref = SHARED["means"]
    oc = means_oc
    _stagewise_match(oc, ref)


def test_means_five_scenarios_match_rpact(design):
    ref = SHARED["means"]["five_scenarios"]
    rng = np.random.default_rng(SEED + 1)
    for alt, rej, en in zip(ref["alternative"], ref["reject"], ref["expectedN"], strict=True):
        oc = gsd.summarize(gsd.simulate_means(design, alternative=alt, planned_subjects=[119, 237, 356],
                                              n_replicates=R, rng=rng))
        assert_within(oc.power, rej, np.hypot(oc.power_mcse, prop_se(rej)), what=f"reject at {alt}")
        # at alternative 0 almost nobody stops early: sd of N ~ 0, use the proportion-based
        # bound on that sd instead (N ranges over 119..356)
        se_n = max(oc.expected_n_mcse, 237 * prop_se(max(rej, 1 / R)))
        assert_within(oc.expected_n, en, np.sqrt(2) * se_n, what=f"expectedN at {alt}")


@pytest.mark.parametrize(("statistic", "tag"), [("z", "means_normalApproximation"), ("t", "means_t")])
def test_means_matches_rpact_100k(design, statistic, tag):
    """Both statistics against rpact's 100,000-iteration runs of the matching convention."""
    rng = np.random.default_rng(SEED + 12)
    for j, alt in enumerate((0.0, 0.3)):
        sim = gsd.simulate_means(design, alternative=alt, planned_subjects=[119, 237, 356], n_replicates=R,
                                 rng=rng, statistic=statistic)
        oc = gsd.summarize(sim)
        ref = SIM100K[f"{tag}_overallReject"][j]
        assert_within(oc.power, ref, np.hypot(oc.power_mcse, prop_se(ref, R_RPACT)), what=f"{tag} reject {alt}")
        ref = SIM100K[f"{tag}_earlyStop"][j]
        assert_within(oc.early_stop, ref, np.hypot(oc.early_stop_mcse, prop_se(ref, R_RPACT)),
                      what=f"{tag} earlyStop {alt}")
        sd_n = max(oc.expected_n_mcse, 237 * prop_se(max(oc.early_stop, 1 / R))) * np.sqrt(R)
        assert_within(oc.expected_n, SIM100K[f"{tag}_expectedN"][j], sd_n * np.sqrt(1 / R + 1 / R_RPACT),
                      what=f"{tag} expectedN {alt}")
        if alt == 0.3:
            ref = np.array(SIM100K[f"{tag}_rejectPerStage_alt0.3"])
            assert_within(oc.reject_per_stage, ref, np.hypot(oc.reject_per_stage_mcse, prop_se(ref, R_RPACT)),
                          what=f"{tag} rejectPerStage")


def test_means_z_simulation_matches_exact(design):
    """Known-sd z statistics: stage-wise rejection = the recursive integration at the
    realised information fractions (arm sizes 60/59, 119/118, 178/178)."""
    sim = gsd.simulate_means(design, alternative=0.3, planned_subjects=[119, 237, 356], n_replicates=R,
                             rng=np.random.default_rng(SEED + 2), statistic="z")
    oc = gsd.summarize(sim)
    n1 = np.array([60, 119, 178])
    n2 = np.array([59, 118, 178])
    info = 1 / (1 / n1 + 1 / n2)
    exact = gsd.crossing_probabilities(info / info[-1], design.critical_values,
                                       drift=gsd.means_drift(0.3, 1.0, 178, 178))[0]
    assert_within(oc.reject_per_stage, exact, prop_se(exact), what="z vs exact")
    exp_n = np.array([119, 237, 356]) @ np.append(exact[:-1], 1 - exact[:-1].sum())
    assert_within(oc.expected_n, exp_n, oc.expected_n_mcse, what="expected N vs exact")


def test_means_futility_and_direction(design):
    d = gsd.group_sequential_design(RATES, type_of_design="asOF", futility="bsOF")
    sim = gsd.simulate_means(d, alternative=-0.3, planned_subjects=[119, 237, 356], n_replicates=R,
                             rng=np.random.default_rng(SEED + 3), statistic="z", direction="lower")
    oc = gsd.summarize(sim)
    ex = gsd.exact_characteristics(d, gsd.means_drift(0.3, 1.0, 178, 178))
    assert_within(oc.power, ex.power, prop_se(ex.power) + 0.002, what="power (info-rate rounding 0.002)")
    assert_within(oc.futility_per_stage[:-1], ex.futility_per_stage[:-1],
                  prop_se(ex.futility_per_stage[:-1]) + 0.002, what="futility")
    assert not np.any(sim.rejected & sim.futility)
    assert np.all(sim.estimate[sim.rejected] < 0)


def test_fixed_sample_z_and_t_power_match_closed_form():
    f = gsd.fixed_sample_design(0.025)
    for stat, closed in (("z", gsd.power_z_test(0.3, 1.0, 178, 178)),
                         ("t", gsd.power_t_test(0.3, 1.0, 178, 178))):
        oc = gsd.summarize(gsd.simulate_means(f, alternative=0.3, planned_subjects=[356], n_replicates=R,
                                              rng=np.random.default_rng(SEED + 4), statistic=stat))
        assert_within(oc.power, closed, prop_se(closed), what=f"fixed {stat}")
    # a small trial where t and z power differ visibly: the t path must follow the t
    oc = gsd.summarize(gsd.simulate_means(f, alternative=1.0, planned_subjects=[12], n_replicates=R,
                                          rng=np.random.default_rng(SEED + 5), statistic="t"))
    closed_t = gsd.power_t_test(1.0, 1.0, 6, 6)
    assert abs(closed_t - gsd.power_z_test(1.0, 1.0, 6, 6)) > 10 * prop_se(closed_t)
    assert_within(oc.power, closed_t, prop_se(closed_t), what="fixed t, n=12")


# --------------------------------------------------------------------------- survival

@pytest.fixture(scope="module")
def survival_sim(design):
    return gsd.simulate_survival(design, hazard_ratio=0.7, n_replicates=R, rng=np.random.default_rng(SEED), **SURV)


def test_survival_simulation_matches_rpact(survival_sim):
    ref = SHARED["survival"]
    oc = gsd.summarize(survival_sim)
    _stagewise_match(oc, ref)
    assert_within(oc.expected_events, ref["expectedEvents"], np.sqrt(2) * oc.expected_events_mcse,
                  what="expectedEvents")
    assert_within(oc.mean_analysis_times, ref["meanAnalysisTimes_months"],
                  np.sqrt(2) * oc.mean_analysis_times_mcse, what="meanAnalysisTimes")


def test_survival_type_one_error_matches_rpact(design):
    sim = gsd.simulate_survival(design, hazard_ratio=1.0, n_replicates=R, rng=np.random.default_rng(SEED + 6), **SURV)
    oc = gsd.summarize(sim)
    ref = SHARED["survival"]["type_I_error_at_HR_1"]
    assert_within(oc.power, ref, np.hypot(oc.power_mcse, prop_se(ref)), what="type I error")
    assert_within(oc.power, 0.025, prop_se(0.025), what="type I error vs nominal")


def test_survival_matches_rpact_100k(design, survival_sim):
    oc = gsd.summarize(survival_sim)
    ref = SIM100K["survival_overallReject"][0]
    assert_within(oc.power, ref, np.hypot(oc.power_mcse, prop_se(ref, R_RPACT)), what="power")
    ref = np.array(SIM100K["survival_rejectPerStage_hr0.7"])
    assert_within(oc.reject_per_stage, ref, np.hypot(oc.reject_per_stage_mcse, prop_se(ref, R_RPACT)),
                  what="rejectPerStage")
    ref = SIM100K["survival_earlyStop"][0]
    assert_within(oc.early_stop, ref, np.hypot(oc.early_stop_mcse, prop_se(ref, R_RPACT)), what="earlyStop")
    shrink = np.sqrt(1 + R / R_RPACT)  # rpact's se from our spread at its R
    assert_within(oc.expected_n, SIM100K["survival_expectedN"][0], oc.expected_n_mcse * shrink, what="expectedN")
    assert_within(oc.expected_events, SIM100K["survival_expectedEvents"][0], oc.expected_events_mcse * shrink,
                  what="expectedEvents")
    assert_within(oc.mean_analysis_times, SIM100K["survival_analysisTime_hr0.7"],
                  oc.mean_analysis_times_mcse * shrink, what="analysis times")


def test_survival_bookkeeping(survival_sim):
    sim = survival_sim
    k = sim.stage - 1
    np.testing.assert_array_equal(sim.events, np.array([83, 167, 250])[k])
    # regular accrual e_i = 24 i / 376: entered = floor(376 t / 24) capped at 376
    t_stop = sim.analysis_time[np.arange(R), k]
    np.testing.assert_array_equal(sim.n_subjects, np.minimum(376, np.floor(376 * t_stop / 24 + 1e-9)))
    assert np.all(np.isnan(sim.z[np.arange(3)[None, :] > k[:, None]]))
    assert np.all(np.diff(sim.analysis_time, axis=1)[~np.isnan(np.diff(sim.analysis_time, axis=1))] > 0)
    assert np.all(sim.estimate[sim.rejected] < 1)


def test_logrank_matches_lifelines():
    import lifelines.statistics as lifelines_stats  # a test dependency (pyproject [test])
    rng = np.random.default_rng(SEED + 7)
    n = 200
    entry = rng.uniform(0, 24, (3, n))
    arm = rng.random((3, n)) < 0.5
    surv = rng.exponential(12, (3, n)) * np.where(arm, 1.3, 1.0)
    t = np.array([20.0, 30.0, 40.0])
    z, log_hr, n_ent = gsd._logrank(entry, surv, arm, t, upper=False)
    for i in range(3):
        ent = entry[i] <= t[i]
        follow = np.minimum(surv[i], t[i] - entry[i])[ent]
        event = (entry[i] + surv[i] <= t[i])[ent]
        a = arm[i][ent]
        res = lifelines_stats.logrank_test(follow[a], follow[~a], event[a], event[~a])
        assert abs(z[i] ** 2 - res.test_statistic) < 1e-9
        assert n_ent[i] == ent.sum()


def test_fixed_sample_logrank_power_matches_schoenfeld():
    f = gsd.fixed_sample_design(0.025)
    for hr, seed in ((0.7, SEED + 8), (1.0, SEED + 9)):
        sim = gsd.simulate_survival(f, hazard_ratio=hr, lambda2=LAMBDA2, planned_events=[250], max_subjects=376,
                                    accrual_time=24.0, n_replicates=R, rng=np.random.default_rng(seed))
        closed = schoenfeld_power(hr, 250, 0.5, 0.025) if hr != 1 else 0.025
        assert abs(stats.norm.cdf(gsd.logrank_drift(hr, 250) - stats.norm.isf(0.025)) - closed) < 1e-12
        oc = gsd.summarize(sim)
        assert_within(oc.power, closed, prop_se(closed), what=f"Schoenfeld at HR {hr}")


def test_survival_random_entry_and_assignment(design):
    sim = gsd.simulate_survival(design, hazard_ratio=0.7, n_replicates=4000, rng=np.random.default_rng(SEED + 10),
                                entry="uniform", assignment="random", **SURV)
    oc = gsd.summarize(sim)
    ex = gsd.exact_characteristics(design, gsd.logrank_drift(0.7, 250))
    # random allocation adds imbalance; Schoenfeld's drift is still close (0.01 allowance)
    assert_within(oc.power, ex.power, prop_se(ex.power, 4000) + 0.01 / 3, what="uniform/random power")
    assert np.all(sim.n_subjects <= 376)


# --------------------------------------------------------------------------- reproducibility

def test_same_seed_bit_identical(design):
    def run_means(seed):
        return gsd.simulate_means(design, alternative=0.2, planned_subjects=[119, 237, 356], n_replicates=2000,
                                  rng=np.random.default_rng(seed))

    def run_surv(seed, chunk):
        return gsd.simulate_survival(design, hazard_ratio=0.8, n_replicates=2000, rng=np.random.default_rng(seed),
                                     chunk_size=chunk, **SURV)

    pairs = [(run_means(1), run_means(1)), (run_surv(1, 2048), run_surv(1, 2048)), (run_surv(1, 2048), run_surv(1, 333))]
    for a, b in pairs:
        for name in ("stage", "rejected", "futility", "n_subjects", "z", "estimate", "events", "analysis_time"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or np.array_equal(x, y, equal_nan=True), name
    assert not np.array_equal(run_means(1).z, run_means(2).z, equal_nan=True)


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


def test_multiarm_fwer():
    rng = np.random.default_rng(SEED + 11)
    dun = gsd.simulate_multiarm_means(alternatives=[0, 0, 0], planned_subjects_per_arm=[100], n_replicates=R,
                                      rng=rng, adjustment="dunnett")
    fwer = dun.any_rejected.mean()
    assert_within(fwer, 0.025, prop_se(0.025), what="Dunnett FWER")
    bon = gsd.simulate_multiarm_means(alternatives=[0, 0, 0], planned_subjects_per_arm=[40, 80, 120], n_replicates=R,
                                      rng=rng, adjustment="bonferroni")
    assert bon.any_rejected.mean() <= 0.025 + 3 * prop_se(0.025)
    # marginally each comparison is an asOF design at alpha / 3
    assert_within(bon.rejected.mean(axis=0), 0.025 / 3, prop_se(0.025 / 3), what="per-arm level")
    alt = gsd.simulate_multiarm_means(alternatives=[0.0, 0.4], planned_subjects_per_arm=[40, 80, 120],
                                      n_replicates=R, rng=rng)
    d = gsd.group_sequential_design([1 / 3, 2 / 3, 1], alpha=0.0125)
    exact = gsd.exact_characteristics(d, gsd.means_drift(0.4, 1.0, 120, 120)).power
    assert_within(alt.rejected[:, 1].mean(), exact, prop_se(exact), what="arm 2 power")
    assert np.all(alt.n_subjects <= 3 * 120)


# --------------------------------------------------------------------------- input checks

def test_input_validation(design):
    with pytest.raises(ValueError, match="information_rates"):
        gsd.group_sequential_design([0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="type_of_design"):
        gsd.group_sequential_design(kmax=2, type_of_design="xx")
    with pytest.raises(ValueError, match="gamma"):
        gsd.group_sequential_design(kmax=2, type_of_design="asHSD")
    with pytest.raises(TypeError, match="Generator"):
        gsd.simulate_means(design, alternative=0.3, planned_subjects=[119, 237, 356], n_replicates=10, rng=1)
    with pytest.raises(ValueError, match="planned_subjects"):
        gsd.simulate_means(design, alternative=0.3, planned_subjects=[119, 356], n_replicates=10,
                           rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_subjects"):
        gsd.simulate_survival(design, hazard_ratio=0.7, lambda2=0.1, planned_events=[83, 167, 400], max_subjects=376,
                              accrual_time=24, n_replicates=10, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="single look"):
        gsd.simulate_multiarm_means(alternatives=[0, 0], planned_subjects_per_arm=[10, 20], n_replicates=10,
                                    rng=np.random.default_rng(0), adjustment="dunnett")


def test_summary_table(means_oc):
    df = means_oc.to_frame()
    assert set(df["quantity"]) >= {"power", "reject_per_stage", "early_stop", "expected_n"}
    row = df[df["quantity"] == "power"].iloc[0]
    assert row["value"] == means_oc.power and row["mcse"] == means_oc.power_mcse and row["n_replicates"] == R
