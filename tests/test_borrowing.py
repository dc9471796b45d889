"""Tests of trials.borrowing against RBesT reference values and closed forms.

Reference numbers come from validation/reference/rbest_AS.json (RBesT 1.9-0, AS example; the R
calls are listed in validation/reference/rbest_AS.md).  Tolerances, and why:

* exact (analytic) RBesT values: 1e-4, widened to half a unit in the last printed digit
  where the JSON prints fewer digits than that (the reference's own rounding);
* effect needed for 80% power: 0.005 (RBesT's ``uniroot`` tolerance ~1.2e-4 plus 3-digit
  rounding; we use brentq to 1e-10);
* MCMC values: Monte Carlo tolerances derived in ``test_map_prior_binary_reference``.

Run ``python tests/test_borrowing.py`` for the per-replicate timing of the decision kernels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

import insilico.trials.borrowing as bw
from insilico.common.resources import REFERENCE, data_file
from insilico.trials.borrowing import (
    BetaMixture,
    GammaMixture,
    NormalMixture,
    auto_fit_mixture,
    calibrate_threshold,
    calibrate_threshold_exact,
    commensurate_prior_binary,
    commensurate_prior_normal,
    decision_boundary_binary,
    decision_table_binary,
    effect_for_power,
    ess,
    fit_beta_mixture,
    fit_normal_mixture,
    oc2s_binary,
    power_prior_binary,
    power_prior_ess,
    power_prior_normal,
    prob_diff_greater,
)
from insilico.trials.borrowing import difference as bd
from insilico.trials.borrowing import information as be
from insilico.trials.borrowing import quadrature as bq

REF_PATH = data_file(REFERENCE, "rbest_AS.json")
REF = json.loads(REF_PATH.read_text())


def ref_tol(value: float, floor: float = 1e-4) -> float:
    """1e-4, or half a unit in the last digit the JSON prints if that is coarser."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return max(floor, 0.5 * 10.0**-decimals)


@pytest.fixture(scope="module")
def map_prior() -> BetaMixture:
    return BetaMixture.from_components(REF["map_prior_mixture"]["components_w_a_b"])


@pytest.fixture(scope="module")
def robust_map(map_prior) -> BetaMixture:
    rob = REF["robust_prior"]
    return map_prior.robustify(rob["weight"], mean=0.5)


@pytest.fixture(scope="module")
def designs(map_prior, robust_map):
    # RBesT vignette: the "uniform" designs put Beta(1, 1) on both arms; the MAP designs
    # put Beta(0.5, 1) on treatment (the JSON's design block)
    uniform = BetaMixture(1.0, 1.0, 1.0)
    treat = BetaMixture(1.0, 0.5, 1.0)
    n_t, n_c = REF["design"]["n_treatment"], REF["design"]["n_control"]
    specs = {
        "uniform_24_vs_6": (uniform, uniform, n_t, n_c),
        "uniform_24_vs_24": (uniform, uniform, n_t, n_t),
        "map": (treat, map_prior, n_t, n_c),
        "robust_map": (treat, robust_map, n_t, n_c),
    }
    return {k: oc2s_binary(*v, threshold=0.95) for k, v in specs.items()}


# --------------------------------------------------------------------------------------
# RBesT reference values
# --------------------------------------------------------------------------------------


def test_map_mixture_moments(map_prior):
    ref = REF["map_prior_mixture"]
    assert float(map_prior.mean()) == pytest.approx(ref["mean"], abs=ref_tol(ref["mean"]))
    assert float(map_prior.sd()) == pytest.approx(ref["sd"], abs=ref_tol(ref["sd"]))


@pytest.mark.parametrize("method", ["elir", "moment", "morita"])
def test_ess_reference(map_prior, method):
    expected = REF["effective_sample_size"][method]
    # printed to 3 decimals: rounding alone allows 5e-4 (RBesT's integrate() tolerance is
    # looser still, but the values agree to the rounding)
    assert ess(map_prior, method) == pytest.approx(expected, abs=ref_tol(expected))


def test_robust_prior_ess(robust_map):
    ref = REF["robust_prior"]
    # the robust component is the uniform Beta(1, 1), last, with weight 0.2
    assert robust_map.weights[-1] == pytest.approx(0.2)
    assert (robust_map.a[-1], robust_map.b[-1]) == (1.0, 1.0)
    assert ess(robust_map, "elir") == pytest.approx(ref["ess_elir"], abs=ref_tol(ref["ess_elir"]))


def test_final_analysis(robust_map):
    ref = REF["final_analysis"]
    post_t = BetaMixture(1.0, 0.5, 1.0).posterior(14, 24)
    post_c = robust_map.posterior(1, 6)
    # JSON prints 7 decimals: rounding 5e-8; our quadrature error is < 1e-9
    assert float(prob_diff_greater(post_t, post_c, 0.0)) == pytest.approx(ref["prob_diff_gt_0"], abs=1e-7)


@pytest.mark.parametrize("design", ["uniform_24_vs_6", "uniform_24_vs_24", "map", "robust_map"])
def test_type_I_error_reference(designs, design):
    oc = designs[design]
    at = REF["type_I_error"]["at_theta_0_2555"][design]
    worst = REF["type_I_error"]["max_over_theta_0_1_to_0_5_at_0_5"][design]
    assert float(oc(0.2555, 0.2555)) == pytest.approx(at, abs=ref_tol(at))
    theta = np.round(np.arange(0.10, 0.50 + 1e-9, 0.01), 2)  # RBesT vignette grid, < 0.5 part
    t1 = oc(theta, theta)
    assert theta[np.argmax(t1)] == pytest.approx(0.5)
    assert float(t1.max()) == pytest.approx(worst, abs=ref_tol(worst))


