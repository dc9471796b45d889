"""Closed-form checks of the NumPy sampling kernels and the quantile encoder (no MCMC).

Every random check uses a fixed seed and a Monte Carlo (MC) tolerance of 4 standard
errors: a correct kernel fails such a check with probability about 6e-5 per comparison,
while a wrong formula (a misplaced sd, a swapped parameterisation) is off by many se.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from insilico.virtual_patients import kernels
from insilico.virtual_patients.encoding import QUANTILE_PROBS, Encoder, learn_encoders
from insilico.virtual_patients.spec import GeneratorSpec

N_MC = 200_000
Z_MC = 4.0  # MC tolerance in standard errors (two-sided p ~ 6e-5 for a correct kernel)


# ------------------------------------------------------------------------ covariates
def test_categorical_frequencies_match_softmax():
    """Level frequencies of `_categorical` equal the softmax of [0, eta] (reference logit 0)."""
    eta = np.array([0.5, -1.0, 1.5])  # K = 4 levels: reference plus three logits
    rng = np.random.default_rng(11)
    codes = kernels._categorical(np.tile(eta, (N_MC, 1)), rng)
    p = special.softmax(np.concatenate([[0.0], eta]))
    freq = np.bincount(codes, minlength=4) / N_MC
    assert codes.min() >= 0 and codes.max() <= 3
    # binomial MC se of each frequency: sqrt(p (1 - p) / n)
    se = np.sqrt(p * (1 - p) / N_MC)
    assert np.all(np.abs(freq - p) < Z_MC * se), (freq, p)


def test_categorical_is_stable_for_large_logits():
    """Huge logits (max-subtracted before exp) give the dominant level, never NaN codes."""
    eta = np.array([[800.0, -800.0], [-800.0, -800.0]])
    codes = kernels._categorical(eta, np.random.default_rng(0))
    assert codes.tolist() == [1, 0]


@pytest.mark.parametrize(("lo", "hi"), [(-0.5, 2.0), (1.0, np.inf), (-np.inf, -2.5)])
def test_truncated_normal_stays_in_bounds_and_has_closed_form_mean(lo, hi):
    """`_normal` with bounds: every draw inside [lo, hi], mean equal to truncnorm's mean."""
    eta0, sigma = 0.3, 1.7
    rng = np.random.default_rng(12)
    z = kernels._normal(np.full(N_MC, eta0), sigma, (lo, hi), rng)
    assert np.all((z >= lo) & (z <= hi))
    ref = stats.truncnorm((lo - eta0) / sigma, (hi - eta0) / sigma, loc=eta0, scale=sigma)
    # MC se of a sample mean: sd / sqrt(n), with the truncated distribution's own sd
    se = ref.std() / np.sqrt(N_MC)
    assert abs(z.mean() - ref.mean()) < Z_MC * se, (z.mean(), ref.mean(), se)


def test_truncated_normal_far_in_the_tail_stays_in_bounds():
    """Bounds far from eta (a covariate model predicting well outside the range) still hold."""
    z = kernels._normal(np.zeros(1000), 1.0, (9.0, np.inf), np.random.default_rng(19))
    assert np.all(z >= 9.0)
    # the tail's conditional mean (Mills ratio) is 9.1090; MC se = sd / sqrt(1000) ~ 0.0034
    ref = stats.truncnorm(9.0, np.inf)
    assert abs(z.mean() - ref.mean()) < Z_MC * ref.std() / np.sqrt(1000)
    low = kernels._normal(np.zeros(1000), 1.0, (-np.inf, -40.0), np.random.default_rng(20))
    assert np.all(low <= -40.0) and low.min() > -41.0


def test_untruncated_normal_has_mean_eta_and_sd_sigma():
    """Without bounds `_normal` is N(eta, sigma)."""
    eta0, sigma = -1.2, 0.6
    z = kernels._normal(np.full(N_MC, eta0), sigma, None, np.random.default_rng(13))
    # se of the mean sigma/sqrt(n); se of the sd about sigma/sqrt(2n) for a normal sample
    assert abs(z.mean() - eta0) < Z_MC * sigma / np.sqrt(N_MC)
    assert abs(z.std(ddof=1) - sigma) < Z_MC * sigma / np.sqrt(2 * N_MC)


