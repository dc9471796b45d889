"""The MCMC path of the Bayesian two-arm analyses (`trials.mcmc`) against exact answers.

Where both apply (conjugate mixture priors), MCMC must agree with the conjugate
computation of `trials.borrowing` (what `trials.bayesian.analyse` reports); with a
non-conjugate logit-normal prior it must agree with a numerical integral of the
posterior (scipy.integrate.quad).  Tolerances are Monte Carlo ones:

* a posterior probability within 4 MCSE, MCSE = sqrt(p (1 - p) / ESS) of the benefit
  indicator as the module reports it, plus a floor of 4 / N (N = chains x draws) for a
  replicate whose draws all fall on one side (its MCSE then reads 0, and a tail
  probability q >= 4 / N leaves no draw beyond it with probability (1 - q)^N <= e^-4);
* a posterior mean within 4 MCSE, MCSE = posterior sd / sqrt(ESS) of the draws.

Why 4 and not 2: each check covers up to 50 replicates at once, so the allowance is
family-wise.  For a calibrated MCSE, Pr(|z| > 4) = 6.3e-5 per replicate, ~0.3 % for 50
(Bonferroni).  The z-scores of all replicates are also summed (divided by the root of
their count): a bias common to the replicates adds up there, so an error of ~0.05
posterior sd, e.g. half the beta prior's Jacobian left out, fails the test (z ~ 5),
while with the correct model the sum stays within +-2.6 over 40 seeds (sd 0.9).  The
runs are seeded, so the results are reproducible, not flaky.

Each model structure compiles once (~10-15 s, numba); sampling then takes < 1 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from arviz_stats.base import array_stats
from scipy import integrate, optimize, special, stats

from insilico.trials import borrowing as bw
from insilico.trials import mcmc
from insilico.trials.bayesian import vague_prior
from insilico.trials.mcmc import (
    LogitNormalMixture,
    LogNormalMixture,
    analyse_mcmc,
    posterior_draws,
    summarise_draws,
)

R = 50
DRAWS, TUNE, CHAINS = 1000, 1000, 2
N_DRAWS = DRAWS * CHAINS
PROB_FLOOR = 4.0 / N_DRAWS
Z = 4.0
SEED = 20240611
RUN = {"draws": DRAWS, "tune": TUNE, "chains": CHAINS}
ANALYSIS = {"level": 0.95, "threshold": 0.975}
#: A robust MAP prior for a control response rate (two informative components, 20 % vague).
MAP = bw.BetaMixture.from_components([[0.6, 18.0, 64.0], [0.4, 6.0, 18.0]]).robustify(0.2)


def ess_mean(x: np.ndarray) -> np.ndarray:
    """ESS for the mean of (chains, draws, R) draws, per replicate (arviz)."""
    return np.asarray(array_stats.ess(x, chain_axis=0, draw_axis=1, method="mean"))


def assert_z_scores_small(z: np.ndarray, what: str) -> None:
    """Each replicate's z within Z, and their sum / sqrt(count) too (a bias shared by all
    replicates, e.g. a wrong Jacobian, adds up over them; that sum is ~N(0, 1) when the
    replicates' Monte Carlo errors are independent, as for the independent posteriors here)."""
    big = np.abs(z) > Z
    assert not np.any(big), f"{what}: replicates {np.flatnonzero(big)} have |z| {np.abs(z[big])}"
    total = z.sum() / np.sqrt(z.size)
    assert abs(total) <= Z, f"{what}: the z-scores of {z.size} replicates add up to {total:.2f} sqrt({z.size})"


def assert_probabilities_agree(result: dict, exact: np.ndarray) -> None:
    err = result["posterior_prob"] - exact
    mcse = result["posterior_prob_mcse"]
    resolved = mcse > 0  # else every draw fell on one side: the floor applies
    assert np.all(np.abs(err[~resolved]) <= PROB_FLOOR), f"unresolved replicates: |MCMC - exact| {err[~resolved]}"
    assert_z_scores_small(err[resolved] / (mcse[resolved] + PROB_FLOOR / Z), "posterior probability")


def assert_means_agree(diff_draws: np.ndarray, exact_mean: np.ndarray) -> None:
    mcse = diff_draws.std(axis=(0, 1)) / np.sqrt(ess_mean(diff_draws))
    assert_z_scores_small((diff_draws.mean(axis=(0, 1)) - exact_mean) / mcse, "posterior mean")