@pytest.mark.parametrize(
    ("design", "key"),
    [
        ("map", "map_prior_24_vs_6"),
        ("uniform_24_vs_24", "uniform_prior_24_vs_24"),
        ("robust_map", "robust_map_24_vs_6"),
        ("uniform_24_vs_6", "uniform_prior_24_vs_6"),
    ],
)
def test_effect_needed_for_80pct_power(designs, map_prior, design, key):
    # the vignette adds the effect to mean_control = summary(map)["mean"] (0.2555), not to
    # the 0.25 of the JSON note (see validation/reference/rbest_AS.md)
    theta_c = float(map_prior.mean())
    d = effect_for_power(designs[design], theta_c, 0.8)
    assert d == pytest.approx(REF["effect_needed_for_80pct_power"][key], abs=0.005)
    assert float(designs[design](theta_c + d, theta_c)) == pytest.approx(0.8, abs=1e-9)


def test_decision_boundaries_match_vignette(designs):
    # vignette (24:6 designs): "decision always negative with fewer than 10 treatment
    # responders"; for the non-robust MAP, 15 treatment responders need <= 3 placebo ones
    for name in ("uniform_24_vs_6", "map", "robust_map"):
        assert np.all(designs[name].boundary[:10] == -1)
        assert designs[name].boundary[10] >= 0
    assert designs["map"].boundary[15] == 3
    assert designs["map"].boundary[14] == 3  # so (14, 4) is negative, as in the vignette


# --------------------------------------------------------------------------------------
# Conjugate updates
# --------------------------------------------------------------------------------------


def test_beta_single_component_textbook_update():
    post = BetaMixture(1.0, 2.5, 4.0).posterior(np.array([0, 3, 10]), 10)
    np.testing.assert_allclose(post.a[:, 0], [2.5, 5.5, 12.5])
    np.testing.assert_allclose(post.b[:, 0], [14.0, 11.0, 4.0])
    np.testing.assert_allclose(post.weights, 1.0)


def test_normal_single_component_textbook_update():
    prior = NormalMixture(1.0, 1.0, 2.0, sigma=4.0)
    post = prior.posterior(mean=np.array([0.0, 3.0]), n=16)  # se = 1
    prec = 1 / 4 + 1 / 1
    np.testing.assert_allclose(post.sds[:, 0], np.sqrt(1 / prec))
    np.testing.assert_allclose(post.means[:, 0], (np.array([1.0, 1.0]) / 4 + np.array([0.0, 3.0])) / prec)
    assert post.sigma == 4.0
    # n and se give the same posterior
    post_se = prior.posterior(mean=np.array([0.0, 3.0]), se=1.0)
    np.testing.assert_allclose(post_se.means, post.means)


def test_gamma_single_component_textbook_update():
    post = GammaMixture(1.0, 2.0, 0.5).posterior(events=np.array([0, 7]), exposure=np.array([3.0, 10.0]))
    np.testing.assert_allclose(post.shapes[:, 0], [2.0, 9.0])
    np.testing.assert_allclose(post.rates[:, 0], [3.5, 10.5])


def test_beta_mixture_posterior_weights_are_marginal_likelihood_ratios(robust_map):
    r = np.array([0, 1, 3, 6])
    n = 6
    post = robust_map.posterior(r, n)
    a, b, w = robust_map.a, robust_map.b, robust_map.weights
    # independent computation: w_k B(a_k + r, b_k + n - r) / B(a_k, b_k), renormalised
    lm = special.betaln(a + r[:, None], b + n - r[:, None]) - special.betaln(a, b)
    expected = w * np.exp(lm)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(post.weights, expected, rtol=1e-12)
    assert post.weights.shape == (4, robust_map.n_components)


def test_normal_and_gamma_posterior_weights():
    prior = NormalMixture([0.7, 0.3], [0.0, 2.0], [0.5, 3.0], sigma=2.0)
    ybar = np.array([-1.0, 0.5, 4.0])
    post = prior.posterior(ybar, n=8)
    se = 2.0 / np.sqrt(8)
    m = prior.weights * stats.norm.pdf(ybar[:, None], prior.means, np.sqrt(prior.sds**2 + se**2))
    np.testing.assert_allclose(post.weights, m / m.sum(axis=1, keepdims=True), rtol=1e-12)

    gprior = GammaMixture([0.6, 0.4], [2.0, 8.0], [1.0, 2.0])
    y, e = np.array([0, 5, 20]), np.array([1.0, 2.0, 3.0])
    gpost = gprior.posterior(y, e)
    # marginal of y is negative binomial with size a and p = b / (b + E)
    ml = stats.nbinom.pmf(y[:, None], gprior.shapes, gprior.rates / (gprior.rates + e[:, None]))
    m = gprior.weights * ml
    np.testing.assert_allclose(gpost.weights, m / m.sum(axis=1, keepdims=True), rtol=1e-10)


def test_posterior_batch_of_batch_and_indexing(map_prior):
    post = map_prior.posterior(np.array([[0, 1], [2, 3]]), 6)
    assert post.batch_shape == (2, 2)
    single = map_prior.posterior(2, 6)
    np.testing.assert_allclose(post[1][0].weights, single.weights)
    np.testing.assert_allclose(post[1][0].a, single.a)


# --------------------------------------------------------------------------------------
# Distribution functions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mix",
    [
        BetaMixture([0.3, 0.7], [2.0, 30.0], [5.0, 60.0]),
        NormalMixture([0.5, 0.5], [-1.0, 2.0], [0.5, 1.5]),
        GammaMixture([0.4, 0.6], [2.0, 30.0], [1.0, 10.0]),
    ],
)
def test_distribution_functions(mix):
    lo, hi = {BetaMixture: (0.0, 1.0), NormalMixture: (-20.0, 20.0), GammaMixture: (0.0, 80.0)}[type(mix)]
    total, _ = integrate.quad(lambda x: float(mix.pdf(x)), lo, hi, limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)
    mean, _ = integrate.quad(lambda x: x * float(mix.pdf(x)), lo, hi, limit=200)
    assert float(mix.mean()) == pytest.approx(mean, abs=1e-8)
    q = np.array([0.01, 0.3, 0.5, 0.975])
    np.testing.assert_allclose(mix.cdf(mix.quantile(q)), q, atol=1e-12)
    np.testing.assert_allclose(mix.logpdf(0.7), np.log(mix.pdf(0.7)))
    draws = mix.sample(200_000, np.random.default_rng(1))
    se = float(mix.sd()) / np.sqrt(draws.size)
    assert abs(draws.mean() - float(mix.mean())) < 4 * se  # 4 MC standard errors


