"""Checks of the external / synthetic control kernels (`trials.external`); no MCMC.

References: scikit-learn's unpenalised logistic regression (C = inf, Newton-Cholesky),
`numpy.cov` with analytic weights, `scipy.integrate.quad`, closed-form conjugate
posteriors, and closed-form (normal) or exactly enumerated (binary) type I errors.

Simulation checks use fixed seeds and a Monte Carlo (MC) tolerance of 3 standard errors
(two-sided p = 0.0027 per comparison for a correct kernel), each se stated where used.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.linear_model import LogisticRegression

from insilico.trials import external as ex

Z_MC = 3.0


def _covariates(rng, shape, age_mean, p_female):
    """(…, 2) covariates: standardised age ~ N(age_mean, 1) and a female indicator."""
    age = age_mean + rng.standard_normal(shape)
    female = (rng.random(shape) < p_female).astype(float)
    return np.stack([age, female], axis=-1)


# ---------------------------------------------------------------------- propensity score
def test_batched_logistic_fit_equals_sklearn_per_replicate():
    """Coefficients and external-patient scores equal sklearn's unpenalised fit (1e-6).

    The 1e-8 slope ridge moves the estimates by ~1e-10 here; both fits converge to
    ~1e-12, so 1e-6 leaves room only for a wrong likelihood or a wrong design.
    """
    rng = np.random.default_rng(101)
    R, n_t, n_e = 8, 80, 150
    Xt = np.concatenate([_covariates(rng, (R, n_t), 0.0, 0.5), rng.gamma(2.0, 1.0, (R, n_t, 1))], axis=2)
    Xe = np.concatenate([_covariates(rng, (R, n_e), -0.6, 0.3), rng.gamma(3.0, 1.0, (R, n_e, 1))], axis=2)
    design = np.concatenate([np.ones((R, n_t + n_e, 1)), np.concatenate([Xt, Xe], axis=1)], axis=2)
    z = np.r_[np.ones(n_t), np.zeros(n_e)]

    coef, converged, n_iter = ex.logistic_irls(design, z)
    ps, ok = ex.propensity_scores(Xt, Xe)
    assert converged.all() and ok.all() and n_iter.max() < 25
    for r in range(R):
        ref = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-14, max_iter=1000)
        ref.fit(design[r, :, 1:], z)
        np.testing.assert_allclose(coef[r], np.r_[ref.intercept_, ref.coef_[0]], rtol=0, atol=1e-6)
        np.testing.assert_allclose(ps[r], ref.predict_proba(Xe[r])[:, 1], rtol=0, atol=1e-6)


def test_complete_separation_is_flagged_and_stays_finite():
    """Separated groups: the ridge keeps the fit finite, the flag says it did not converge."""
    rng = np.random.default_rng(102)
    Xt = rng.normal(2.0, 0.3, (2, 40, 1))
    Xe = rng.normal(-2.0, 0.3, (2, 40, 1))
    Xe[1] = rng.normal(2.0, 0.3, (40, 1))  # replicate 1 overlaps completely
    ps, ok = ex.propensity_scores(Xt, Xe)
    assert ok.tolist() == [False, True]
    assert np.all(np.isfinite(ps)) and ps[0].max() < 1e-6


# ---------------------------------------------------------------------- weights and balance
def test_att_weights_with_identical_populations_keep_kish_ess_near_n_ext():
    """Same covariate distribution: true odds are constant, so ESS/n_ext is 1 - O(p/n).

    Measured mean ratio 0.981, minimum 0.905 (R = 400, n = 200 + 200, two covariates);
    the bound 0.97 on the mean is 'within a few %', and the ratio can never exceed 1.
    """
    rng = np.random.default_rng(103)
    R, n_t, n_e = 400, 200, 200
    Xt, Xe = _covariates(rng, (R, n_t), 0.0, 0.5), _covariates(rng, (R, n_e), 0.0, 0.5)
    ps, ok = ex.propensity_scores(Xt, Xe)
    w, ess = ex.att_weights(ps)
    assert ok.all()
    np.testing.assert_allclose(w.sum(axis=1), n_e, rtol=1e-12)
    ratio = ess / n_e
    assert 0.97 < ratio.mean() <= 1.0, ratio.mean()
    assert ratio.min() > 0.85 and ratio.max() <= 1.0 + 1e-12


def test_att_weights_formula_normalisation_and_truncation():
    """w ∝ ps / (1 - ps) summing to n_ext; truncation caps the odds at their quantile."""
    rng = np.random.default_rng(104)
    ps = rng.beta(2, 5, (3, 50))
    w, ess = ex.att_weights(ps)
    odds = ps / (1 - ps)
    np.testing.assert_allclose(w, 50 * odds / odds.sum(axis=1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(ess, w.sum(axis=1) ** 2 / (w**2).sum(axis=1), rtol=1e-13)

    wt, ess_t = ex.att_weights(ps, truncate=0.9)
    cap = np.quantile(odds, 0.9, axis=1, keepdims=True)
    capped = np.minimum(odds, cap)
    np.testing.assert_allclose(wt, 50 * capped / capped.sum(axis=1, keepdims=True), rtol=1e-13)
    assert np.all(ess_t >= ess)  # capping the largest weights can only raise the ESS
    np.testing.assert_array_equal(ex.att_weights(ps, truncate=1.0)[0], w)


def test_balance_equals_numpy_weighted_moments():
    """SMD with the pooled unweighted sd; VR from numpy.cov with analytic weights."""
    rng = np.random.default_rng(105)
    Xt, Xe = _covariates(rng, (2, 60), 0.0, 0.5), _covariates(rng, (2, 90), -0.4, 0.3)
    w = rng.gamma(2.0, 1.0, (2, 90))
    out = ex.balance(Xt, Xe, w)
    for r in range(2):
        for j in range(2):
            xt, xe = Xt[r, :, j], Xe[r, :, j]
            pooled = np.sqrt((xt.var(ddof=1) + xe.var(ddof=1)) / 2)
            smd = (xt.mean() - np.average(xe, weights=w[r])) / pooled
            vr = np.cov(xe, aweights=w[r], ddof=1) / xt.var(ddof=1)
            assert out["smd"][r, j] == pytest.approx(smd, rel=1e-12)
            assert out["variance_ratio"][r, j] == pytest.approx(vr, rel=1e-12)
    raw = ex.balance(Xt, Xe)
    np.testing.assert_allclose(raw["variance_ratio"], Xe.var(axis=1, ddof=1) / Xt.var(axis=1, ddof=1), rtol=1e-12)


def test_confounded_external_controls_naive_biased_att_weighted_unbiased():
    """External age shifted by -0.5 sd and fewer women; the outcome depends on both.

    Truth: delta = 0.3 in the trial population. The naive difference is biased by
    b_age * 0.5 + b_female * (0.5 - 0.35) = 0.575; the ATT-weighted difference (correct
    logistic PS model: normal age with equal variance, binary sex) is unbiased. MC se of
    a mean estimate = sd(estimates) / sqrt(R). Measured (R = 2000): naive bias 0.572
    (se 0.0036), weighted bias -0.0043 (se 0.0028); raw SMD 0.50 (age) and 0.31 (sex),
    weighted mean |SMD| 0.026 and 0.016, weighted variance ratios 1.02 and 0.99.

    Standard errors: the M-estimation sandwich (default) has mean 0.127 against an
    empirical sd of 0.125 and 95% coverage 0.957; the Hajek se that holds the weights
    fixed is conservative here (mean 0.179, coverage 0.994).
    """
    rng = np.random.default_rng(106)
    R, n, m = 2000, 100, 300
    delta, b_age, b_female = 0.3, 1.0, 0.5
    X, Xe = _covariates(rng, (R, n), 0.0, 0.5), _covariates(rng, (R, m), -0.5, 0.35)
    y = 1 + delta + b_age * X[..., 0] + b_female * X[..., 1] + rng.standard_normal((R, n))
    y_ext = 1 + b_age * Xe[..., 0] + b_female * Xe[..., 1] + rng.standard_normal((R, m))

    naive = ex.external_normal(y, y_ext, weights=np.ones(m))
    att = ex.external_normal(y, y_ext, X, Xe)
    hajek = ex.external_normal(y, y_ext, X, Xe, se="hajek")
    assert att["ps_converged"].all()

    def bias_and_se(est):
        return est.mean() - delta, est.std(ddof=1) / np.sqrt(R)

    bias_naive, se_naive = bias_and_se(naive["estimate"])
    bias_att, se_att = bias_and_se(att["estimate"])
    assert abs(bias_naive - 0.575) < Z_MC * se_naive, (bias_naive, se_naive)
    assert bias_naive > 50 * se_naive
    assert abs(bias_att) < Z_MC * se_att, (bias_att, se_att)
    np.testing.assert_array_equal(hajek["estimate"], att["estimate"])

    # sandwich se against the empirical sd: the sd's own MC relative se is 1/sqrt(2(R-1))
    sd_emp = att["estimate"].std(ddof=1)
    assert abs(att["std_error"].mean() / sd_emp - 1) < Z_MC / np.sqrt(2 * (R - 1))
    # coverage: binomial MC se sqrt(0.95 * 0.05 / R) = 0.0049
    cover_se = np.sqrt(0.95 * 0.05 / R)
    coverage = np.mean((att["lower"] < delta) & (delta < att["upper"]))
    coverage_hajek = np.mean((hajek["lower"] < delta) & (delta < hajek["upper"]))
    assert abs(coverage - 0.95) < Z_MC * cover_se, coverage
    assert coverage_hajek > 0.95 - Z_MC * cover_se, coverage_hajek

    # balance: SMD per replicate has sd ~ sqrt(1/n + 1/m) = 0.115, so the mean over R
    # replicates is within 0.01 of the population value (0.5 for age, 0.31 for sex)
    ps, _ = ex.propensity_scores(X, Xe)
    w, _ = ex.att_weights(ps)
    raw, weighted = ex.balance(X, Xe), ex.balance(X, Xe, w)
    pop_smd = np.array([0.5, 0.15 / np.sqrt((0.25 + 0.35 * 0.65) / 2)])
    np.testing.assert_allclose(raw["smd"].mean(axis=0), pop_smd, atol=0.02)
    assert np.all(np.abs(weighted["smd"]).mean(axis=0) < 0.1)
    assert np.all((weighted["variance_ratio"].mean(axis=0) > 0.5) & (weighted["variance_ratio"].mean(axis=0) < 2))


# ---------------------------------------------------------------------- power priors
@pytest.fixture
def hybrid_data():
    rng = np.random.default_rng(107)
    R, n_c, n_t, m = 50, 30, 40, 60
    arm = np.r_[np.zeros(n_c), np.ones(n_t)].astype(np.int8)
    y = rng.normal(0.0, 1.3, (R, n_c + n_t)) + 0.4 * arm
    y_ext = rng.normal(0.2, 1.3, (R, m))
    w = rng.gamma(2.0, 0.5, (R, m))
    yb = (rng.random((R, n_c + n_t)) < 0.3 + 0.2 * arm).astype(np.int8)
    yb_ext = (rng.random((R, m)) < 0.35).astype(np.int8)
    return {"arm": arm, "y": y, "y_ext": y_ext, "w": w, "yb": yb, "yb_ext": yb_ext, "n_c": n_c, "n_t": n_t}


def test_weighted_power_prior_moments_and_ess(hybrid_data):
    """Normal: mean Σwy/Σw, variance σ²/(a0 Σw); beta: 1 + a0 Σwy, 1 + a0 Σw(1-y); ESS a0 Σw."""
    d = hybrid_data
    w, a0, sigma = d["w"], 0.7, 1.3
    pn = ex.weighted_power_prior_normal(d["y_ext"], w, a0, sigma)
    np.testing.assert_allclose(pn["mean"], (w * d["y_ext"]).sum(1) / w.sum(1), rtol=1e-13)
    np.testing.assert_allclose(pn["variance"], sigma**2 / (a0 * w.sum(1)), rtol=1e-13)
    np.testing.assert_allclose(pn["ess"], a0 * w.sum(1), rtol=1e-13)
    pb = ex.weighted_power_prior_binary(d["yb_ext"], w, a0)
    np.testing.assert_allclose(pb["alpha"], 1 + a0 * (w * d["yb_ext"]).sum(1), rtol=1e-13)
    np.testing.assert_allclose(pb["beta"], 1 + a0 * (w * (1 - d["yb_ext"])).sum(1), rtol=1e-13)
    np.testing.assert_allclose(pb["ess"], a0 * w.sum(1), rtol=1e-13)

    # the hybrid posterior mean of mu_c is the weighted least-squares mean of both sources
    res = ex.hybrid_normal(d["y"], d["arm"], d["y_ext"], a0=a0, sigma=sigma, weights=w)
    c = d["y"][:, d["arm"] == 0]
    mu_c = (c.sum(1) + a0 * (w * d["y_ext"]).sum(1)) / (d["n_c"] + a0 * w.sum(1))
    np.testing.assert_allclose(res["estimate"], d["y"][:, d["arm"] == 1].mean(1) - mu_c, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["prior_ess"], a0 * w.sum(1), rtol=1e-13)


def test_a0_zero_reproduces_the_analysis_without_borrowing_exactly(hybrid_data):
    """a0 = 0: flat-prior normal and Beta(1, 1) binary posteriors of the current trial, bit for bit."""
    d = hybrid_data
    arm, sigma = d["arm"], 1.3
    t, c = d["y"][:, arm == 1], d["y"][:, arm == 0]
    res = ex.hybrid_normal(d["y"], arm, d["y_ext"], a0=0.0, sigma=sigma, weights=d["w"])
    est = t.mean(1) - c.mean(1)
    sd = np.sqrt(sigma**2 / d["n_t"] + sigma**2 / d["n_c"])
    np.testing.assert_array_equal(res["estimate"], est)
    np.testing.assert_array_equal(res["std_error"], sd)
    np.testing.assert_array_equal(res["posterior_prob"], stats.norm.cdf(est / sd))
    np.testing.assert_array_equal(res["prior_ess"], 0.0)
    # and nothing about the external data matters
    other = ex.hybrid_normal(d["y"], arm, d["y_ext"] + 5.0, a0=0.0, sigma=sigma, weights=2 * d["w"])
    for key in ("estimate", "std_error", "lower", "upper", "p_value", "decision", "posterior_prob"):
        np.testing.assert_array_equal(other[key], res[key])

    tb, cb = d["yb"][:, arm == 1], d["yb"][:, arm == 0]
    rb = ex.hybrid_binary(d["yb"], arm, d["yb_ext"], a0=0.0, weights=d["w"])
    st, sc = tb.sum(1), cb.sum(1)
    ref = ex.prob_beta_greater(1.0 + st, 1.0 + d["n_t"] - st, 1.0 + sc, 1.0 + d["n_c"] - sc)
    np.testing.assert_array_equal(rb["posterior_prob"], ref)
    np.testing.assert_array_equal(rb["estimate"], (1 + st) / (d["n_t"] + 2) - (1 + sc) / (d["n_c"] + 2))


def test_a0_one_with_unit_weights_is_pooling(hybrid_data):
    """a0 = 1, w = 1: the control posterior is that of the pooled controls (1e-12)."""
    d = hybrid_data
    arm, sigma, m = d["arm"], 1.3, d["y_ext"].shape[1]
    res = ex.hybrid_normal(d["y"], arm, d["y_ext"], a0=1.0, sigma=sigma, weights=np.ones(m))
    pooled = np.concatenate([d["y"][:, arm == 0], d["y_ext"]], axis=1)
    np.testing.assert_allclose(res["estimate"], d["y"][:, arm == 1].mean(1) - pooled.mean(1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["std_error"], np.sqrt(sigma**2 / d["n_t"] + sigma**2 / (d["n_c"] + m)),
                               rtol=1e-12)
    np.testing.assert_allclose(res["prior_ess"], m, rtol=1e-15)

    rb = ex.hybrid_binary(d["yb"], arm, d["yb_ext"], a0=1.0, weights=np.ones(m))
    pooled_b = np.concatenate([d["yb"][:, arm == 0], d["yb_ext"]], axis=1)
    s_c, n_c = pooled_b.sum(1), pooled_b.shape[1]
    s_t = d["yb"][:, arm == 1].sum(1)
    np.testing.assert_allclose(rb["estimate"], (1 + s_t) / (d["n_t"] + 2) - (1 + s_c) / (n_c + 2), rtol=0, atol=1e-12)
    ref = ex.prob_beta_greater(1.0 + s_t, 1.0 + d["n_t"] - s_t, 1.0 + s_c, 1.0 + n_c - s_c)
    np.testing.assert_allclose(rb["posterior_prob"], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [
    (11, 41, 6, 46), (1, 101, 1.2, 51), (51, 1.2, 41, 11), (200.5, 300, 20, 30), (1, 1, 300, 200),
    (3, 400, 1, 300), (1.05, 1.0, 1.3, 80.7), (500, 500, 480, 520), (1.01, 1.01, 1.3, 1.7),
    (1.001, 3000, 1.3, 2000), (5000, 5000, 4900, 5100),
])
def test_prob_beta_greater_matches_adaptive_quadrature(params):
    """Fixed 64-node Gauss-Legendre (arcsine variable) vs adaptive quad: |diff| < 1e-7.

    Worst measured difference 1.8e-8 (Beta(51, 1.2), a fractional shape next to 1);
    most cases agree to ~1e-13. quad is run at epsabs 1e-14 on the original scale.
    """
    a1, b1, a2, b2 = params

    def integrand(x):
        return stats.beta.pdf(x, a1, b1) * stats.beta.cdf(x, a2, b2)

    ref, _ = integrate.quad(integrand, 0, 1, epsabs=1e-14, epsrel=1e-13, limit=1000)
    got = ex.prob_beta_greater(a1, b1, a2, b2)
    assert abs(got - ref) < 1e-7, (got, ref)
    assert abs(got + ex.prob_beta_greater(a2, b2, a1, b1) - 1) < 1e-7


# ---------------------------------------------------------------------- operating characteristics
def test_hybrid_normal_type_one_error_matches_closed_form_and_inflates_under_drift():
    """Type I error of the a0 = 0.5 hybrid design vs its closed form, with and without drift.

    Given the covariates (hence the ATT weights w), the outcomes do not depend on them
    here, so the posterior mean of delta is exactly normal with mean k * (-drift) and
    variance sigma^2 (1/n_t + (1-k)^2/n_c + k^2 Σw²/(Σw)²), k = E/(n_c + E), E = a0 Σw.
    The design declares success when that mean exceeds z_{0.975} times the posterior
    sd, so Pr(success | X) is a normal tail; its average over the simulated covariates
    is the reference. MC se of a rejection rate: sqrt(p (1 - p) / R).
    Measured (R = 10000, prior ESS 50): no drift 0.0190 vs 0.0204 (se 0.0014); external
    controls 0.3 sd lower 0.1283 vs 0.1268 (inflated); 0.3 sd higher 0.0012 vs 0.0016.
    """
    rng = np.random.default_rng(108)
    R, n_c, n_t, m = 10_000, 50, 50, 100
    a0, sigma, alpha = 0.5, 1.0, 0.025
    arm = np.r_[np.zeros(n_c), np.ones(n_t)].astype(np.int8)
    X, Xe = rng.standard_normal((R, n_c + n_t, 1)), rng.standard_normal((R, m, 1))
    y = sigma * rng.standard_normal((R, n_c + n_t))
    noise_ext = sigma * rng.standard_normal((R, m))

    res0 = ex.hybrid_normal(y, arm, noise_ext, X, Xe, a0=a0, sigma=sigma, alpha=alpha)
    assert res0["ps_converged"].all()
    w, _ = ex.att_weights(ex.propensity_scores(X, Xe)[0])
    E = a0 * w.sum(1)
    np.testing.assert_allclose(res0["prior_ess"], E, rtol=1e-12)
    k = E / (n_c + E)
    sd_post = sigma * np.sqrt(1 / n_t + 1 / (n_c + E))
    sd_freq = sigma * np.sqrt(1 / n_t + (1 - k) ** 2 / n_c + k**2 * (w**2).sum(1) / w.sum(1) ** 2)
    z = stats.norm.ppf(1 - alpha)

    rates = {}
    for drift in (0.0, -0.3, 0.3):
        res = res0 if drift == 0 else ex.hybrid_normal(y, arm, noise_ext + drift, a0=a0, sigma=sigma,
                                                      alpha=alpha, weights=w)
        expected = stats.norm.sf((z * sd_post + k * drift) / sd_freq).mean()
        rate = res["decision"].mean()
        se = np.sqrt(expected * (1 - expected) / R)
        assert abs(rate - expected) < Z_MC * se, (drift, rate, expected, se)
        rates[drift] = (rate, se)
        np.testing.assert_array_equal(res["decision"], (res["posterior_prob"] > 1 - alpha).astype(np.int8))
    # no drift: a0 < 1 discounting makes the design conservative (below the nominal 0.025)
    assert rates[0.0][0] < alpha
    # external controls lower than the current ones: type I error inflates well above nominal
    assert rates[-0.3][0] > alpha + Z_MC * rates[-0.3][1]
    assert rates[-0.3][0] > rates[0.0][0] + Z_MC * (rates[-0.3][1] + rates[0.0][1])
    assert rates[0.3][0] < rates[0.0][0]


def test_hybrid_binary_type_one_error_matches_exact_enumeration():
    """Binary hybrid (a0 = 0.5, unit weights) under the null p = 0.3 everywhere.

    The decision is a function of the responder counts (s_t, s_c, s_e) alone, so the
    exact type I error is a sum of binomial probabilities over all 21 x 21 x 41
    outcomes. MC se sqrt(p (1 - p) / R). Measured (R = 4000): 0.0220 vs exact 0.0204
    (se 0.0022).
    """
    rng = np.random.default_rng(109)
    R, n_c, n_t, m, p, a0, alpha = 4000, 20, 20, 40, 0.3, 0.5, 0.025
    arm = np.r_[np.zeros(n_c), np.ones(n_t)].astype(np.int8)
    y = (rng.random((R, n_c + n_t)) < p).astype(np.int8)
    y_ext = (rng.random((R, m)) < p).astype(np.int8)
    res = ex.hybrid_binary(y, arm, y_ext, a0=a0, alpha=alpha, weights=np.ones(m))

    st, sc, se_ = np.meshgrid(np.arange(n_t + 1), np.arange(n_c + 1), np.arange(m + 1), indexing="ij")
    prob = ex.prob_beta_greater(1.0 + st, 1.0 + n_t - st, 1.0 + a0 * se_ + sc, 1.0 + a0 * (m - se_) + n_c - sc)
    pmf = stats.binom.pmf(st, n_t, p) * stats.binom.pmf(sc, n_c, p) * stats.binom.pmf(se_, m, p)
    exact = float((pmf * (prob > 1 - alpha)).sum())
    rate = res["decision"].mean()
    mcse = np.sqrt(exact * (1 - exact) / R)
    assert abs(rate - exact) < Z_MC * mcse, (rate, exact, mcse)


# ---------------------------------------------------------------------- input checks
def test_bad_inputs_raise_with_the_argument_named():
    rng = np.random.default_rng(110)
    with pytest.raises(ValueError, match="X_trial .* must share R and p"):
        ex.propensity_scores(rng.standard_normal((2, 10, 2)), rng.standard_normal((2, 10, 3)))
    with pytest.raises(ValueError, match="ps must be finite probabilities"):
        ex.att_weights(np.array([0.2, 1.5]))
    with pytest.raises(ValueError, match="truncate"):
        ex.att_weights(np.array([0.2, 0.5]), truncate=0.0)
    with pytest.raises(ValueError, match="a0 must be finite and >= 0"):
        ex.weighted_power_prior_binary(np.array([0, 1]), None, -0.1)
    with pytest.raises(ValueError, match="give the covariates X and X_ext"):
        ex.hybrid_normal(np.zeros((1, 4)), np.array([0, 0, 1, 1]), np.zeros((1, 3)), a0=0.5, sigma=1.0)
    with pytest.raises(ValueError, match="se must be"):
        ex.external_normal(np.zeros((1, 4)), np.zeros((1, 3)), weights=np.ones(3), se="robust")