def binary_summaries(rng: np.random.Generator, n_t: int, n_c: int, p_t: float, p_c: float, size: int) -> dict:
    return {"n_t": n_t, "n_c": n_c, "mean_t": rng.binomial(n_t, p_t, size) / n_t,
            "mean_c": rng.binomial(n_c, p_c, size) / n_c, "ss_t": None, "ss_c": None}


# ------------------------------------------------------------------- conjugate priors
@pytest.fixture(scope="module")
def binary_run():
    """50 replicates, 40 treated vs 30 controls; robust MAP control prior vs Beta(1, 1)."""
    s = binary_summaries(np.random.default_rng(1), 40, 30, 0.35, 0.25, R)
    treatment = vague_prior("binary", None)
    draws = posterior_draws(MAP, treatment, s, "binary", None, seed=SEED, **RUN)
    post_c = MAP.posterior(np.rint(s["mean_c"] * 30), np.full(R, 30.0))
    post_t = treatment.posterior(np.rint(s["mean_t"] * 40), np.full(R, 40.0))
    return s, treatment, draws, post_t, post_c


def test_binary_robust_map_agrees_with_conjugate(binary_run):
    s, _, (theta_t, theta_c), post_t, post_c = binary_run
    result = summarise_draws(theta_t, theta_c, direction="greater", **ANALYSIS)
    exact = bw.prob_diff_greater(post_t, post_c)
    assert np.ptp(exact) > 0.5  # the replicates span weak to strong evidence
    assert_probabilities_agree(result, exact)
    assert_means_agree(theta_t - theta_c, post_t.mean() - post_c.mean())
    np.testing.assert_allclose(result["estimate"], (theta_t - theta_c).mean(axis=(0, 1)))
    # the remaining keys follow from the draws and the probability as in bayesian.analyse
    np.testing.assert_array_equal(result["p_value"], 1.0 - result["posterior_prob"])
    np.testing.assert_array_equal(result["decision"], (result["posterior_prob"] > 0.975).astype(np.int8))
    assert result["decision"].dtype == np.int8
    assert np.all((result["lower"] < result["estimate"]) & (result["estimate"] < result["upper"]))
    assert set(result) == {"estimate", "std_error", "lower", "upper", "p_value", "posterior_prob", "decision",
                           "posterior_prob_mcse"}


def test_normal_mixture_agrees_with_conjugate():
    """Normal means (sigma 2, 30 vs 30), a robustified two-component normal MAP prior for
    the control mean and the engine's vague treatment prior; benefit is a decrease."""
    sigma, n = 2.0, 30
    rng = np.random.default_rng(2)
    control = bw.NormalMixture.from_components([[0.5, 0.0, 0.4], [0.5, 1.0, 0.3]], sigma=sigma).robustify(
        0.2, mean=0.5)
    treatment = vague_prior("normal", sigma)
    s = {"n_t": n, "n_c": n, "mean_t": rng.normal(-0.3, sigma / np.sqrt(n), R),
         "mean_c": rng.normal(0.5, sigma / np.sqrt(n), R)}
    theta_t, theta_c = posterior_draws(control, treatment, s, "normal", sigma, seed=SEED, **RUN)
    result = summarise_draws(theta_t, theta_c, direction="less", **ANALYSIS)
    post_c = control.posterior(s["mean_c"], n=np.full(R, float(n)))
    post_t = treatment.posterior(s["mean_t"], n=np.full(R, float(n)))
    assert_probabilities_agree(result, 1.0 - bw.prob_diff_greater(post_t, post_c))
    assert_means_agree(theta_t - theta_c, post_t.mean() - post_c.mean())


def test_gamma_mixture_agrees_with_conjugate():
    """Event rates (exposure 2 per patient, 25 vs 25), a gamma-mixture control prior and the
    engine's vague Gamma(0.001, 0.001) treatment prior; the estimate is the log rate ratio,
    whose exact posterior mean is sum_k w_k (digamma(a_k) - log b_k) per arm."""
    n, exposure = 25, 2.0
    rng = np.random.default_rng(3)
    control = bw.GammaMixture.from_components([[0.7, 20.0, 40.0], [0.3, 2.0, 4.0]])
    treatment = vague_prior("count", None)
    s = {"n_t": n, "n_c": n, "mean_t": rng.poisson(0.35 * n * exposure, R) / n,
         "mean_c": rng.poisson(0.5 * n * exposure, R) / n}
    result = analyse_mcmc(control, treatment, s, "count", None, direction="less", exposure=exposure,
                          seed=SEED, **ANALYSIS, **RUN)
    theta_t, theta_c = posterior_draws(control, treatment, s, "count", None, exposure=exposure, seed=SEED, **RUN)
    post_c = control.posterior(s["mean_c"] * n, np.full(R, n * exposure))
    post_t = treatment.posterior(s["mean_t"] * n, np.full(R, n * exposure))

    def mean_log(post):
        return np.sum(post.weights * (special.digamma(post.shapes) - np.log(post.rates)), axis=-1)

    assert_probabilities_agree(result, 1.0 - bw.prob_diff_greater(post_t, post_c))
    assert_means_agree(theta_t - theta_c, mean_log(post_t) - mean_log(post_c))
    np.testing.assert_array_equal(result["estimate"], (theta_t - theta_c).mean(axis=(0, 1)))