def test_batched_sample_shape(map_prior):
    post = map_prior.posterior(np.arange(7), 6)
    x = post.sample(5, np.random.default_rng(0))
    assert x.shape == (7, 5)
    assert np.all((x > 0) & (x < 1))


def test_robustify_conventions():
    b = BetaMixture(1.0, 10.0, 30.0).robustify(0.2)
    np.testing.assert_allclose(b.weights, [0.8, 0.2])
    assert (b.a[-1], b.b[-1]) == (1.0, 1.0)  # RBesT: n + 1 = 2 pseudo-observations at 1/2
    b3 = BetaMixture(1.0, 10.0, 30.0).robustify(0.1, mean=0.25)
    assert (b3.a[-1], b3.b[-1]) == (0.5, 1.5)
    nm = NormalMixture(1.0, 3.0, 0.5, sigma=10.0).robustify(0.5, mean=0.0)
    assert (nm.means[-1], nm.sds[-1]) == (0.0, 10.0)  # unit information N(mean, sigma^2)
    gm = GammaMixture(1.0, 20.0, 4.0).robustify(0.3)
    assert (gm.shapes[-1], gm.rates[-1]) == (5.0, 1.0)  # Gamma(mean * 1, 1)
    with pytest.raises(ValueError, match="sigma"):
        NormalMixture(1.0, 3.0, 0.5).robustify(0.5)
    # batched posteriors robustify row by row, each at its own mean by default
    post = GammaMixture(1.0, 20.0, 4.0).posterior(np.array([0, 10]), 2.0)
    rob = post.robustify(0.1)
    np.testing.assert_allclose(rob.shapes[:, -1], post.mean())
    assert rob.batch_shape == (2,)


def test_validation_messages():
    with pytest.raises(ValueError, match="sum to 1"):
        BetaMixture([0.5, 0.6], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="a must be > 0"):
        BetaMixture(1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="0 <= r <= n"):
        BetaMixture(1.0, 1.0, 1.0).posterior(7, 6)
    with pytest.raises(ValueError, match="ELIR"):
        ess(BetaMixture(1.0, 0.5, 1.0), "elir")
    with pytest.raises(TypeError, match="same mixture family"):
        prob_diff_greater(BetaMixture(1.0, 1.0, 1.0), NormalMixture(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="exactly one of n or se"):
        NormalMixture(1.0, 0.0, 1.0, sigma=1.0).posterior(0.0)


# --------------------------------------------------------------------------------------
# ESS closed forms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"), [(5.0, 15.0), (2.0, 3.0), (30.0, 70.0), (1.5, 1.5), (1.01, 5.0), (1.0, 4.0)]
)
def test_single_beta_ess(a, b):
    prior = BetaMixture(1.0, a, b)
    # ELIR = E[(a-1)(1-x)/x + (b-1)x/(1-x)] = b + a for a, b > 1; at a = 1 the first term
    # is identically 0, leaving a = 1 (RBesT integrates the same function)
    assert ess(prior, "elir") == pytest.approx(a + b if a > 1 else a, rel=1e-9)
    assert ess(prior, "moment") == pytest.approx(a + b, rel=1e-12)
    if a > 1 and b > 1:
        # RBesT's Morita: at the mode m with flattened Beta(m/s, (1-m)/s); algebra gives
        # a + b - 1 / (s m (1 - m) E[i]),  E[i] = (a/m^2 + b/(1-m)^2) / (a+b): a+b up to ~1/s
        s = 100.0
        m = (a - 1) / (a + b - 2)
        e_info = (a / m**2 + b / (1 - m) ** 2) / (a + b)
        expected = a + b - 1 / (s * m * (1 - m) * e_info)
        got = ess(prior, "morita")
        assert got == pytest.approx(expected, rel=1e-9)
        assert abs(got - (a + b)) < 0.02


def test_single_normal_and_gamma_ess():
    prior = NormalMixture(1.0, 0.3, 2.0, sigma=10.0)
    assert ess(prior, "elir") == pytest.approx(25.0, rel=1e-9)  # sigma^2 / s^2
    assert ess(prior, "moment") == pytest.approx(25.0, rel=1e-12)
    assert ess(prior, "morita") == pytest.approx(25.0 * (1 - 1 / 100), rel=1e-9)  # flattened N(m, 100 s^2)
    g = GammaMixture(1.0, 20.0, 4.0)
    assert ess(g, "elir") == pytest.approx(4.0, rel=1e-9)  # the rate: exposure units
    assert ess(g, "moment") == pytest.approx(4.0, rel=1e-12)
    a, b, s = 20.0, 4.0, 100.0
    mode = (a - 1) / b
    assert ess(g, "morita") == pytest.approx(b * (a - mode / s) / a, rel=1e-9)


def test_elir_matches_quad_for_mixture(robust_map):
    def info(x):
        return float(be._mixture_info(robust_map, x))

    ref = sum(
        w
        * integrate.quad(
            lambda x, a=a, b=b: stats.beta.pdf(x, a, b) * info(x) * x * (1 - x), 0, 1, limit=400, epsabs=1e-11
        )[0]
        for w, a, b in zip(robust_map.weights, robust_map.a, robust_map.b, strict=True)
    )
    assert ess(robust_map, "elir") == pytest.approx(ref, abs=1e-7)


