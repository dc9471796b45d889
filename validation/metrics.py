"""Held-out validation metrics: a virtual cohort (or a model's predictions) vs real data.

Output comparison and equivalency of input parameters (ASME V&V 40; REGULATORY.md):
marginal distances (KS, Wasserstein), a classifier's power to tell synthetic from real
(pMSE ratio, detection AUC), the Mahalanobis-chi^2 QQ of SIMCor, Kaplan-Meier distance,
RMST with an equivalence test (TOST) on a pre-set margin, calibration, concordance and
interval coverage. Plain numpy kernels with thin pandas wrappers; covariate tables go
through :func:`validation.fidelity.numeric_view`, so every metric sees the same columns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logit

from insilico.validation.fidelity import kaplan_meier, km_steps, numeric_pair

KINDS = ("continuous", "count", "binary", "categorical")


# ---------------------------------------------------------------------- input checks
def _check_tables(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str]) -> None:
    if not columns:
        raise ValueError("columns: expected at least one covariate (name -> type)")
    for name, kind in columns.items():
        if kind not in KINDS:
            raise ValueError(f"columns[{name!r}]: type {kind!r} is not one of {', '.join(KINDS)}")
    for label, df in (("real", real), ("synth", synth)):
        missing = [n for n in columns if n not in df.columns]
        if missing:
            raise ValueError(f"{label}: missing column(s) {', '.join(map(repr, missing))}")
        if len(df) == 0:
            raise ValueError(f"{label}: table has no rows")


def as_vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(a)))} missing or infinite value(s)")
    return a


def same_length(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("arguments differ in length: " + ", ".join(f"{k}={n}" for k, n in lengths.items()))


def _survival_input(time, event, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = as_vector(time, f"time{name}")
    e = as_vector(event, f"event{name}")
    same_length(**{f"time{name}": t, f"event{name}": e})
    if np.any(t < 0):
        raise ValueError(f"time{name}: negative time(s)")
    if not np.all((e == 0) | (e == 1)):
        raise ValueError(f"event{name}: expected 0/1 values")
    return t, e.astype(int)


def _complete_rows(r: pd.DataFrame, s: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Complete cases of both numeric views, without columns constant over both tables."""
    r, s = r[r.notna().all(axis=1)], s[s.notna().all(axis=1)]
    both = pd.concat([r, s])
    keep = [c for c in both.columns if both[c].std() > 0]
    if not keep:
        raise ValueError("columns: every covariate is constant over both tables")
    if len(r) < 2 or len(s) < 2:
        raise ValueError("fewer than 2 complete rows in the real or the synthetic table")
    return r[keep].to_numpy(), s[keep].to_numpy(), keep, {"n_real": len(r), "n_synthetic": len(s)}


