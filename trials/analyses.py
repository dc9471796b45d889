r"""Frequentist analysis kernels, vectorised over the replicates of a chunk.

Every kernel takes arrays whose first axis is the replicate (R) and returns a dict of
(R,) arrays: ``estimate``, ``std_error``, ``lower``, ``upper`` (two-sided interval at
``level``), ``statistic`` (estimate / se, signed so that larger favours treatment) with its
``df``, and unless ``p_value=False`` (group-sequential looks, see `finish`) ``p_value``
(one-sided in the design's direction, or two-sided) and ``decision`` (1 = success). Patients are in columns; ``arm`` is a (n,) 0/1 vector
(1 = treatment) shared by all replicates of a chunk.

* difference in means: pooled-variance t statistic, df = n - 2;
* ANCOVA / PROCOVA: OLS of y on [1, arm, X] per replicate (batched normal equations),
  the arm coefficient tested with df = n - 2 - p; PROCOVA's X is the centred prognostic
  score of a generator fitted on historical controls (EMA 2022 qualification opinion);
* two proportions: risk difference, Wald interval, pooled-variance z test;
* Poisson rate ratio: log rate ratio, Wald standard error sqrt(1/E_t + 1/E_c)
  (0.5 added to zero counts).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def finish(est, se, df, alpha, sided, direction, level, p_value: bool = True) -> dict[str, np.ndarray]:
    """Interval, p-value and decision from an estimate, its se and the reference df
    (t with df degrees of freedom, or normal when df is None).

    Also ``statistic`` (est / se, signed so that larger favours treatment) and ``df``.
    ``p_value=False`` leaves out the p-value and decision: a group-sequential analysis
    compares each look's statistic with its boundary and needs the p-value only at the
    look where the trial stops (`one_sided_p`), which saves most t-distribution calls.
    """
    q = special.ndtri(0.5 + level / 2) if df is None else special.stdtrit(df, 0.5 + level / 2)
    z = est / se
    out = {"estimate": est, "std_error": se, "lower": est - q * se, "upper": est + q * se,
           "statistic": z if direction == "greater" else -z, "df": df}
    if p_value:
        p = 2 * one_sided_p(np.abs(z), df) if sided == "two" else one_sided_p(out["statistic"], df)
        out.update(p_value=p, decision=(p < alpha).astype(np.int8))
    return out


def one_sided_p(statistic: np.ndarray, df) -> np.ndarray:
    """Upper-tail p-value of a statistic (normal, or t with df)."""
    # scipy.special directly: a frozen scipy.stats distribution costs more than the test
    return special.ndtr(-statistic) if df is None else special.stdtr(df, -statistic)


def arm_summaries(y: np.ndarray, arm: np.ndarray) -> dict[str, np.ndarray]:
    """Per replicate and arm: patients, mean, and sum of squared deviations."""
    t, c = y[:, arm == 1], y[:, arm == 0]
    return {"n_t": t.shape[1], "mean_t": t.mean(axis=1), "ss_t": t.var(axis=1) * t.shape[1],
            "n_c": c.shape[1], "mean_c": c.mean(axis=1), "ss_c": c.var(axis=1) * c.shape[1]}


def difference_in_means(y: np.ndarray, arm: np.ndarray, **d) -> dict[str, np.ndarray]:
    return difference_in_means_summary(arm_summaries(y, arm), **d)


def difference_in_means_summary(s: dict, **d) -> dict[str, np.ndarray]:
    """Pooled-variance t test from per-arm sufficient statistics (see `arm_summaries`)."""
    n_t, n_c = s["n_t"], s["n_c"]
    est = s["mean_t"] - s["mean_c"]
    pooled = (s["ss_t"] + s["ss_c"]) / (n_t + n_c - 2)
    se = np.sqrt(pooled * (1 / n_t + 1 / n_c))
    return finish(est, se, n_t + n_c - 2, **d)


def ancova(y: np.ndarray, arm: np.ndarray, X: np.ndarray, **d) -> dict[str, np.ndarray]:
    """y (R, n), X (R, n, p): the arm coefficient of OLS y ~ 1 + arm + X, per replicate."""
    R, n = y.shape
    design = np.concatenate([np.ones((R, n, 1)), np.broadcast_to(arm[None, :, None], (R, n, 1)), X], axis=2)
    xtx = np.einsum("rnp,rnq->rpq", design, design)
    xty = np.einsum("rnp,rn->rp", design, y)
    coef = np.linalg.solve(xtx, xty[..., None])[..., 0]
    resid = y - np.einsum("rnp,rp->rn", design, coef)
    df = n - design.shape[2]
    sigma2 = (resid**2).sum(axis=1) / df
    inv11 = np.linalg.inv(xtx)[:, 1, 1]
    return finish(coef[:, 1], np.sqrt(sigma2 * inv11), df, **d)


def procova(y: np.ndarray, arm: np.ndarray, score: np.ndarray, **d) -> dict[str, np.ndarray]:
    """ANCOVA on the prognostic score, centred within each replicate (PROCOVA)."""
    centred = score - score.mean(axis=1, keepdims=True)
    return ancova(y, arm, centred[:, :, None], **d)


def two_proportions(y: np.ndarray, arm: np.ndarray, **d) -> dict[str, np.ndarray]:
    return two_proportions_summary(arm_summaries(y, arm), **d)


def two_proportions_summary(s: dict, **d) -> dict[str, np.ndarray]:
    """Risk difference from per-arm response rates (`arm_summaries` means)."""
    n_t, n_c = s["n_t"], s["n_c"]
    p_t, p_c = s["mean_t"], s["mean_c"]
    est = p_t - p_c
    se_wald = np.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    pooled = (n_t * p_t + n_c * p_c) / (n_t + n_c)
    se_test = np.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    out = finish(est, np.where(se_test > 0, se_test, np.inf), None, **d)
    # the test uses the pooled se (score test); the interval the unpooled Wald se
    q = special.ndtri(0.5 + d["level"] / 2)
    out.update(std_error=se_wald, lower=est - q * se_wald, upper=est + q * se_wald)
    return out


def poisson_rate_ratio(y: np.ndarray, arm: np.ndarray, exposure: float = 1.0, **d) -> dict[str, np.ndarray]:
    e_t = y[:, arm == 1].sum(axis=1).astype(float)
    e_c = y[:, arm == 0].sum(axis=1).astype(float)
    n_t, n_c = (arm == 1).sum(), (arm == 0).sum()
    e_t, e_c = np.where(e_t == 0, 0.5, e_t), np.where(e_c == 0, 0.5, e_c)
    est = np.log(e_t / (n_t * exposure)) - np.log(e_c / (n_c * exposure))
    return finish(est, np.sqrt(1 / e_t + 1 / e_c), None, **d)


# ---------------------------------------------------------------------- closed forms
def power_t_test(delta: float, sd: float, n_c: int, n_t: int, alpha: float) -> float:
    """Exact one-sided power of the pooled two-sample t test (noncentral t)."""
    df = n_c + n_t - 2
    ncp = delta / (sd * np.sqrt(1 / n_c + 1 / n_t))
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, ncp))


def power_two_proportions(p_c: float, p_t: float, n_c: int, n_t: int, alpha: float) -> float:
    """One-sided power of the pooled z test (normal approximation, Fleiss)."""
    p_bar = (n_c * p_c + n_t * p_t) / (n_c + n_t)
    se0 = np.sqrt(p_bar * (1 - p_bar) * (1 / n_c + 1 / n_t))
    se1 = np.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    return float(stats.norm.sf((stats.norm.ppf(1 - alpha) * se0 - (p_t - p_c)) / se1))


def procova_sample_size(effect: float, sd: float, rho: float, alpha: float, power: float,
                        allocation: float = 1.0) -> dict[str, float]:
    """Total sample size of an unadjusted and a PROCOVA (ANCOVA) trial.

    Guenther-Schouten: the z-approximation n for the t test, inflated by the
    Guenther correction z_{1-alpha}^2 / 4 (per arm, 1:1); ANCOVA on a prognostic score
    with correlation rho to the outcome multiplies the variance by (1 - rho^2). The
    noncentral-t search gives the exact smallest n for the same power. ``allocation`` is
    n_t / n_c.
    """
    za, zb = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    k = allocation
    out = {}
    for label, var in (("unadjusted", sd**2), ("procova", sd**2 * (1 - rho**2))):
        n_c = (1 + 1 / k) * var * (za + zb) ** 2 / effect**2 + za**2 / 4
        gs_total = int(np.ceil(n_c)) + int(np.ceil(k * n_c))
        n = 4
        while True:  # exact: smallest total with noncentral-t power >= target (df reduced by 1 for the covariate)
            nc = int(np.floor(n / (1 + k)))
            nt = n - nc
            df = n - 2 - (label == "procova")
            ncp = effect / (np.sqrt(var) * np.sqrt(1 / nc + 1 / nt))
            if nc >= 2 and stats.nct.sf(stats.t.ppf(1 - alpha, df), df, ncp) >= power:
                break
            n += 1
        out[f"{label}_guenther_schouten"] = gs_total
        out[f"{label}_noncentral_t"] = n
    out["saving_fraction"] = 1 - out["procova_noncentral_t"] / out["unadjusted_noncentral_t"]
    return out