def test_elir_predictive_consistency():
    # Neuenschwander et al. 2020: E over the prior predictive of the posterior ELIR equals
    # prior ELIR + n (exactly, for any mixture), here with n = 10 summed over all outcomes
    prior = BetaMixture([0.2, 0.8], [1.0, 10.0], [1.0, 2.0])
    n = 10
    r = np.arange(n + 1)
    pred = np.sum(
        prior.weights
        * np.exp(
            special.betaln(prior.a + r[:, None], prior.b + n - r[:, None]) - special.betaln(prior.a, prior.b)
        ),
        axis=1,
    ) * special.comb(n, r)
    post_ess = np.array([ess(prior.posterior(int(k), n), "elir") for k in r])
    assert float(np.sum(pred * post_ess)) == pytest.approx(ess(prior, "elir") + n, abs=1e-6)


# --------------------------------------------------------------------------------------
# Pr(theta_t - theta_c > delta)
# --------------------------------------------------------------------------------------


def _quad_beta_diff(a1, b1, a2, b2, d):
    """Pr(X1 - X2 > d) = int f2(y) S1(y + d) dy by scipy quad, on the logit scale of X2.

    On that scale the density of X2 has no endpoint singularity (a beta is log-concave in
    logit x); the range is generous (the log density falls by >= 50 beyond it), and the
    interval is split at the mode, at the kinks (y + d = 0 or 1) and where S1 changes
    fastest.
    """

    def f(z):
        # S1(y + d) = I_{1 - y - d}(b1, a1), with 1 - y = expit(-z) kept exact
        dens = np.exp(a2 * special.log_expit(z) + b2 * special.log_expit(-z) - special.betaln(a2, b2))
        return dens * special.betainc(b1, a1, np.clip(special.expit(-z) - d, 0.0, 1.0))

    mode, s = np.log(a2 / b2), np.sqrt(1 / a2 + 1 / b2)
    lo, hi = mode - 60 / a2 - 20 * s, mode + 60 / b2 + 20 * s
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = special.logit(
            np.concatenate([[-d, 1 - d], special.betaincinv(a1, b1, [1e-6, 0.01, 0.5, 0.99, 1 - 1e-6]) - d])
        )
    inner = inner[np.isfinite(inner) & (inner > lo) & (inner < hi)]
    pts = np.unique(np.concatenate([[lo, hi, mode], mode + s * np.array([-3.0, 3.0]), inner]))
    pts = pts[(pts >= lo) & (pts <= hi)]
    return sum(
        integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-11, limit=400)[0]
        for a, b in zip(pts[:-1], pts[1:], strict=True)
    )


def _beta_stress_set():
    cases = [
        (0.5, 25.0, 1.0, 7.0, 0.0),
        (14.5, 11.0, 2.0, 6.0, 0.0),
        (0.5, 1.0, 1.0, 1.0, 0.0),
        (0.5, 1.0, 2.25, 5.48, 0.0),
        (500.5, 500.0, 30.0, 70.0, 0.1),
        (1000.5, 1.0, 1.0, 1000.0, 0.0),
        (3.0, 3.0, 300.0, 300.0, -0.2),
        (0.5, 1000.5, 1.0, 1.0, 0.0),
        (40.0, 60.0, 41.0, 59.0, 0.0),
        (2000.0, 3000.0, 1950.0, 3050.0, 0.01),
        (1.5, 200.0, 2.0, 150.0, 0.0),
        (3.0, 8.0, 1.0, 1.0, 0.15),  # vague control and a margin: kink at u = delta
        # prior-only U-shaped / Jeffreys betas with a margin: the kink is a v^(1/2) singularity
        (0.6, 0.7, 0.55, 0.9, 0.3),
        (0.6, 0.7, 0.55, 0.9, -0.3),
        (0.5, 0.5, 0.5, 0.5, 0.1),
        (0.5, 0.5, 0.5, 0.5, -0.2),
        (0.5, 25.0, 1.0, 7.0, -0.1),
        (0.5, 3.0, 0.5, 1.0, 0.05),
    ]
    rng = np.random.default_rng(1)
    for _ in range(30):
        a1, b1, a2, b2 = np.exp(rng.uniform(np.log(0.5), np.log(2000.0), 4))
        cases.append((a1, b1, a2, b2, float(rng.choice([0.0, 0.0, 0.05, -0.1, 0.2]))))
    return np.array(cases)


def test_beta_difference_quadrature_vs_quad():
    c = _beta_stress_set()
    ref = np.array([_quad_beta_diff(*row) for row in c])
    got = bd._beta_diff_pairs(c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4])
    err = np.abs(got - ref)
    zero = c[:, 4] == 0
    assert err[zero].max() < 1e-10  # measured ~1e-12
    assert err.max() < 1e-8  # margins put a kink in the integrand; measured ~7e-10


def test_panel_rule_integrates_polynomials():
    # rows 0..m-1 integrate the degree m - 1 interpolant from 0 to each node: exact for
    # polynomials of degree < m; row m holds the Gauss-Legendre weights, exact to 2m - 1
    m = bq.CUM_NODES
    s, q = bq.panel_rule(m)
    for k in range(m):
        np.testing.assert_allclose(q[:-1] @ s**k, s ** (k + 1) / (k + 1), rtol=0, atol=1e-14)
    for k in range(2 * m):
        assert q[-1] @ s**k == pytest.approx(1 / (k + 1), abs=1e-14)


def test_beta_cdf_at_end_matches_betainc():
    # 0 or 1 only where the log-concave tail bound is below _TAIL_NEGLIGIBLE
    rng = np.random.default_rng(5)
    a, b = np.exp(rng.uniform(np.log(0.5), np.log(2000.0), (2, 4000)))
    v = np.concatenate([rng.uniform(0, 1, 2000), special.expit(rng.uniform(-40, 40, 2000))])
    for side in (-1, 1):
        got = bd._beta_cdf_at_end(a, b, special.betaln(a, b), v, 1 - v, side)
        assert np.abs(got - special.betainc(a, b, v)).max() <= bq.TAIL_NEGLIGIBLE