# ------------------------------------------------------------------- non-conjugate prior
def logit_normal_reference(prior: LogitNormalMixture, x: int, n: int, a_t: float,
                           b_t: float) -> tuple[float, float]:
    r"""Pr(p_t > p_c) and E p_c by quadrature, for p_c with a logit-normal mixture prior and
    x of n responders, and p_t ~ Beta(a_t, b_t) (independent a posteriori):
    :math:`\Pr = \int g(z)\,[1 - F_t(\sigma(z))]\,dz / \int g`, with g the unnormalised
    posterior density of z = logit p_c."""

    def log_g(z):
        prior_log = special.logsumexp(np.log(prior.weights) + stats.norm.logpdf(z, prior.means, prior.sds))
        return prior_log + x * special.log_expit(z) + (n - x) * special.log_expit(-z)

    mode = optimize.minimize_scalar(lambda z: -log_g(z), bounds=(-15, 15), method="bounded").x
    top = log_g(mode)
    lo, hi = mode - 25.0, mode + 25.0  # the density falls by far more than e^-36 beyond

    def integral(f):
        return integrate.quad(lambda z: np.exp(log_g(z) - top) * f(z), lo, hi, points=[mode, *prior.means],
                              limit=200, epsabs=0.0, epsrel=1e-11)[0]

    mass = integral(lambda z: 1.0)
    prob = integral(lambda z: stats.beta.sf(special.expit(z), a_t, b_t)) / mass
    return prob, integral(special.expit) / mass


def test_logit_normal_prior_agrees_with_quadrature():
    """A two-component normal mixture on the control log-odds (non-conjugate) vs Beta(1, 1)
    treatment: 8 replicates, including 0 and all responders, against quad."""
    prior = LogitNormalMixture([0.7, 0.3], [-1.1, 0.0], [0.3, 1.2])
    treatment = bw.BetaMixture(1.0, 1.0, 1.0)
    n_t, n_c = 40, 30
    x_t = np.array([14, 10, 20, 8, 0, 40, 12, 25])
    x_c = np.array([7, 0, 30, 12, 3, 20, 9, 5])
    s = {"n_t": n_t, "n_c": n_c, "mean_t": x_t / n_t, "mean_c": x_c / n_c}
    theta_t, theta_c = posterior_draws(prior, treatment, s, "binary", None, seed=SEED, **RUN)
    result = summarise_draws(theta_t, theta_c, direction="greater", **ANALYSIS)
    ref = np.array([logit_normal_reference(prior, xc, n_c, 1 + xt, 1 + n_t - xt) for xt, xc in zip(x_t, x_c)])
    assert_probabilities_agree(result, ref[:, 0])
    assert_means_agree(theta_c, ref[:, 1])
    assert_means_agree(theta_t - theta_c, (1 + x_t) / (2 + n_t) - ref[:, 1])


def test_new_data_and_prior_reuse_the_compiled_model(binary_run):
    """Another beta-mixture prior with as many components, and new data, swap into the
    model compiled for `binary_run` (no new compile) and still agree with the exact answer."""
    _, treatment, _, _, _ = binary_run
    compiled_before = len(mcmc._COMPILED)
    control = bw.BetaMixture.from_components([[0.5, 30.0, 30.0], [0.5, 4.0, 12.0]]).robustify(0.5)
    s = binary_summaries(np.random.default_rng(5), 40, 30, 0.5, 0.45, R)
    theta_t, theta_c = posterior_draws(control, treatment, s, "binary", None, seed=SEED, **RUN)
    assert len(mcmc._COMPILED) == compiled_before
    post_c = control.posterior(np.rint(s["mean_c"] * 30), np.full(R, 30.0))
    post_t = treatment.posterior(np.rint(s["mean_t"] * 40), np.full(R, 40.0))
    result = summarise_draws(theta_t, theta_c, direction="greater", **ANALYSIS)
    assert_probabilities_agree(result, bw.prob_diff_greater(post_t, post_c))
    assert_means_agree(theta_t - theta_c, post_t.mean() - post_c.mean())


