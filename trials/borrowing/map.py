"""Meta-analytic-predictive (MAP) priors from historical studies: a binomial-logit or normal
random-effects meta-analysis in PyMC whose new-study predictive is approximated by a mixture."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from insilico.common.compilation import reproducible_compilation

from .base import as_float, check_positive
from .fitting import MixtureFit, auto_fit_mixture, fit_beta_mixture, fit_normal_mixture


@dataclass(frozen=True)
class MapPrior:
    """A meta-analytic-predictive prior and the MCMC it came from.

    Attributes
    ----------
    mixture : BetaMixture | NormalMixture
        Parametric approximation of the predictive distribution.
    fit : MixtureFit
        The EM fit behind ``mixture`` (log-likelihood, K, convergence).
    predictive : numpy.ndarray
        Draws of a new study's parameter (one per posterior draw).
    tau : numpy.ndarray
        Posterior draws of the between-study sd, shape (chains, draws).
    summary : dict
        ``tau_mean, tau_sd, map_mean, map_sd, map_q025, map_q975`` and their Monte Carlo
        standard errors ``*_mcse``.
    diagnostics : dict
        ``rhat_max`` (rank-normalised), ``ess_bulk_min``, ``ess_tail_min``, ``divergences``.
    """

    mixture: Any
    fit: MixtureFit
    predictive: np.ndarray
    tau: np.ndarray
    summary: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)


def _sample_meta_analysis(build, seed: int, draws: int, tune: int, chains: int, target_accept: float):
    import pymc as pm  # heavy import only where MCMC is needed

    with pm.Model(), reproducible_compilation():
        build(pm)
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=seed,
            nuts_sampler="nutpie",
            progressbar=False,
            target_accept=target_accept,
        )
    post = idata["posterior"]
    mu = np.asarray(post["mu"].values, dtype=float)
    tau = np.asarray(post["tau"].values, dtype=float)
    diverging = int(np.asarray(idata["sample_stats"]["diverging"].values).sum())
    return mu, tau, diverging


def _map_summary(pred_chains: np.ndarray, tau: np.ndarray, diverging: int):
    import arviz as az

    pred = pred_chains.reshape(-1)
    s = {
        "tau_mean": float(tau.mean()),
        "tau_sd": float(tau.std()),
        "map_mean": float(pred.mean()),
        "map_sd": float(pred.std()),
        "map_q025": float(np.quantile(pred, 0.025)),
        "map_q975": float(np.quantile(pred, 0.975)),
        "tau_mean_mcse": float(az.mcse(tau)),
        "map_mean_mcse": float(az.mcse(pred_chains)),
        "map_q025_mcse": float(az.mcse(pred_chains, method="quantile", prob=0.025)),
        "map_q975_mcse": float(az.mcse(pred_chains, method="quantile", prob=0.975)),
    }
    d = {
        "rhat_max": float(max(az.rhat(tau, method="rank"), az.rhat(pred_chains, method="rank"))),
        "ess_bulk_min": float(min(az.ess(tau, method="bulk"), az.ess(pred_chains, method="bulk"))),
        "ess_tail_min": float(
            min(
                az.ess(tau, method="tail", prob=(0.05, 0.95)),
                az.ess(pred_chains, method="tail", prob=(0.05, 0.95)),
            )
        ),
        "divergences": float(diverging),
    }
    return s, d


def map_prior_binary(
    r,
    n,
    *,
    tau_prior_sd: float = 1.0,
    intercept_sd: float = 2.0,
    seed: int,
    draws: int = 2500,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.95,
    k: int | None = None,
) -> MapPrior:
    r"""MAP prior for a control response rate from historical study counts.

    Binomial-logit random-effects meta-analysis (RBesT's ``gMAP`` with
    ``tau.dist="HalfNormal"``), non-centred for NUTS:

    .. math::
        r_j \sim \mathrm{Bin}(n_j, \theta_j),\quad
        \operatorname{logit}\theta_j = \mu + \tau\eta_j,\quad \eta_j\sim\mathrm{N}(0,1),\\
        \mu\sim\mathrm{N}(0, \text{intercept\_sd}^2),\quad
        \tau\sim\mathrm{HalfNormal}(\text{tau\_prior\_sd}).

    The MAP prior is the predictive of a new study,
    :math:`\theta_\star = \operatorname{logit}^{-1}(\mu + \tau\epsilon)`, one
    :math:`\epsilon\sim\mathrm{N}(0,1)` per posterior draw, approximated by a beta mixture
    fitted by EM: ``k`` components, or the best of 1-4 by AIC with penalty 6 (RBesT's
    ``automixfit``).  Sampled with nutpie (``target_accept`` 0.95: at the default 0.8
    the AS example gives a few divergences); the seed fixes the draws.
    """
    rr = as_float("r", r).ravel()
    nn = as_float("n", n).ravel()
    if rr.shape != nn.shape or rr.size < 2:
        raise ValueError(
            f"r and n must be equal-length vectors of >= 2 studies, got {rr.shape} and {nn.shape}"
        )
    if np.any(rr < 0) or np.any(rr > nn):
        raise ValueError(f"need 0 <= r <= n per study, got r={rr!r}, n={nn!r}")

    def build(pm):
        mu = pm.Normal("mu", 0.0, intercept_sd)
        tau = pm.HalfNormal("tau", tau_prior_sd)
        eta = pm.Normal("eta", 0.0, 1.0, shape=rr.size)
        pm.Binomial("r", n=nn.astype(int), logit_p=mu + tau * eta, observed=rr.astype(int))

    mu, tau, div = _sample_meta_analysis(build, seed, draws, tune, chains, target_accept)
    eps = np.random.default_rng([seed, 1]).standard_normal(mu.shape)
    pred = special.expit(mu + tau * eps)
    fit = auto_fit_mixture(pred.ravel(), "beta") if k is None else fit_beta_mixture(pred.ravel(), k)
    s, d = _map_summary(pred, tau, div)
    return MapPrior(fit.mixture, fit, pred.ravel(), tau, s, d)


def map_prior_normal(
    means,
    ses,
    *,
    sigma: float | None = None,
    tau_prior_sd: float = 1.0,
    intercept_mean: float = 0.0,
    intercept_sd: float = 10.0,
    seed: int,
    draws: int = 2500,
    tune: int = 1000,
    chains: int = 4,
    target_accept: float = 0.95,
    k: int | None = None,
) -> MapPrior:
    r"""MAP prior for a control mean from historical study means and standard errors.

    .. math::
        \bar y_j \sim \mathrm{N}(\theta_j, se_j^2),\quad \theta_j=\mu+\tau\eta_j,\quad
        \mu\sim\mathrm{N}(m_0, s_0^2),\quad \tau\sim\mathrm{HalfNormal}(\text{tau\_prior\_sd});

    predictive :math:`\theta_\star=\mu+\tau\epsilon`, approximated by a normal mixture
    (EM; ``k`` or the AIC-6 best of 1-4).  ``sigma`` (sampling sd of one observation) is
    attached to the mixture for ``n``-based updates and the ESS.  Scale ``tau_prior_sd``
    and ``intercept_sd`` to the outcome's units.
    """
    y = as_float("means", means).ravel()
    se = as_float("ses", ses).ravel()
    if y.shape != se.shape or y.size < 2:
        raise ValueError(
            f"means and ses must be equal-length vectors of >= 2 studies, got {y.shape} and {se.shape}"
        )
    check_positive("ses", se)

    def build(pm):
        mu = pm.Normal("mu", intercept_mean, intercept_sd)
        tau = pm.HalfNormal("tau", tau_prior_sd)
        eta = pm.Normal("eta", 0.0, 1.0, shape=y.size)
        pm.Normal("y", mu=mu + tau * eta, sigma=se, observed=y)

    mu, tau, div = _sample_meta_analysis(build, seed, draws, tune, chains, target_accept)
    eps = np.random.default_rng([seed, 1]).standard_normal(mu.shape)
    pred = mu + tau * eps
    kw = {"sigma": sigma}
    fit = (
        auto_fit_mixture(pred.ravel(), "normal", **kw)
        if k is None
        else fit_normal_mixture(pred.ravel(), k, **kw)
    )
    s, d = _map_summary(pred, tau, div)
    return MapPrior(fit.mixture, fit, pred.ravel(), tau, s, d)