def _unique_posterior_pairs(rng, n):
    """(a1, b1, a2, b2) as in simulated trials where no two replicates share a posterior: a
    Jeffreys treatment posterior against a power-prior control with fractional (propensity
    weighted) borrowed counts, or against a component of a robust MAP posterior."""
    n_t = rng.integers(100, 201, n)
    x_t = rng.binomial(n_t, 0.35)
    n_c = rng.integers(60, 201, n)
    x_c = rng.binomial(n_c, 0.3)
    a0 = rng.uniform(0, 1, n)
    events, nonevents = rng.uniform(10, 40, n), rng.uniform(30, 100, n)  # weighted external sums
    comp = np.array([[18.0, 64.0], [6.0, 18.0], [1.0, 1.0]])[rng.integers(0, 3, n)]
    power = rng.random(n) < 0.5
    a2 = np.where(power, 1 + a0 * events, comp[:, 0]) + x_c
    b2 = np.where(power, 1 + a0 * nonevents, comp[:, 1]) + n_c - x_c
    return np.c_[0.5 + x_t, 0.5 + n_t - x_t, a2, b2]


def _cumulative_larger_first(cases):
    a1, b1, a2, b2, d = cases.T
    x1 = a1 + b1 >= a2 + b2
    return bd._beta_diff_cumulative(
        np.where(x1, a1, b2), np.where(x1, b1, a2), np.where(x1, a2, b1), np.where(x1, b2, a1), d
    )


def test_cumulative_rule_vs_quad_on_random_unique_cases():
    # Every pair the cumulative rule accepts must be within 1e-10 of quad: the accuracy the
    # decision kernels promise, well above what was measured (1500 cases of each kind:
    # ~7e-13 on the unique posteriors, all accepted; ~1.3e-11 on log-uniform a, b in
    # [0.5, 5000] with margins, 84 % accepted, the rest kinked or unresolved).
    rng = np.random.default_rng(7)
    unique = np.c_[_unique_posterior_pairs(rng, 80), rng.choice([0.0, 0.0, 0.05, -0.05], 80)]
    broad = np.c_[
        np.exp(rng.uniform(np.log(0.5), np.log(5000.0), (120, 4))),
        rng.choice([0.0, 0.05, -0.05, 0.2, -0.2], 120),
    ]
    for cases, min_accepted in ((unique, 1.0), (broad, 0.7)):
        ref = np.array([_quad_beta_diff(*row) for row in cases])
        cum = _cumulative_larger_first(cases)
        ok = ~np.isnan(cum)
        assert ok.mean() >= min_accepted
        assert np.abs(cum[ok] - ref[ok]).max() < 1e-10
        # with the other orientation and the betainc fallback: kinked rows as in the stress set
        assert np.abs(bd._beta_diff_pairs(*cases.T) - ref).max() < 1e-8


def test_cumulative_rule_rejects_kinks_and_resolves_near_degenerate_betas():
    # Jeffreys and U-shaped betas with a margin put a kink of I_{u - delta} where both
    # densities have mass: the mass residual must reject them in either orientation
    kinked = np.array([(0.5, 0.5, 0.5, 0.5, 0.1), (0.6, 0.7, 0.55, 0.9, -0.3), (0.5, 3.0, 0.5, 1.0, 0.05)])
    over_x1 = bd._beta_diff_cumulative(*kinked.T)
    over_one_minus_x2 = bd._beta_diff_cumulative(*kinked[:, [3, 2, 1, 0, 4]].T)
    assert np.all(np.isnan(over_x1)) and np.all(np.isnan(over_one_minus_x2))
    # a = 0.001 puts nearly all of a beta's mass near 0; the betainc rule's grid over that
    # (narrower) density misses up to 4e-4 of the probability (measured), the cumulative
    # rule integrates over the other one
    near_degenerate = np.array(
        [(1e-3, 0.5, 50.0, 50.0, 0.0), (1e-3, 1.0, 3.0, 50.0, 0.3), (1e-3, 3.0, 50.0, 50.0, 1e-3)]
    )
    ref = np.array([_quad_beta_diff(*row) for row in near_degenerate])
    assert np.abs(bd._beta_diff_pairs(*near_degenerate.T) - ref).max() < 1e-12


def test_beta_pairs_do_not_depend_on_batching():
    # a pair's result is a function of that pair alone, bit for bit: dedupe and
    # replicate-by-replicate calls rely on it (blocks of 512 pairs, a single pair, both
    # rules, with and without margins)
    rng = np.random.default_rng(8)
    cases = np.r_[
        np.c_[_unique_posterior_pairs(rng, 600), rng.choice([0.0, 0.05], 600)],
        _beta_stress_set(),
    ]
    full = bd._beta_diff_pairs(*cases.T)
    n = len(cases)
    for idx in (rng.permutation(n), rng.permutation(n)[:513], rng.permutation(n)[:7], [0], [n - 1]):
        np.testing.assert_array_equal(bd._beta_diff_pairs(*cases[idx].T), full[idx])