# ---------------------------------------------------------------------- marginals
def _ks_2samp(x: np.ndarray, y: np.ndarray):
    """scipy's two-sample KS; its exact p-value where it succeeds, else the asymptotic one.

    (scipy falls back by itself but warns; the fallback is the documented behaviour.)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return stats.ks_2samp(x, y)
        except RuntimeWarning:
            return stats.ks_2samp(x, y, method="asymp")


def ks_wasserstein(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Per numeric column: two-sample KS statistic and p-value, 1-Wasserstein distance.

    ``wasserstein_std`` divides the distance by the real column's sd (ddof=1), so it reads
    like an SMD of whole distributions. On a 0/1 indicator the KS statistic is the
    absolute difference in proportions (and its p-value is conservative: ties).
    Missing values are dropped per column.
    """
    _check_tables(real, synth, columns)
    r, s = numeric_pair(real, synth, columns)
    rows = {}
    for c in r.columns:
        x, y = r[c].dropna().to_numpy(), s[c].dropna().to_numpy()
        if len(x) == 0 or len(y) == 0:
            raise ValueError(f"column {c!r}: no numeric values in the {'real' if len(x) == 0 else 'synthetic'} table")
        ks = _ks_2samp(x, y)
        w = stats.wasserstein_distance(x, y)
        sd = np.std(x, ddof=1) if len(x) > 1 else 0.0
        rows[c] = {"ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue), "wasserstein": float(w),
                   "wasserstein_std": float(w / sd) if sd > 0 else np.nan, "n_real": len(x), "n_synthetic": len(y)}
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------------- propensity
def propensity_metrics(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str], seed: int,
                       folds: int = 5) -> dict:
    """Can a logistic regression tell synthetic rows from real ones?

    pMSE = mean((p_i - c)^2), c = n_synth / N, from the model fitted to all N rows
    (Snoke, Raab, Nowok, Dibben & Slavkovic 2018, JRSS A 181:663). For a logistic model
    with k identifiable parameters (rank of [1, X]) under "no difference":

    * held-out validation -- real and synthetic rows are independent samples of one
      distribution -- N pMSE / (c(1-c)) ~ chi^2_{k-1}, so E[pMSE] = (k-1) c(1-c) / N and
      SD = sqrt(2(k-1)) c(1-c) / N. This is ``pmse_null`` and ``pmse_ratio`` (~1 good).
    * Snoke et al.'s null, E = (k-1)(1-c)^2 c / N, SD = sqrt(2(k-1)) (1-c)^2 c / N, holds
      when the synthetic rows are drawn from a correct model *fitted to these real rows*
      (real sample fixed; only the synthetic side varies). It is (1-c) times the one
      above, so for independent samples its ratio is ~1/(1-c): 2 at c = 1/2, 33 for a
      20,000-row virtual cohort against 600 held-out patients. Reported as
      ``pmse_null_conditional`` / ``pmse_ratio_conditional`` for comparison with synthpop.

    The detection AUC uses out-of-fold probabilities from stratified ``folds``-fold
    cross-validation (~0.5 good, as in SDMetrics / synthcity). Covariates are
    standardised inside each fit; the L2 penalty is negligible (C = 1e4) and only keeps
    coefficients finite when the classes separate. Complete cases only.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_tables(real, synth, columns)
    if int(folds) < 2:
        raise ValueError(f"folds: expected at least 2, got {folds}")
    xr, xs, keep, counts = _complete_rows(*numeric_pair(real, synth, columns))
    if min(len(xr), len(xs)) < folds:
        raise ValueError(f"folds: {folds} folds need at least {folds} complete rows in each table")
    x = np.vstack([xr, xs])
    y = np.r_[np.zeros(len(xr)), np.ones(len(xs))]
    n = len(y)
    c = len(xs) / n
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1e4, max_iter=5000))
    p = model.fit(x, y).predict_proba(x)[:, 1]
    pmse = float(np.mean((p - c) ** 2))
    k = int(np.linalg.matrix_rank(np.column_stack([np.ones(n), x])))
    null_mean = (k - 1) * c * (1 - c) / n
    null_sd = np.sqrt(2 * (k - 1)) * c * (1 - c) / n
    cond_mean, cond_sd = null_mean * (1 - c), null_sd * (1 - c)
    cv = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    p_oof = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    return {"pmse": pmse, "pmse_null": float(null_mean), "pmse_null_sd": float(null_sd),
            "pmse_ratio": float(pmse / null_mean), "pmse_standardised": float((pmse - null_mean) / null_sd),
            "pmse_null_conditional": float(cond_mean), "pmse_null_conditional_sd": float(cond_sd),
            "pmse_ratio_conditional": float(pmse / cond_mean),
            "detection_auc": float(roc_auc_score(y, p_oof)), "n_parameters": k, "c": float(c),
            "folds": int(folds), "seed": seed, "covariates": keep, **counts}


# ---------------------------------------------------------------------- Mahalanobis QQ
def mahalanobis_qq(real: pd.DataFrame, synth: pd.DataFrame, columns: dict[str, str]) -> dict:
    """Squared Mahalanobis distances of real rows from the synthetic cohort, vs chi^2_p.

    SIMCor-style QQ: d_i^2 = (x_i - m)' S^+ (x_i - m) with m, S the synthetic cohort's
    mean and covariance (Moore-Penrose pseudo-inverse S^+, so one-hot levels that sum to
    one are fine) and p = rank(S). If the synthetic cohort were multivariate normal and
    the real rows came from it, d^2 ~ chi^2_p: the QQ plot is ``distances`` (sorted)
    against ``quantiles`` = chi^2_p quantiles at (i - 0.5)/n.

    Summary: ``ks_real`` is the KS statistic of the real distances against chi^2_p. Binary,
    count and skewed covariates are not normal, so even the synthetic cohort's own rows
    deviate from chi^2_p; ``ks_synthetic`` is that reference, and the evidence is the
    excess ``ks_excess = ks_real - ks_synthetic`` (near 0 when the real rows sit in the
    synthetic cohort as its own rows do). ``ks_real_vs_synthetic`` (and its p-value)
    compares the two distance samples directly, with no normality assumption.
    Complete cases only.
    """
    _check_tables(real, synth, columns)
    xr, xs, keep, counts = _complete_rows(*numeric_pair(real, synth, columns))
    mean = xs.mean(axis=0)
    cov = np.atleast_2d(np.cov(xs, rowvar=False))
    p = int(np.linalg.matrix_rank(cov))
    if p == 0:
        raise ValueError("synth: covariates are constant in the synthetic cohort")
    prec = np.linalg.pinv(cov, hermitian=True)

    def d2(x):
        z = x - mean
        return np.einsum("ij,jk,ik->i", z, prec, z)

    d_real, d_synth = np.sort(d2(xr)), np.sort(d2(xs))
    chi2 = stats.chi2(p)
    q = chi2.ppf((np.arange(1, len(d_real) + 1) - 0.5) / len(d_real))
    ks_r = stats.kstest(d_real, chi2.cdf).statistic
    ks_s = stats.kstest(d_synth, chi2.cdf).statistic
    two = _ks_2samp(d_real, d_synth)
    return {"distances": d_real, "quantiles": q, "distances_synthetic": d_synth, "p": p,
            "ks_real": float(ks_r), "ks_synthetic": float(ks_s), "ks_excess": float(ks_r - ks_s),
            "ks_real_vs_synthetic": float(two.statistic), "ks_real_vs_synthetic_pvalue": float(two.pvalue),
            "covariates": keep, **counts}


# ---------------------------------------------------------------------- survival
def km_distance(time_r, event_r, time_s, event_s, grid=None) -> float:
    """Sup-norm distance between two Kaplan-Meier curves.

    Both curves are right-continuous steps that move only at event times, so the sup over
    the union of the two samples' event times is the sup over all t. A ``grid`` restricts
    the comparison to those times (e.g. up to a landmark).
    """
    tr, er = _survival_input(time_r, event_r, "_r")
    ts, es = _survival_input(time_s, event_s, "_s")
    g = np.union1d(tr[er == 1], ts[es == 1]) if grid is None else as_vector(grid, "grid")
    if g.size == 0:
        return 0.0
    return float(np.max(np.abs(kaplan_meier(tr, er, g) - kaplan_meier(ts, es, g))))


def rmst(time, event, tau: float) -> tuple[float, float]:
    """Restricted mean survival time (area under the Kaplan-Meier curve up to ``tau``) and its se.

    Var = sum over event times t_j <= tau of A_j^2 d_j / (Y_j (Y_j - d_j)), with
    A_j = integral of S from t_j to tau, d_j deaths and Y_j at risk: the Greenwood-type
    delta-method variance (Klein & Moeschberger 2003, Survival Analysis, sec. 4.5; also
    R survival's se(rmean)). A term with Y_j = d_j has A_j = 0 and contributes 0.
    ``tau`` beyond the last follow-up is refused while the curve is still above 0 there:
    the area would rest on an extrapolated flat tail.
    """
    t, e = _survival_input(time, event, "")
    tau = float(tau)
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau: expected a positive time, got {tau}")
    uniq, deaths, at_risk, surv = km_steps(t, e)
    if tau > uniq[-1] and surv[-1] > 0:
        raise ValueError(f"tau: {tau} is beyond the last follow-up time {uniq[-1]} while survival is still "
                         f"{surv[-1]:.3g}; choose tau within follow-up")
    ev = (deaths > 0) & (uniq <= tau)
    te, de, ye, se_ = uniq[ev], deaths[ev], at_risk[ev], surv[ev]
    edges = np.r_[0.0, te, tau]
    heights = np.r_[1.0, se_]  # S on [edges[i], edges[i+1])
    pieces = heights * np.diff(edges)
    estimate = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1][1:]  # A_j = area from t_j to tau
    denom = ye * (ye - de)
    terms = np.divide(tail**2 * de, denom, out=np.zeros_like(tail), where=denom > 0)
    return estimate, float(np.sqrt(terms.sum()))


def rmst_tost(time_r, event_r, time_s, event_s, tau: float, margin: float, alpha: float = 0.05) -> dict:
    """Equivalence of RMST up to ``tau``: two one-sided tests (Schuirmann 1987) on a pre-set margin.

    delta = RMST_synthetic - RMST_real, se = sqrt(se_s^2 + se_r^2) (independent samples),
    normal approximation. H0-: delta <= -margin (p_lower = 1 - Phi((delta + margin)/se));
    H0+: delta >= margin (p_upper = Phi((delta - margin)/se)). TOST p = max of the two;
    ``equivalent`` = p < alpha, the same verdict as the (1 - 2 alpha) CI lying inside
    (-margin, margin).
    """
    margin, alpha = float(margin), float(alpha)
    if not margin > 0:
        raise ValueError(f"margin: expected a positive RMST difference, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: expected 0 < alpha < 0.5, got {alpha}")
    m_r, se_r = rmst(time_r, event_r, tau)
    m_s, se_s = rmst(time_s, event_s, tau)
    diff, se = m_s - m_r, float(np.hypot(se_r, se_s))
    if se > 0:
        p_lower = float(stats.norm.sf((diff + margin) / se))
        p_upper = float(stats.norm.cdf((diff - margin) / se))
    else:  # no sampling error: the verdict is the point estimate's
        p_lower, p_upper = float(diff <= -margin), float(diff >= margin)
    z = stats.norm.ppf(1 - alpha)
    p = max(p_lower, p_upper)
    return {"rmst_real": m_r, "se_real": se_r, "rmst_synthetic": m_s, "se_synthetic": se_s,
            "difference": diff, "se": se, "p_lower": p_lower, "p_upper": p_upper, "p_value": p,
            "equivalent": bool(p < alpha), "ci_lower": diff - z * se, "ci_upper": diff + z * se,
            "ci_level": 1 - 2 * alpha, "tau": float(tau), "margin": margin, "alpha": alpha}


# ---------------------------------------------------------------------- calibration
def _logistic_irls(x: np.ndarray, y: np.ndarray, offset: np.ndarray, max_iter: int = 100) -> np.ndarray | None:
    """Maximum-likelihood logistic regression with an offset (Newton-Raphson, step halving).

    None when it does not converge (separation: the MLE is infinite).
    """
    beta = np.zeros(x.shape[1])

    def loglik(b):
        eta = x @ b + offset
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    ll = loglik(beta)
    for _ in range(max_iter):
        mu = expit(x @ beta + offset)
        w = mu * (1 - mu)
        try:
            step = np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        for _ in range(30):
            new = loglik(beta + step)
            if new >= ll - 1e-12:
                break
            step = step / 2
        beta, ll = beta + step, new
        if np.max(np.abs(step)) < 1e-10:
            return beta if np.all(np.abs(beta) < 1e6) else None
    return None


def _binned(observed: np.ndarray, predicted: np.ndarray, bins: int) -> pd.DataFrame:
    """Calibration table over quantile groups of the prediction (deciles by default).

    Groups as pandas.qcut: right-closed intervals between quantiles, the lowest closed,
    coinciding quantiles (ties) merged.
    """
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, max(int(bins), 1) + 1)))
    if len(edges) < 2:
        groups, k = np.zeros(len(predicted), dtype=int), 1
    else:
        k = len(edges) - 1
        groups = np.clip(np.searchsorted(edges, predicted, side="left") - 1, 0, k - 1)
    n = np.bincount(groups, minlength=k)
    keep = n > 0
    mean_p = np.bincount(groups, predicted, k)[keep] / n[keep]
    mean_y = np.bincount(groups, observed, k)[keep] / n[keep]
    ss = np.bincount(groups, observed**2, k)[keep] - n[keep] * mean_y**2
    var = np.where(n[keep] > 1, np.clip(ss, 0, None) / np.maximum(n[keep] - 1, 1), 0.0)
    return pd.DataFrame({"mean_predicted": mean_p, "observed": mean_y, "n": n[keep],
                         "observed_se": np.sqrt(var / n[keep])})


def calibration(observed, predicted, kind: str, bins: int = 10) -> dict:
    """Calibration slope and intercept of predictions, and a binned table for the plot.

    continuous: OLS observed = intercept + slope * predicted (ideal 0 and 1), R^2, and
    calibration-in-the-large = mean(observed - predicted).
    binary: logistic recalibration logit P(y=1) = a + b logit(p) gives the slope b;
    calibration-in-the-large is a in logit P(y=1) = a + logit(p) (offset, slope fixed at
    1) (Cox 1958; Steyerberg, Clinical Prediction Models, 2nd ed., ch. 15). Probabilities
    are clipped to [1e-12, 1 - 1e-12] before the logit. Slope and intercepts are NaN
    when the classes are perfectly separated (infinite MLE).
    ``table``: per quantile group of the prediction (deciles), mean predicted, observed
    mean (rate), its se and n.
    """
    y = as_vector(observed, "observed")
    p = as_vector(predicted, "predicted")
    same_length(observed=y, predicted=p)
    if len(y) < 3:
        raise ValueError(f"observed: calibration needs at least 3 pairs, got {len(y)}")
    if kind == "continuous":
        if np.ptp(p) == 0:
            raise ValueError("predicted: constant predictions have no calibration slope")
        fit = stats.linregress(p, y)
        out = {"slope": float(fit.slope), "intercept": float(fit.intercept), "r_squared": float(fit.rvalue**2),
               "calibration_in_the_large": float(np.mean(y - p))}
    elif kind == "binary":
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("observed: binary calibration expects 0/1 outcomes")
        if np.any((p < 0) | (p > 1)):
            raise ValueError("predicted: binary calibration expects probabilities in [0, 1]")
        if y.min() == y.max():
            raise ValueError("observed: only one outcome class; calibration slope is undefined")
        lp = logit(np.clip(p, 1e-12, 1 - 1e-12))
        ones = np.ones((len(y), 1))
        ab = _logistic_irls(np.column_stack([ones, lp]), y, np.zeros(len(y))) if np.ptp(lp) > 0 else None
        a = _logistic_irls(ones, y, lp)
        out = {"slope": float(ab[1]) if ab is not None else np.nan,
               "intercept": float(ab[0]) if ab is not None else np.nan,
               "calibration_in_the_large": float(a[0]) if a is not None else np.nan,
               "observed_rate": float(y.mean()), "mean_predicted": float(p.mean())}
    else:
        raise ValueError(f"kind: expected 'continuous' or 'binary', got {kind!r}")
    return {**out, "kind": kind, "n": len(y), "table": _binned(y, p, int(bins))}


# ---------------------------------------------------------------------- discrimination
def concordance(time_or_y, score, event=None) -> float:
    """Harrell's C (survival, ``event`` given) or ROC AUC (binary ``time_or_y``, no ``event``).

    Survival: a higher score means higher risk, i.e. a shorter time. Pair (i, j) is
    comparable when i has an event and t_i < t_j, or t_i = t_j with j censored (j is known
    to outlive i); concordant when score_i > score_j, ties in score count 1/2 (Harrell et
    al. 1982; the convention of lifelines.utils.concordance_index, which takes scores as
    predicted *times*: pass -score there). Chunked O(n^2) numpy over event rows.
    Binary: the Mann-Whitney form of the AUC with mid-ranks, so tied scores count 1/2.
    """
    s = as_vector(score, "score")
    y = as_vector(time_or_y, "time_or_y")
    same_length(time_or_y=y, score=s)
    if event is None:
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("time_or_y: without `event`, expected a 0/1 outcome (for survival pass event=)")
        n1 = int(y.sum())
        n0 = len(y) - n1
        if n1 == 0 or n0 == 0:
            raise ValueError("time_or_y: only one outcome class; the AUC is undefined")
        ranks = stats.rankdata(s)
        return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    t, e = _survival_input(y, event, "")
    dead = np.flatnonzero(e == 1)
    censored = e == 0
    chunk = max(1, 2_000_000 // len(t))
    conc = ties = pairs = 0.0
    for start in range(0, len(dead), chunk):
        i = dead[start:start + chunk]
        ti, si = t[i][:, None], s[i][:, None]
        comparable = (t[None, :] > ti) | ((t[None, :] == ti) & censored[None, :])
        pairs += comparable.sum()
        conc += (comparable & (si > s[None, :])).sum()
        ties += (comparable & (si == s[None, :])).sum()
    if pairs == 0:
        raise ValueError("time_or_y/event: no comparable pairs (no event before another subject's time)")
    return float((conc + 0.5 * ties) / pairs)


def interval_coverage(observed, lower, upper) -> float:
    """Share of observations inside their predictive interval [lower, upper] (ends included)."""
    y, lo, hi = as_vector(observed, "observed"), as_vector(lower, "lower"), as_vector(upper, "upper")
    same_length(observed=y, lower=lo, upper=hi)
    if np.any(lo > hi):
        raise ValueError(f"lower/upper: {int(np.sum(lo > hi))} interval(s) with lower > upper")
    return float(np.mean((y >= lo) & (y <= hi)))