def test_negative_binomial_covariate_mean_and_variance():
    """A lone count covariate is NB with mean mu and variance mu + mu^2 / phi."""
    mu, phi = 4.0, 2.5
    enc = Encoder("k", "count", mean=1.0, sd=0.5)  # predictor scaling is irrelevant to the draws
    params = {"cov_k_intercept": np.log(mu), "cov_k_coef": np.zeros(0), "cov_k_phi": phi}
    D, values = kernels.draw_covariates(params, [enc], [0, 1], N_MC, np.random.default_rng(14))
    x = values["k"]
    assert x.dtype.kind == "i" and x.min() >= 0
    # the design column is the encoder's standardised log1p of the count
    np.testing.assert_allclose(D[:, 0], (np.log1p(x) - 1.0) / 0.5)
    ref = stats.nbinom(phi, phi / (phi + mu))  # scipy's (n, p): mean mu, variance mu + mu^2/phi
    var, kurt = ref.stats("vk")
    assert ref.mean() == pytest.approx(mu) and var == pytest.approx(mu + mu**2 / phi)
    # se of the sample mean sqrt(var / n); se of the sample variance sqrt((m4 - var^2) / n)
    # with the fourth central moment m4 = (excess kurtosis + 3) var^2
    se_mean = np.sqrt(var / N_MC)
    se_var = np.sqrt(((kurt + 3) * var**2 - var**2) / N_MC)
    assert abs(x.mean() - mu) < Z_MC * se_mean, (x.mean(), mu, se_mean)
    assert abs(x.var(ddof=1) - (mu + mu**2 / phi)) < Z_MC * se_var, (x.var(ddof=1), se_var)


# ------------------------------------------------------------------------ survival
def testpiecewise_inverse_inverts_the_cumulative_hazard():
    """H0(piecewise_inverse(target)) == target in every interval, the last (open) one too."""
    log_baseline = np.array([0.0, 0.4, -0.3, 0.8, -1.1])
    cuts = np.array([0.3, 0.7, 1.2, 2.0])
    target = np.concatenate([[0.0], np.linspace(1e-6, 6.0, 997), [25.0]])
    t = kernels.piecewise_inverse(target, log_baseline, cuts)
    assert np.all(np.diff(t) > 0)  # strictly increasing hazard integral -> increasing times
    H = kernels.baseline_cumhaz("piecewise_exponential", t, {"log_baseline": log_baseline[None, :]}, cuts)[:, 0]
    # pure arithmetic (a sum of a few products), so only floating-point rounding remains
    np.testing.assert_allclose(H, target, rtol=0, atol=1e-10)
    # hand check: H0 at the first cut is 0.3 * e^0
    assert kernels.piecewise_inverse(np.array([0.3]), log_baseline, cuts)[0] == pytest.approx(0.3, abs=1e-12)


def test_weibull_times_follow_the_proportional_hazards_survival():
    """Weibull outcome times have S(t) = exp(-t^k e^eta) (KS test against the closed form)."""
    k, eta = 1.6, -0.4
    rng = np.random.default_rng(15)
    noise = kernels.outcome_noise("weibull", N_MC, rng)
    t = kernels.outcome_from_noise("weibull", np.full(N_MC, eta), noise, {"shape": np.float64(k)})

    def cdf(s):
        return -np.expm1(-(s**k) * np.exp(eta))

    # a correct kernel gives p ~ U(0, 1); p < 0.001 happens with probability 0.001
    assert stats.kstest(t, cdf).pvalue > 1e-3
    # and the median solves t^k e^eta = log 2; se of the sample median 1 / (2 f(m) sqrt(n))
    m = (np.log(2) * np.exp(-eta)) ** (1 / k)
    dens = k * m ** (k - 1) * np.exp(eta) * 0.5
    assert abs(np.median(t) - m) < Z_MC / (2 * dens * np.sqrt(N_MC))


@pytest.mark.parametrize("family", ["weibull", "piecewise_exponential"])
def test_frailty_times_match_the_marginal_survival(family):
    """With a gamma frailty of variance theta, P(T > t) = (1 + theta H(t))^(-1/theta)."""
    theta, eta = 0.8, 0.3
    params = {"shape": np.float64(1.3), "frailty_var": np.float64(theta),
              "log_baseline": np.array([0.0, 0.5, -0.5])}
    cuts = np.array([0.5, 1.5])
    rng = np.random.default_rng(16)
    noise = kernels.outcome_noise(family, N_MC, rng)
    t = kernels.outcome_from_noise(family, np.full(N_MC, eta), noise, params, cuts)
    grid = np.array([0.1, 0.4, 1.0, 2.0, 5.0])
    P = {"shape": params["shape"][None], "log_baseline": params["log_baseline"][None, :]}
    H = kernels.baseline_cumhaz(family, grid, P, cuts)[:, 0] * np.exp(eta)
    S = kernels.survival_from_cumhaz(H, np.float64(theta))
    np.testing.assert_allclose(S, (1 + theta * H) ** (-1 / theta), rtol=1e-12)  # closed form itself
    emp = (t[:, None] > grid[None, :]).mean(axis=0)
    # binomial MC se of an empirical survival probability: sqrt(S (1 - S) / n)
    se = np.sqrt(S * (1 - S) / N_MC)
    assert np.all(np.abs(emp - S) < Z_MC * se), (emp, S)
    # frailty makes survival heavier-tailed than exp(-H) at the same conditional hazard
    assert np.all(S > np.exp(-H))