def test_gamma_difference_quadrature_vs_quad():
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(30):
        a1, a2 = np.exp(rng.uniform(np.log(0.5), np.log(500.0), 2))
        b1, b2 = np.exp(rng.uniform(np.log(0.1), np.log(100.0), 2))
        d = float(rng.choice([0.0, 0.1 * a1 / b1, -0.1 * a2 / b2]))
        rows.append((a1, b1, a2, b2, d))
    c = np.array(rows)

    def quad_ref(a1, b1, a2, b2, d):
        def f(y):
            return stats.gamma.pdf(y, a2, scale=1 / b2) * stats.gamma.sf(y + d, a1, scale=1 / b1)

        pts = np.concatenate(
            [
                [0.0, max(0.0, -d)],
                stats.gamma.ppf([1e-12, 0.01, 0.5, 0.99, 1 - 1e-12], a2, scale=1 / b2),
                np.maximum(stats.gamma.ppf([0.001, 0.5, 0.999], a1, scale=1 / b1) - d, 0.0),
            ]
        )
        pts = np.unique(pts)
        return sum(
            integrate.quad(f, lo, hi, epsabs=1e-14, epsrel=1e-10, limit=200)[0]
            for lo, hi in zip(pts[:-1], pts[1:], strict=True)
        )

    ref = np.array([quad_ref(*row) for row in c])
    got = bd._gamma_diff_pairs(c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4])  # closed form at delta = 0
    assert np.abs(got - ref).max() < 1e-9  # measured ~2e-12
    quad = bd._gamma_diff_quad(c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4])  # quadrature everywhere
    assert np.abs(quad - ref).max() < 1e-9


def test_prob_diff_vectorised_equals_one_by_one(robust_map):
    rt = np.array([0, 5, 14, 24, 14])
    rc = np.array([6, 0, 1, 3, 1])
    post_t = BetaMixture(1.0, 0.5, 1.0).posterior(rt, 24)
    post_c = robust_map.posterior(rc, 6)
    batch = prob_diff_greater(post_t, post_c, 0.05)
    single = [float(prob_diff_greater(post_t[i], post_c[i], 0.05)) for i in range(rt.size)]
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-15)
    # dedupe (rows 2 and 4 are equal) changes nothing
    np.testing.assert_array_equal(batch, prob_diff_greater(post_t, post_c, 0.05, dedupe=False))


def test_prob_diff_normal_closed_form_vs_monte_carlo():
    rng = np.random.default_rng(3)
    post_t = NormalMixture([0.6, 0.4], [1.0, 0.2], [0.5, 1.5])
    post_c = NormalMixture([0.5, 0.3, 0.2], [0.0, 0.8, -1.0], [0.4, 0.3, 2.0])
    n = 400_000
    diff = post_t.sample(n, rng) - post_c.sample(n, rng)
    for delta in (0.0, 0.5):
        p_mc = np.mean(diff > delta)
        se = np.sqrt(p_mc * (1 - p_mc) / n)
        assert abs(float(prob_diff_greater(post_t, post_c, delta)) - p_mc) < 4 * se


def test_prob_diff_beta_and_gamma_vs_monte_carlo():
    rng = np.random.default_rng(4)
    n = 400_000
    pairs = [
        (BetaMixture([0.7, 0.3], [14.0, 1.0], [10.0, 1.0]), BetaMixture([0.8, 0.2], [8.0, 2.0], [20.0, 2.0])),
        (GammaMixture([0.5, 0.5], [5.0, 30.0], [2.0, 10.0]), GammaMixture(1.0, 12.0, 5.0)),
    ]
    for post_t, post_c in pairs:
        diff = post_t.sample(n, rng) - post_c.sample(n, rng)
        p_mc = np.mean(diff > 0.1)
        se = np.sqrt(p_mc * (1 - p_mc) / n)
        assert abs(float(prob_diff_greater(post_t, post_c, 0.1)) - p_mc) < 4 * se


# --------------------------------------------------------------------------------------
# Exact operating characteristics
# --------------------------------------------------------------------------------------


def test_boundary_equals_full_table(robust_map):
    treat = BetaMixture(1.0, 0.5, 1.0)
    for delta in (0.0, 0.1):
        table = decision_table_binary(treat, robust_map, 24, 6, delta)
        success = table > 0.95
        # monotone in r_c (likelihood-ratio ordering of the control posterior)
        assert np.all(np.diff(table, axis=1) <= 1e-12)
        expected = np.where(success.any(axis=1), success.sum(axis=1) - 1, -1)
        np.testing.assert_array_equal(
            decision_boundary_binary(treat, robust_map, 24, 6, 0.95, delta), expected
        )


def test_oc_equals_brute_force_enumeration(map_prior):
    treat = BetaMixture(1.0, 0.5, 1.0)
    oc = oc2s_binary(treat, map_prior, 24, 6, 0.9)
    table = decision_table_binary(treat, map_prior, 24, 6)
    tt, tc = np.array([0.3, 0.5, 0.7]), np.array([0.3, 0.25, 0.2])
    brute = [
        np.sum(
            stats.binom.pmf(np.arange(25)[:, None], 24, a)
            * stats.binom.pmf(np.arange(7)[None, :], 6, c)
            * (table > 0.9)
        )
        for a, c in zip(tt, tc, strict=True)
    ]
    np.testing.assert_allclose(oc(tt, tc), brute, rtol=1e-12)


# --------------------------------------------------------------------------------------
# Threshold calibration
# --------------------------------------------------------------------------------------


def test_calibrate_threshold_uniform_null():
    rng = np.random.default_rng(5)
    r, alpha = 20_000, 0.025
    p = rng.random(r)
    cal = calibrate_threshold(p, alpha)
    # definition: at most alpha R values exceed c, and any smaller c lets more through
    assert np.sum(p > cal.threshold) <= alpha * r
    below = np.max(p[p < cal.threshold])
    assert np.sum(p > below) > alpha * r
    assert cal.type1 <= alpha
    # U(0,1) null: the true threshold is 1 - alpha, with asymptotic sd sqrt(a(1-a)/R)
    sd = np.sqrt(alpha * (1 - alpha) / r)
    assert abs(cal.threshold - (1 - alpha)) < 4 * sd
    assert cal.mcse == pytest.approx(sd, rel=0.2)
    assert cal.ci[0] < cal.threshold < cal.ci[1]


