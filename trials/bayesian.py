r"""Conjugate Bayesian two-arm analyses for the engine, built on `trials.borrowing`.

Each arm's parameter (response rate, mean with known sd, or event rate) gets a
conjugate mixture prior — the control arm's possibly borrowing from history (a MAP
prior, robustified or not; a fixed power prior; a commensurate prior) — and is updated
with the replicate's arm summaries, all replicates of a chunk in one call. Reported:

* ``posterior_prob``: :math:`\Pr(\theta_t - \theta_c > 0 \mid \text{data})` (or ``< 0``
  when benefit is a decrease);
* ``estimate``: posterior mean of the difference (rates: risk difference; counts: log
  rate ratio from the posterior means), ``std_error`` its posterior sd, ``lower``/``upper``
  a normal approximation of the credible interval;
* ``prior_ess``: the control prior's effective sample size (ELIR; a0 n_h for a power
  prior);
* ``decision``: ``posterior_prob`` > threshold (``p_value`` = 1 - posterior_prob).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from . import borrowing as bw
from . import mcmc


def mixture(spec, sigma: float | None):
    """The mixture a design prior (`PriorSpec` components) describes."""
    comps = np.asarray(spec.components, dtype=float)
    if spec.family in ("logit_normal_mixture", "log_normal_mixture"):  # not conjugate: MCMC only
        kind = mcmc.LogitNormalMixture if spec.family == "logit_normal_mixture" else mcmc.LogNormalMixture
        return kind.from_components(comps)
    if spec.family == "beta_mixture":
        return bw.BetaMixture.from_components(comps)
    if spec.family == "gamma_mixture":
        return bw.GammaMixture.from_components(comps)
    return bw.NormalMixture.from_components(comps, sigma=sigma)


def vague_prior(family: str, sigma: float | None):
    """The default treatment-arm prior: uniform rate, N(0, (100 sd)^2) mean, Gamma(0.001, 0.001) rate."""
    if family == "binary":
        return bw.BetaMixture(1.0, 1.0, 1.0)
    if family == "count":
        return bw.GammaMixture(1.0, 0.001, 0.001)
    return bw.NormalMixture(1.0, 0.0, 100.0 * sigma, sigma=sigma)


def analyse(control, treatment, prior_ess: float, summaries: dict, family: str, sigma: float | None, *,
            sampler: str = "conjugate", direction: str, level: float, threshold: float, exposure: float = 1.0,
            seed: int | None = None, pad_to: int | None = None) -> dict[str, np.ndarray]:
    """Posterior-probability analysis of one look's arm summaries under the arms' priors
    (see module docs); ``sampler="mcmc"`` samples the same posteriors with PyMC
    (`trials.mcmc`, seeded by ``seed``), with credible intervals from the draws. A short
    last chunk is padded to ``pad_to`` replicates (repeating its last one) so that the
    model compiled for the full chunks serves it too."""
    s = summaries
    R = np.shape(s["mean_t"])[0]
    if sampler == "mcmc":
        pad = max((pad_to or R) - R, 0)
        padded = {k: np.pad(v, (0, pad), mode="edge") if np.ndim(v) == 1 else v for k, v in s.items()}
        res = mcmc.analyse_mcmc(control, treatment, padded, family, sigma, direction=direction, level=level,
                                threshold=threshold, exposure=exposure, seed=seed)
        res.pop("posterior_prob_mcse")
        return {**{k: v[:R] for k, v in res.items()}, "prior_ess": np.full(R, prior_ess)}
    if family == "binary":
        post_c = control.posterior(np.rint(s["mean_c"] * s["n_c"]), np.full(R, float(s["n_c"])))
        post_t = treatment.posterior(np.rint(s["mean_t"] * s["n_t"]), np.full(R, float(s["n_t"])))
    elif family == "count":
        post_c = control.posterior(s["mean_c"] * s["n_c"], np.full(R, s["n_c"] * exposure))
        post_t = treatment.posterior(s["mean_t"] * s["n_t"], np.full(R, s["n_t"] * exposure))
    else:
        post_c = control.posterior(s["mean_c"], n=np.full(R, float(s["n_c"])))
        post_t = treatment.posterior(s["mean_t"], n=np.full(R, float(s["n_t"])))
    greater = bw.prob_diff_greater(post_t, post_c)
    prob = greater if direction == "greater" else 1.0 - greater
    if family == "count":  # the log rate ratio of the posterior means, delta-method sd
        est = np.log(post_t.mean()) - np.log(post_c.mean())
        sd = np.sqrt(post_t.var() / post_t.mean() ** 2 + post_c.var() / post_c.mean() ** 2)
    else:
        est = post_t.mean() - post_c.mean()
        sd = np.sqrt(post_t.var() + post_c.var())
    q = stats.norm.ppf(0.5 + level / 2)
    return {"estimate": est, "std_error": sd, "lower": est - q * sd, "upper": est + q * sd,
            "p_value": 1.0 - prob, "posterior_prob": prob, "decision": (prob > threshold).astype(np.int8),
            "prior_ess": np.full(R, prior_ess)}
