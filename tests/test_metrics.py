"""Held-out validation metrics against hand-worked examples, scipy, lifelines and sklearn,
plus behavioural checks (same distribution vs shifted) with Monte Carlo bands stated
where they are used."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index, restricted_mean_survival_time
from scipy import optimize, stats
from scipy.spatial.distance import mahalanobis
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from insilico.validation.metrics import (
    calibration,
    concordance,
    interval_coverage,
    km_distance,
    ks_wasserstein,
    mahalanobis_qq,
    propensity_metrics,
    rmst,
    rmst_tost,
)

MIXED = {"a": "continuous", "b": "continuous", "g": "continuous", "k": "count", "sex": "binary",
         "grp": "categorical"}


def cohort(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """Mixed covariates; ``shift`` moves covariate a by that many sds."""
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "g": rng.gamma(2, 1, n),
                         "k": rng.poisson(3, n), "sex": rng.choice(["F", "M"], n),
                         "grp": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])})


# ---------------------------------------------------------------------- KS / Wasserstein
def test_ks_wasserstein_hand_example():
    # real x = 0..4, synthetic x = 1..5: ECDFs differ by at most 1/5 (KS = 0.2); moving
    # each of the 5 unit masses one step costs 1 (W1 = 1); sd_real = sqrt(2.5).
    # sex=M indicator: 3/5 vs 4/5 -> KS = W1 = 0.2.
    real = pd.DataFrame({"x": [0, 1, 2, 3, 4], "sex": ["F", "F", "M", "M", "M"]})
    synth = pd.DataFrame({"x": [1, 2, 3, 4, 5], "sex": ["F", "M", "M", "M", "M"]})
    t = ks_wasserstein(real, synth, {"x": "continuous", "sex": "binary"})
    assert list(t.index) == ["x", "sex=M"]
    assert t.loc["x", "ks_statistic"] == pytest.approx(0.2)
    assert t.loc["x", "wasserstein"] == pytest.approx(1.0)
    assert t.loc["x", "wasserstein_std"] == pytest.approx(1 / np.sqrt(2.5))
    # scipy's exact p-value fails on this tiny tied example (it warns and falls back);
    # ours takes the asymptotic p-value then, without the warning
    asymp = stats.ks_2samp([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], method="asymp").pvalue
    assert t.loc["x", "ks_pvalue"] == pytest.approx(asymp)
    assert t.loc["sex=M", "ks_statistic"] == pytest.approx(0.2)
    assert t.loc["sex=M", "wasserstein"] == pytest.approx(0.2)


def test_ks_wasserstein_drops_missing_per_column_and_checks_input():
    real = pd.DataFrame({"x": [0.0, 1.0, np.nan, 3.0]})
    synth = pd.DataFrame({"x": [0.0, 1.0, 3.0]})
    t = ks_wasserstein(real, synth, {"x": "continuous"})
    assert t.loc["x", "ks_statistic"] == 0.0 and t.loc["x", "n_real"] == 3
    # where the exact p-value works, it is scipy's
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(0.5, 1, 40)
    t = ks_wasserstein(pd.DataFrame({"x": a}), pd.DataFrame({"x": b}), {"x": "continuous"})
    assert t.loc["x", "ks_pvalue"] == pytest.approx(stats.ks_2samp(a, b).pvalue)
    with pytest.raises(ValueError, match="'y'"):
        ks_wasserstein(real, synth, {"y": "continuous"})
    with pytest.raises(ValueError, match="ordinal"):
        ks_wasserstein(real, synth, {"x": "ordinal"})


# ---------------------------------------------------------------------- propensity
def test_pmse_matches_an_independent_unpenalised_fit():
    # Our fit uses sklearn with a negligible ridge (C = 1e4); an unpenalised MLE by scipy
    # on the same design gives the same probabilities to ~1e-4, hence the same pMSE.
    rng = np.random.default_rng(3)
    real, synth = cohort(150, rng), cohort(100, rng, shift=0.3)
    m = propensity_metrics(real, synth, MIXED, seed=0)
    from insilico.validation.fidelity import numeric_pair

    r, s = numeric_pair(real, synth, MIXED)
    x = np.vstack([r.to_numpy(), s.to_numpy()])
    x = np.column_stack([np.ones(len(x)), x[:, :-1]])  # drop one grp level: full rank
    y = np.r_[np.zeros(150), np.ones(100)]

    def nll(b):
        eta = x @ b
        return np.sum(np.logaddexp(0, eta) - y * eta)

    b = optimize.minimize(nll, np.zeros(x.shape[1]), method="BFGS", options={"gtol": 1e-9}).x
    c = 100 / 250
    assert m["n_parameters"] == x.shape[1] == 8  # intercept + a, b, g, k, sex + 2 of 3 grp levels
    assert m["c"] == pytest.approx(c)
    assert m["pmse"] == pytest.approx(np.mean((expit(x @ b) - c) ** 2), rel=1e-3)
    assert m["pmse_null"] == pytest.approx(7 * c * (1 - c) / 250)
    assert m["pmse_null_conditional"] == pytest.approx(7 * (1 - c) ** 2 * c / 250)  # Snoke et al. 2018


def test_propensity_same_distribution_is_indistinguishable():
    # 40 replicates, 300 real vs 300 synthetic rows from one distribution, k - 1 = 7.
    # Per replicate the pMSE ratio ~ chi2_7 / 7 (sd sqrt(2/7) = 0.53; 0.48 seen over 200
    # replicates), so the mean of 40 has se ~0.08: band +/- 0.3 (3.6 se). Out-of-fold AUC:
    # per-replicate sd 0.032 (Mann-Whitney 0.024 plus fold-to-fold model noise; 200
    # replicates), mean of 40 se 0.005, and cross-validation under the null biases it
    # down by ~0.003: band +/- 0.02. Snoke's conditional null is (1 - c) = 1/2 of ours,
    # so its ratio is ~2 here (band +/- 0.6, 3.6 se).
    ratio, auc, cond = [], [], []
    for r in range(40):
        rng = np.random.default_rng(r)
        m = propensity_metrics(cohort(300, rng), cohort(300, rng), MIXED, seed=r)
        assert m["n_parameters"] == 8
        ratio.append(m["pmse_ratio"])
        auc.append(m["detection_auc"])
        cond.append(m["pmse_ratio_conditional"])
    assert abs(np.mean(ratio) - 1) < 0.3
    assert abs(np.mean(auc) - 0.5) < 0.02
    assert abs(np.mean(cond) - 2) < 0.6


def test_propensity_snoke_null_holds_when_synthesis_is_fitted_to_the_real_rows():
    # Snoke et al.'s setting: synthetic rows drawn from a normal fitted to *these* real
    # rows; then pMSE ratio_conditional ~ chi2_4 / 4 (sd 0.71): mean of 30 has se 0.13,
    # band +/- 0.45 (3.5 se). c = 0.8 here, so the conditional null is 1/5 of the
    # independent one, whose ratio would be ~0.2.
    cols = {c: "continuous" for c in "abcd"}
    cond = []
    for r in range(30):
        rng = np.random.default_rng(1000 + r)
        real = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
        fitted = rng.multivariate_normal(real.mean().to_numpy(), np.cov(real.to_numpy(), rowvar=False), 800)
        m = propensity_metrics(real, pd.DataFrame(fitted, columns=list("abcd")), cols, seed=r)
        cond.append(m["pmse_ratio_conditional"])
    assert m["c"] == pytest.approx(0.8)
    assert abs(np.mean(cond) - 1) < 0.45


def test_propensity_detects_half_sd_shift():
    # Covariate a shifted by 0.5 sd, 2000 rows each. The best classifier's AUC is
    # Phi(0.5 / sqrt(2)) = 0.638 (sd ~0.009 at this n), so > 0.6 is ~4 sd from failing.
    # The pMSE ratio must exceed the null's 99.9% point, chi2_7(0.999) / 7 = 3.4.
    rng = np.random.default_rng(7)
    m = propensity_metrics(cohort(2000, rng), cohort(2000, rng, shift=0.5), MIXED, seed=1)
    assert m["detection_auc"] > 0.6
    assert m["detection_auc"] == pytest.approx(stats.norm.cdf(0.5 / np.sqrt(2)), abs=0.04)
    assert m["pmse_ratio"] > stats.chi2(7).ppf(0.999) / 7


def test_propensity_input_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="folds"):
        propensity_metrics(cohort(50, rng), cohort(50, rng), MIXED, seed=0, folds=1)
    with pytest.raises(ValueError, match="synth: missing column.*'sex'"):
        propensity_metrics(cohort(50, rng), cohort(50, rng).drop(columns="sex"), MIXED, seed=0)


# ---------------------------------------------------------------------- Mahalanobis
def test_mahalanobis_distances_match_scipy_and_rank():
    # Two continuous covariates and a 3-level categorical: its indicators sum to 1, so the
    # covariance is singular with rank 2 + 2 = 4; pinv still gives the distances, and
    # where the covariance is regular (continuous only) they equal scipy's.
    rng = np.random.default_rng(2)
    real = pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40)})
    synth = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(1, 2, size=60)})
    cols = {"x": "continuous", "y": "continuous"}
    m = mahalanobis_qq(real, synth, cols)
    vi = np.linalg.inv(np.cov(synth.to_numpy(), rowvar=False))
    mean = synth.to_numpy().mean(axis=0)
    expected = np.sort([mahalanobis(row, mean, vi) ** 2 for row in real.to_numpy()])
    np.testing.assert_allclose(m["distances"], expected, rtol=1e-10)
    np.testing.assert_allclose(m["quantiles"], stats.chi2(2).ppf((np.arange(1, 41) - 0.5) / 40))
    assert m["p"] == 2
    assert m["ks_real"] == pytest.approx(stats.kstest(expected, stats.chi2(2).cdf).statistic)
    real["grp"] = rng.choice(list("xyz"), 40)
    synth["grp"] = rng.choice(list("xyz"), 60)
    assert mahalanobis_qq(real, synth, {**cols, "grp": "categorical"})["p"] == 4


def test_mahalanobis_excess_flags_broken_dependence_not_non_normality():
    # Same distribution (mixed, non-normal covariates): both cohorts deviate from chi2_p
    # alike; |excess| stays below the KS null's 99.9% point at n = 2000, 1.95/sqrt(2000)
    # = 0.044. Real covariates correlated 0.9 vs an independent synthetic cohort with the
    # same margins: real d^2 ~ 1.9 chi2_1 + 0.1 chi2_1, whose population KS distance from
    # chi2_2 is 0.127 (computed on 2e6 draws); the excess must exceed 0.06.
    rng = np.random.default_rng(11)
    same = mahalanobis_qq(cohort(2000, rng), cohort(2000, rng), MIXED)
    assert same["ks_synthetic"] > 0.05  # non-normal covariates: the reference is not 0
    assert abs(same["ks_excess"]) < 0.044
    z = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 2000)
    real = pd.DataFrame(z, columns=["x", "y"])
    synth = pd.DataFrame(rng.normal(size=(2000, 2)), columns=["x", "y"])
    broken = mahalanobis_qq(real, synth, {"x": "continuous", "y": "continuous"})
    assert broken["ks_excess"] > 0.06
    assert broken["ks_real_vs_synthetic_pvalue"] < 1e-3


# ---------------------------------------------------------------------- KM distance, RMST
def test_km_distance_hand_example():
    # real deaths at 1, 2, 3 and synthetic at 1.5, 2.5, 3.5 (no censoring): on [1, 1.5)
    # the curves are 2/3 vs 1, on [2, 2.5) 1/3 vs 2/3, on [3, 3.5) 0 vs 1/3: sup = 1/3.
    assert km_distance([1, 2, 3], [1, 1, 1], [1.5, 2.5, 3.5], [1, 1, 1]) == pytest.approx(1 / 3)
    assert km_distance([1, 2, 3], [1, 1, 1], [1, 2, 3], [1, 1, 1]) == 0.0
    # on a grid that stops before the first death, the curves agree
    assert km_distance([1, 2, 3], [1, 1, 1], [1.5, 2.5, 3.5], [1, 1, 1], grid=[0.5]) == 0.0


def test_km_distance_matches_lifelines_with_censoring():
    rng = np.random.default_rng(5)
    t1, c1 = rng.exponential(1, 300), rng.uniform(0, 3, 300)
    t2, c2 = rng.exponential(1.3, 250), rng.uniform(0, 3, 250)
    tr, er, ts, es = np.minimum(t1, c1), (t1 <= c1).astype(int), np.minimum(t2, c2), (t2 <= c2).astype(int)
    # lifelines' curves on every observed time: the sup over step functions is attained there
    grid = np.union1d(tr, ts)
    s_r = KaplanMeierFitter().fit(tr, er).survival_function_at_times(grid).to_numpy()
    s_s = KaplanMeierFitter().fit(ts, es).survival_function_at_times(grid).to_numpy()
    assert km_distance(tr, er, ts, es) == pytest.approx(np.max(np.abs(s_r - s_s)), abs=1e-12)


def test_rmst_hand_example():
    # t = 1..5, events 1 0 1 1 0, tau = 4.5. KM: S = 0.8 from 1, 8/15 from 3, 4/15 from 4.
    # RMST = 1 + 0.8*2 + (8/15)*1 + (4/15)*0.5 = 49/15.
    # A_j = area from t_j to tau: A_1 = 34/15, A_3 = 2/3, A_4 = 2/15;
    # Var = A_1^2/(5*4) + A_3^2/(3*2) + A_4^2/(2*1) = 0.3398519 (Klein & Moeschberger 4.5).
    est, se = rmst([1, 2, 3, 4, 5], [1, 0, 1, 1, 0], 4.5)
    assert est == pytest.approx(49 / 15)
    var = (34 / 15) ** 2 / 20 + (2 / 3) ** 2 / 6 + (2 / 15) ** 2 / 2
    assert se == pytest.approx(np.sqrt(var))


def test_rmst_matches_lifelines_and_uncensored_identity():
    rng = np.random.default_rng(9)
    t, c = rng.exponential(1, 500), rng.uniform(0, 4, 500)
    tt, ee = np.minimum(t, c), (t <= c).astype(int)
    est, _ = rmst(tt, ee, 2.0)
    assert est == pytest.approx(restricted_mean_survival_time(KaplanMeierFitter().fit(tt, ee), t=2.0), rel=1e-12)
    # No censoring: the KM is the empirical CDF, RMST = mean(min(T, tau)) and the
    # delta-method variance reduces exactly to var(min(T, tau)) / n with ddof 0.
    # (lifelines' return_variance is the variance of min(T, tau), not of the estimate.)
    y = np.minimum(t, 2.0)
    est, se = rmst(t, np.ones(500), 2.0)
    assert est == pytest.approx(y.mean(), rel=1e-12)
    assert se**2 == pytest.approx(y.var() / 500, rel=1e-10)


def test_rmst_se_matches_monte_carlo_spread():
    # 1000 censored samples of n = 200: the sd of the estimates is known to ~2.2%
    # (1/sqrt(2*999)); the mean se must agree within 10% (~4.5 of those).
    rng = np.random.default_rng(0)
    est, ses = [], []
    for _ in range(1000):
        t, c = rng.exponential(1, 200), rng.uniform(0, 4, 200)
        m, s = rmst(np.minimum(t, c), (t <= c).astype(int), 2.0)
        est.append(m)
        ses.append(s)
    assert np.mean(ses) / np.std(est, ddof=1) == pytest.approx(1.0, abs=0.10)
    assert np.mean(est) == pytest.approx(1 - np.exp(-2), abs=0.005)  # true RMST; se of mean 0.0016


def test_rmst_refuses_tau_beyond_follow_up():
    with pytest.raises(ValueError, match="tau"):
        rmst([1, 2, 3], [1, 0, 0], 5.0)
    assert rmst([1, 2, 3], [1, 1, 1], 5.0)[0] == pytest.approx(2.0)  # curve at 0: area is defined
    with pytest.raises(ValueError, match="event"):
        rmst([1, 2, 3], [1, 2, 0], 2.0)


def _exp_sample(n, hazard, rng):
    t, c = rng.exponential(1 / hazard, n), rng.uniform(0, 6, n)
    return np.minimum(t, c), (t <= c).astype(int)


def test_rmst_tost_equivalence_and_its_failure():
    # tau = 2, margin = 10% of tau = 0.2. Same exponential (hazard 1): difference ~0,
    # se ~0.022, 90% CI half-width ~0.036 << 0.2. Hazard ratio 1.5: true difference
    # (1 - e^-3)/1.5 - (1 - e^-2) = -0.231, beyond the margin; declaring equivalence
    # would need an estimate > -0.164, ~3 se away.
    rng = np.random.default_rng(2024)
    tr, er = _exp_sample(2000, 1.0, rng)
    same = rmst_tost(tr, er, tr, er, tau=2.0, margin=0.2)
    assert same["difference"] == 0.0 and same["equivalent"]
    ts, es = _exp_sample(2000, 1.0, rng)
    indep = rmst_tost(tr, er, ts, es, tau=2.0, margin=0.2)
    assert indep["equivalent"] and indep["p_value"] < 1e-6
    th, eh = _exp_sample(2000, 1.5, rng)
    hr = rmst_tost(tr, er, th, eh, tau=2.0, margin=0.2)
    assert not hr["equivalent"]
    assert hr["difference"] == pytest.approx((1 - np.exp(-3)) / 1.5 - (1 - np.exp(-2)), abs=4 * hr["se"])
    # the p-values are the normal one-sided tests of the stated difference and se
    d, se = hr["difference"], hr["se"]
    assert se == pytest.approx(np.hypot(hr["se_real"], hr["se_synthetic"]))
    assert hr["p_lower"] == pytest.approx(1 - stats.norm.cdf((d + 0.2) / se))
    assert hr["p_upper"] == pytest.approx(stats.norm.cdf((d - 0.2) / se))
    assert hr["p_value"] == max(hr["p_lower"], hr["p_upper"])


def test_rmst_tost_verdict_equals_ci_inside_margin():
    # TOST at alpha <=> the (1 - 2 alpha) CI lies inside (-margin, margin) (Schuirmann 1987)
    rng = np.random.default_rng(1)
    tr, er = _exp_sample(300, 1.0, rng)
    ts, es = _exp_sample(300, 1.2, rng)
    for margin in np.linspace(0.02, 0.4, 39):
        r = rmst_tost(tr, er, ts, es, tau=2.0, margin=margin)
        assert r["equivalent"] == (-margin < r["ci_lower"] and r["ci_upper"] < margin)
        assert r["ci_upper"] - r["ci_lower"] == pytest.approx(2 * stats.norm.ppf(0.95) * r["se"])


# ---------------------------------------------------------------------- calibration
def test_calibration_continuous_matches_linregress():
    rng = np.random.default_rng(4)
    p = rng.normal(10, 2, 300)
    y = 1 + 0.8 * p + rng.normal(0, 1, 300)
    c = calibration(y, p, "continuous")
    ref = stats.linregress(p, y)
    assert c["slope"] == pytest.approx(ref.slope) and c["intercept"] == pytest.approx(ref.intercept)
    assert c["r_squared"] == pytest.approx(ref.rvalue**2)
    assert c["calibration_in_the_large"] == pytest.approx(np.mean(y - p))
    t = c["table"]
    assert len(t) == 10 and t["n"].sum() == 300 and (t["n"] == 30).all()
    assert t["mean_predicted"].is_monotonic_increasing


def test_calibration_binary_matches_sklearn_and_offset_model():
    rng = np.random.default_rng(8)
    p = rng.uniform(0.05, 0.95, 800)
    y = rng.binomial(1, expit(0.3 + 0.7 * logit(p)))
    c = calibration(y, p, "binary")
    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit(p)[:, None], y)
    assert c["slope"] == pytest.approx(ref.coef_[0, 0], abs=1e-5)
    assert c["intercept"] == pytest.approx(ref.intercept_[0], abs=1e-5)
    # calibration-in-the-large solves the offset model's score equation sum(y - expit(a + logit p)) = 0
    a = c["calibration_in_the_large"]
    assert np.sum(y - expit(a + logit(p))) == pytest.approx(0.0, abs=1e-8)
    # constant prediction q: a = logit(ybar) - logit(q) in closed form
    q = np.full(800, 0.3)
    assert calibration(y, q, "binary")["calibration_in_the_large"] == pytest.approx(logit(y.mean()) - logit(0.3))
    assert np.isnan(calibration(y, q, "binary")["slope"])  # no spread in logit(p): slope undefined


def test_calibration_binary_well_calibrated_is_one_and_zero():
    # y ~ Bernoulli(p): slope 1 and intercepts 0 in expectation; with n = 20000 the
    # slope's se is ~0.03 and the intercept's ~0.02, so bands of 0.12 / 0.08 are ~4 se.
    rng = np.random.default_rng(12)
    p = rng.beta(2, 5, 20000)
    y = rng.binomial(1, p)
    c = calibration(y, p, "binary")
    assert c["slope"] == pytest.approx(1, abs=0.12)
    assert c["calibration_in_the_large"] == pytest.approx(0, abs=0.08)
    t = c["table"]
    assert len(t) == 10 and t["n"].sum() == 20000
    # binned observed rates track the predictions within 4 binomial se
    m = t["mean_predicted"]
    assert np.all(np.abs(t["observed"] - m) < 4 * np.sqrt(m * (1 - m) / t["n"]))


def test_calibration_table_groups_as_pandas_qcut_with_ties():
    # predictions rounded to 0.1: many ties, so some decile edges coincide and merge
    rng = np.random.default_rng(13)
    p = np.round(rng.uniform(size=1000), 1)
    y = rng.normal(p, 1)
    t = calibration(y, p, "continuous")["table"]
    g = pd.DataFrame({"bin": pd.qcut(p, 10, labels=False, duplicates="drop"), "p": p, "y": y}).groupby("bin")
    np.testing.assert_allclose(t["mean_predicted"], g["p"].mean())
    np.testing.assert_allclose(t["observed"], g["y"].mean())
    np.testing.assert_array_equal(t["n"], g.size())
    np.testing.assert_allclose(t["observed_se"], g["y"].std(ddof=1) / np.sqrt(g.size()))


def test_calibration_input_errors():
    with pytest.raises(ValueError, match="kind"):
        calibration([0, 1, 1], [0.2, 0.5, 0.7], "poisson")
    with pytest.raises(ValueError, match="predicted"):
        calibration([0, 1, 1], [0.2, 1.5, 0.7], "binary")
    with pytest.raises(ValueError, match="one outcome class"):
        calibration([1, 1, 1], [0.2, 0.5, 0.7], "binary")
    with pytest.raises(ValueError, match="length"):
        calibration([1, 0, 1], [0.2, 0.5], "binary")


# ---------------------------------------------------------------------- concordance
def test_concordance_hand_example():
    # times 1..5, events 1 1 0 1 0, risk scores 5 3 4 2 2.
    # comparable pairs (i has the event, j lives longer): from t=1: 4 pairs, all
    # concordant (5 > 3, 4, 2, 2); from t=2: 3 pairs, 3 < 4 discordant, 3 > 2 twice;
    # from t=4: 1 pair tied (2 = 2) counts 1/2. C = (4 + 2 + 0.5) / 8 = 0.8125.
    c = concordance([1, 2, 3, 4, 5], [5, 3, 4, 2, 2], event=[1, 1, 0, 1, 0])
    assert c == pytest.approx(0.8125)
    # a censored subject at the same time as a death outlives it; two deaths at one time do not compare
    assert concordance([1, 1], [2, 1], event=[1, 0]) == 1.0
    with pytest.raises(ValueError, match="comparable"):
        concordance([1, 1], [2, 1], event=[1, 1])


def test_concordance_matches_lifelines_with_ties():
    rng = np.random.default_rng(6)
    n = 400
    t = rng.integers(1, 15, n).astype(float)  # many tied times
    e = rng.integers(0, 2, n)
    s = rng.integers(0, 6, n).astype(float)  # many tied scores
    # lifelines takes predicted survival times (higher = longer): pass -risk
    assert concordance(t, s, event=e) == pytest.approx(concordance_index(t, -s, e), abs=1e-12)


def test_concordance_binary_is_roc_auc():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y * 0.5, 1), 1)  # rounded: ties across classes
    assert concordance(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(ValueError, match="0/1"):
        concordance([0, 1, 2], [0.1, 0.2, 0.3])


def test_concordance_is_fast_at_n_3000():
    # ~5 million comparable pairs; the chunked kernel takes ~20 ms here, the bound is 1 s
    rng = np.random.default_rng(0)
    t, e, s = rng.exponential(1, 3000), rng.integers(0, 2, 3000), rng.normal(size=3000)
    start = time.perf_counter()
    c = concordance(t, s, event=e)
    assert time.perf_counter() - start < 1.0
    assert c == pytest.approx(concordance_index(t, -s, e), abs=1e-12)


def test_interval_coverage():
    # 3 of 4 observations inside (ends count as inside), the last above its interval
    assert interval_coverage([1, 2, 3, 4], [0, 2, 2, 0], [2, 3, 3, 3]) == 0.75
    with pytest.raises(ValueError, match="lower > upper"):
        interval_coverage([1, 2], [0, 3], [2, 2])