def test_calibrate_threshold_exact_uniform_design():
    prior = BetaMixture(1.0, 1.0, 1.0)
    grid = np.linspace(0.05, 0.95, 91)
    cal = calibrate_threshold_exact(prior, prior, 24, 24, alpha=0.025, theta_grid=grid)
    oc = oc2s_binary(prior, prior, 24, 24, cal.threshold)
    assert float(oc(grid, grid).max()) == pytest.approx(cal.max_type1, abs=1e-12)
    assert cal.max_type1 <= 0.025
    # the next lattice value below the threshold would reject one more outcome: too often
    table = decision_table_binary(prior, prior, 24, 24)
    lower = np.max(table[table < cal.threshold])
    oc_lower = oc2s_binary(prior, prior, 24, 24, float(np.nextafter(lower, 0.0)))
    assert float(oc_lower(grid, grid).max()) > 0.025


# --------------------------------------------------------------------------------------
# Power and commensurate priors
# --------------------------------------------------------------------------------------


def test_power_prior_binary():
    a0 = np.array([0.0, 0.25, 0.5, 1.0])
    pp = power_prior_binary(30, 100, a0)  # initial Beta(1, 1)
    np.testing.assert_allclose(pp.a[:, 0], 1 + a0 * 30)
    np.testing.assert_allclose(pp.b[:, 0], 1 + a0 * 70)
    np.testing.assert_allclose(power_prior_ess(a0, 100), a0 * 100)
    for i, a in enumerate(a0):
        assert ess(pp[i], "moment") == pytest.approx(a * 100 + 2)  # borrowed + initial's 2
        if a > 0:
            assert ess(pp[i], "elir") == pytest.approx(a * 100 + 2, rel=1e-9)
    assert ess(pp[0], "elir") == pytest.approx(0.0, abs=1e-12)  # Beta(1, 1): no local information


def test_power_prior_normal():
    pp = power_prior_normal(mean_h=1.5, n_h=80, a0=np.array([0.25, 1.0]), sigma=4.0)
    np.testing.assert_allclose(pp.sds[:, 0], 4.0 / np.sqrt(np.array([20.0, 80.0])))
    assert ess(pp[0], "elir") == pytest.approx(20.0)
    assert ess(pp[1], "moment") == pytest.approx(80.0)
    init = NormalMixture(1.0, 0.0, 100.0, sigma=4.0)
    pp2 = power_prior_normal(1.5, 80, 0.25, sigma=4.0, initial=init)
    assert float(pp2.sds[0]) == pytest.approx(1 / np.sqrt(1 / 100**2 + 20 / 16))


def test_commensurate_prior_normal():
    kappa = np.array([0.5, 10.0, 1e12])
    cp = commensurate_prior_normal(mean_h=2.0, n_h=50, sigma_h=3.0, kappa=kappa, sigma=3.0)
    np.testing.assert_allclose(cp.sds[:, 0] ** 2, 9 / 50 + 1 / kappa)
    np.testing.assert_allclose(cp.means[:, 0], 2.0)
    # ESS sigma^2 / var: full borrowing (kappa -> inf) is the 50 historical patients
    assert ess(cp[2], "elir") == pytest.approx(50.0, rel=1e-9)
    assert ess(cp[0], "elir") == pytest.approx(9 / (9 / 50 + 2.0))


def test_commensurate_prior_binary():
    kappa = np.array([0.1, 1.0, 1e6])
    cp = commensurate_prior_binary(30, 100, kappa)
    n = cp.a[:, 0] + cp.b[:, 0]
    assert np.all(np.diff(n) > 0)  # more commensurability, more borrowing
    # large kappa: close to the historical information (~100 patients, normal approximation)
    assert n[-1] == pytest.approx(100, rel=0.05)
    assert float(cp[2].mean()) == pytest.approx(30.5 / 101, abs=0.01)
    # the beta matches the logit-normal's mean and variance exactly (by construction)
    phi = np.log(30.5 / 70.5)
    v = 1 / 30.5 + 1 / 70.5 + 1.0
    m, _ = integrate.quad(lambda z: special.expit(phi + np.sqrt(v) * z) * stats.norm.pdf(z), -12, 12)
    assert float(cp[1].mean()) == pytest.approx(m, abs=1e-9)


# --------------------------------------------------------------------------------------
# EM mixture fitting
# --------------------------------------------------------------------------------------


def test_fit_beta_mixture_recovers_truth():
    truth = BetaMixture([0.6, 0.4], [30.0, 3.0], [90.0, 6.0])
    x = truth.sample(20_000, np.random.default_rng(6))
    fit = fit_beta_mixture(x, 2)
    assert fit.converged
    m = fit.mixture
    np.testing.assert_allclose(m.weights, truth.weights, atol=0.03)
    np.testing.assert_allclose(m.a / (m.a + m.b), truth.a / (truth.a + truth.b), atol=0.01)
    # moments of the fit agree with the sample's (EM is an MLE, not moment matching)
    assert float(m.mean()) == pytest.approx(x.mean(), abs=0.002)
    assert float(m.sd()) == pytest.approx(x.std(), rel=0.03)
    best = auto_fit_mixture(x, "beta", k_max=3)
    assert best.mixture.n_components >= 2


def test_fit_beta_mixture_constraint_keeps_elir_finite():
    x = BetaMixture(1.0, 0.6, 3.0).sample(5_000, np.random.default_rng(7))
    fit = fit_beta_mixture(x, 1, constrain_gt1=True)
    assert fit.mixture.a[0] >= 1.0
    assert fit.mixture.b[0] >= 1.0
    assert np.isfinite(ess(fit.mixture, "elir"))
    free = fit_beta_mixture(x, 1, constrain_gt1=False)
    assert free.mixture.a[0] == pytest.approx(0.6, rel=0.05)
    assert free.loglik >= fit.loglik


def test_fit_normal_mixture_recovers_truth():
    truth = NormalMixture([0.3, 0.7], [-2.0, 1.0], [0.5, 1.0])
    x = truth.sample(20_000, np.random.default_rng(8))
    fit = fit_normal_mixture(x, 2, sigma=5.0)
    m = fit.mixture
    order = np.argsort(m.means)
    np.testing.assert_allclose(m.means[order], [-2.0, 1.0], atol=0.05)
    np.testing.assert_allclose(m.sds[order], [0.5, 1.0], atol=0.05)
    np.testing.assert_allclose(m.weights[order], [0.3, 0.7], atol=0.02)
    assert m.sigma == 5.0