def test_censor_caps_times_at_follow_up():
    """`censor`: observed time min(t, c); event iff t <= c."""
    t = np.array([0.5, 2.0, 3.0])
    obs, event = kernels.censor(t, 2.0, 0.0, np.random.default_rng(0))
    assert obs.tolist() == [0.5, 2.0, 2.0] and event.tolist() == [1, 1, 0]


# ------------------------------------------------------------------------ quantile encoder
def _quantile_encoder(x: np.ndarray) -> Encoder:
    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "v", "type": "continuous", "transform": "quantile"}],
        "outcome": {"family": "normal", "column": "y"},
    })
    (enc,) = learn_encoders(pd.DataFrame({"v": x, "y": 0.0}), spec)
    return enc


def test_quantile_transform_round_trips_on_and_between_knots():
    """inverse(forward(x)) == x on the (distinct) knots and anywhere between them."""
    x = np.random.default_rng(17).lognormal(2.0, 1.0, 2000)
    enc = _quantile_encoder(x)
    knots = np.asarray(enc.knots)
    assert len(knots) == len(QUANTILE_PROBS) and np.all(np.diff(knots) > 0)
    # on distinct knots the score is the normal quantile of the knot's probability
    np.testing.assert_allclose(enc.forward(knots) * enc.sd + enc.mean, special.ndtri(QUANTILE_PROBS), rtol=1e-12)
    # piecewise-linear interpolation inverted exactly; only ndtr(ndtri(p)) rounding remains
    np.testing.assert_allclose(enc.inverse(enc.forward(knots)), knots, rtol=1e-9)
    between = np.linspace(knots[0], knots[-1], 777)
    np.testing.assert_allclose(enc.inverse(enc.forward(between)), between, rtol=1e-9)
    # standardisation is learned from the fitting data's scores
    z = enc.forward(x)
    assert z.mean() == pytest.approx(0.0, abs=1e-12) and z.std(ddof=1) == pytest.approx(1.0)


def test_quantile_transform_point_mass_maps_back_to_exactly_zero():
    """A point mass (40% zeros) has one score, and that score maps back to exactly 0."""
    rng = np.random.default_rng(18)
    x = np.where(rng.random(1000) < 0.4, 0.0, rng.gamma(2.0, 30.0, 1000))
    enc = _quantile_encoder(x)
    z0 = enc.forward(np.zeros(5))
    assert np.all(z0 == z0[0]) and np.isfinite(z0[0])
    assert np.all(enc.inverse(z0) == 0.0)  # exact: interpolation between tied knots of value 0
    # the zeros sit at the middle of their probability mass, not at either end
    p0 = special.ndtr(z0[0] * enc.sd + enc.mean)
    tied = QUANTILE_PROBS[np.asarray(enc.knots) == 0.0]
    assert p0 == pytest.approx(tied.mean())
    # positive values still round-trip
    pos = np.asarray(enc.knots)[np.asarray(enc.knots) > 0]
    np.testing.assert_allclose(enc.inverse(enc.forward(pos)), pos, rtol=1e-9)


def test_quantile_function_is_interpolation_on_the_knots():
    """The direct-index quantile function equals np.interp on QUANTILE_PROBS (to rounding)."""
    from insilico.virtual_patients.encoding import QUANTILE_PROBS, _quantile_function

    knots = np.sort(np.random.default_rng(1).exponential(size=len(QUANTILE_PROBS)))
    p = np.concatenate([np.random.default_rng(2).random(10_000), [0.0, 1.0, QUANTILE_PROBS[0], QUANTILE_PROBS[-1]]])
    np.testing.assert_allclose(_quantile_function(p, knots), np.interp(p, QUANTILE_PROBS, knots), atol=1e-12)