# ------------------------------------------------------------------- seeds and inputs
def test_same_seed_same_numbers_other_seed_other_draws(binary_run):
    s, treatment, (theta_t, theta_c), _, _ = binary_run
    again = posterior_draws(MAP, treatment, s, "binary", None, seed=SEED, **RUN)
    np.testing.assert_array_equal(again[0], theta_t)
    np.testing.assert_array_equal(again[1], theta_c)
    first = analyse_mcmc(MAP, treatment, s, "binary", None, direction="greater", seed=SEED, **ANALYSIS, **RUN)
    for key, value in summarise_draws(theta_t, theta_c, direction="greater", **ANALYSIS).items():
        np.testing.assert_array_equal(first[key], value, err_msg=key)
    other = posterior_draws(MAP, treatment, s, "binary", None, seed=SEED + 1, **RUN)
    assert not np.array_equal(other[0], theta_t)
    assert not np.array_equal(other[1], theta_c)


GOOD = {"n_t": 20, "n_c": 20, "mean_t": np.array([0.4, 0.5]), "mean_c": np.array([0.3, 0.2])}


@pytest.mark.parametrize(("make", "message"), [
    (lambda: LogitNormalMixture([0.5, 0.4], [0.0, 1.0], [1.0, 1.0]), "weights must sum to 1"),
    (lambda: LogNormalMixture([1.2, -0.2], [0.0, 1.0], [1.0, 1.0]), "weights must be >= 0"),
    (lambda: LogitNormalMixture([0.5, 0.5], [0.0, 1.0], [1.0, 0.0]), "sds must be > 0"),
    (lambda: LogitNormalMixture([0.5, 0.5], [0.0, 1.0, 2.0], [1.0, 1.0]), "one value per component"),
    (lambda: LogitNormalMixture.from_components([[1.0, 0.0]]), r"shape \(K, 3\)"),
])
def test_bad_prior_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(("control", "treatment", "family", "sigma", "message"), [
    (bw.NormalMixture(1.0, 0.0, 1.0), bw.BetaMixture(1.0, 1.0, 1.0), "binary", None,
     "control prior is a NormalMixture, which does not fit the binary outcome family"),
    (MAP, bw.GammaMixture(1.0, 1.0, 1.0), "binary", None,
     "treatment prior is a GammaMixture, which does not fit the binary"),
    (LogitNormalMixture(1.0, 0.0, 1.0), bw.GammaMixture(1.0, 1.0, 1.0), "count", None,
     "control prior is a LogitNormalMixture, which does not fit the count"),
    (LogNormalMixture(1.0, 0.0, 1.0), bw.NormalMixture(1.0, 0.0, 1.0), "normal", 1.0,
     "control prior is a LogNormalMixture, which does not fit the normal"),
    ("beta", bw.BetaMixture(1.0, 1.0, 1.0), "binary", None, "control prior must be one of"),
    (MAP.broadcast_to((2,)), bw.BetaMixture(1.0, 1.0, 1.0), "binary", None, r"batch_shape \(\)"),
    (bw.NormalMixture(1.0, 0.0, 1.0), bw.NormalMixture(1.0, 0.0, 1.0), "normal", None, "sigma > 0"),
    (MAP, bw.BetaMixture(1.0, 1.0, 1.0), "survival", None, "family must be one of"),
])
def test_mismatched_prior_or_family_raises(control, treatment, family, sigma, message):
    with pytest.raises(ValueError, match=message):
        analyse_mcmc(control, treatment, GOOD, family, sigma, direction="greater", seed=1, **ANALYSIS)


@pytest.mark.parametrize(("change", "message"), [
    ({"mean_t": np.array([0.4, 1.5])}, r"must lie in \[0, 1\]"),
    ({"mean_c": np.array([0.3])}, "equal-length"),
    ({"n_c": 0}, "n_c must be a whole number >= 1"),
])
def test_bad_summaries_raise(change, message):
    with pytest.raises(ValueError, match=message):
        analyse_mcmc(MAP, bw.BetaMixture(1.0, 1.0, 1.0), {**GOOD, **change}, "binary", None,
                     direction="greater", seed=1, **ANALYSIS)


def test_bad_direction_raises():
    with pytest.raises(ValueError, match="direction must be 'greater' or 'less'"):
        analyse_mcmc(MAP, bw.BetaMixture(1.0, 1.0, 1.0), GOOD, "binary", None, direction="up", seed=1, **ANALYSIS)