# --------------------------------------------------------------------------------------
# MAP priors (real MCMC)
# --------------------------------------------------------------------------------------


def _exact_map_quantities(r, n):
    """The AS meta-analysis without MCMC: a (mu, tau) grid, each study's random effect
    integrated by 60-point Gauss-Hermite, the predictive cdf Pr(theta* <= g) =
    E[Phi((logit g - mu) / tau)] in closed form given (mu, tau)."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    mu = np.linspace(-3.5, 1.0, 451)
    tau = np.linspace(1e-4, 3.0, 601)
    mm, tt = np.meshgrid(mu, tau, indexing="ij")
    ll = np.zeros_like(mm)
    for rj, nj in zip(r, n, strict=True):
        p = special.expit(mm[..., None] + tt[..., None] * x)
        ll += np.log(np.sum(w * stats.binom.pmf(rj, nj, p), axis=-1))
    lp = ll + stats.norm.logpdf(mm, 0, 2) + stats.halfnorm.logpdf(tt, scale=1)
    post = np.exp(lp - lp.max())
    post /= post.sum()
    th = special.expit(mm[..., None] + tt[..., None] * x)
    m1 = float(np.sum(post[..., None] * w * th))
    m2 = float(np.sum(post[..., None] * w * th**2))

    def cdf(g):
        return float(np.sum(post * special.ndtr((special.logit(g) - mm) / tt)))

    q = [optimize.brentq(lambda g, p=p: cdf(g) - p, 1e-4, 1 - 1e-4) for p in (0.025, 0.975)]
    t1 = float(np.sum(post * tt))
    return {"tau_mean": t1, "map_mean": m1, "map_sd": np.sqrt(m2 - m1**2), "map_q025": q[0], "map_q975": q[1]}


@pytest.mark.slow
def test_map_prior_binary_reference():
    hist = REF["historical_placebo_studies"]
    ref = REF["map_prior_mcmc"]
    res = bw.map_prior_binary(
        hist["r"],
        hist["n"],
        tau_prior_sd=1.0,
        intercept_sd=2.0,
        seed=20240531,
        draws=5000,
        tune=1000,
        chains=4,
    )
    s, d = res.summary, res.diagnostics
    # REGULATORY.md section 1: rank R-hat < 1.01, bulk and tail ESS >= 400, no divergences
    assert d["rhat_max"] < 1.01
    assert d["ess_bulk_min"] >= 400
    assert d["ess_tail_min"] >= 400
    assert d["divergences"] == 0

    # (1) against an MCMC-free computation of the same model: our Monte Carlo error only,
    # so 4 MCSEs (plus 1e-3 for the quadrature grid)
    exact = _exact_map_quantities(hist["r"], hist["n"])
    for key in ("tau_mean", "map_mean", "map_q025", "map_q975"):
        assert abs(s[key] - exact[key]) < 4 * s[f"{key}_mcse"] + 1e-3, key

    # (2) against RBesT's MCMC: both runs carry Monte Carlo error.  Ours: MCSE ~0.001 (MAP
    # mean), ~0.004 (tau mean), ~0.003-0.006 (2.5%/97.5% quantiles).  RBesT's is similar
    # or larger (its values sit 0.003 / 0.008 / 0.005 / 0.010 from the exact ones above).
    # Tolerances: 0.005 on the MAP mean and sd (the JSON's note), 0.02 on tau's mean and sd
    # (tau mixes slowest; its MCSE is ~4x the MAP mean's), 0.015 on the interval ends.
    assert s["map_mean"] == pytest.approx(ref["map_mean"], abs=0.005)
    assert s["map_sd"] == pytest.approx(ref["map_sd"], abs=0.005)
    assert s["tau_mean"] == pytest.approx(ref["tau_mean"], abs=0.02)
    assert s["tau_sd"] == pytest.approx(ref["tau_sd"], abs=0.02)
    assert s["map_q025"] == pytest.approx(ref["map_95"][0], abs=0.015)
    assert s["map_q975"] == pytest.approx(ref["map_95"][1], abs=0.015)

    # the EM mixture reproduces the predictive draws' moments and RBesT's mixture's
    mix = res.mixture
    assert float(mix.mean()) == pytest.approx(res.predictive.mean(), abs=0.002)
    assert float(mix.sd()) == pytest.approx(res.predictive.std(), rel=0.03)
    assert float(mix.mean()) == pytest.approx(REF["map_prior_mixture"]["mean"], abs=0.005)
    assert np.all(mix.a >= 1)
    assert np.all(mix.b >= 1)
    assert ess(mix, "elir") == pytest.approx(REF["effective_sample_size"]["elir"], rel=0.15)


@pytest.mark.slow
def test_map_prior_normal_recovers_simulation():
    rng = np.random.default_rng(9)
    true_mu, true_tau, se = 1.0, 0.3, 0.2
    theta = true_mu + true_tau * rng.standard_normal(12)
    means = theta + se * rng.standard_normal(12)
    res = bw.map_prior_normal(
        means, np.full(12, se), sigma=2.0, tau_prior_sd=1.0, intercept_sd=10.0, seed=11, draws=2000
    )
    assert res.diagnostics["divergences"] == 0
    assert res.diagnostics["rhat_max"] < 1.01
    # the predictive mean is near the sample mean of the study means (its posterior sd is
    # ~ sqrt((tau^2 + se^2)/12) ~ 0.1, so 0.3 is a 3-sd band)
    assert float(res.mixture.mean()) == pytest.approx(means.mean(), abs=0.3)
    assert res.mixture.sigma == 2.0
    assert float(res.mixture.mean()) == pytest.approx(res.predictive.mean(), abs=0.01)
