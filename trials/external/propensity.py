"""Propensity scores of current-trial membership and ATT weights, vectorised over replicates.

Per replicate, the logistic regression of z_i (1 = current trial, 0 = external) on [1, x_i] is
fitted for all replicates at once by Newton-Raphson (IRLS, `logistic_irls`); the external
patients get ATT odds weights w_i = e(x_i) / (1 - e(x_i)) (`att_weights`), which reweight the
external population to the current trial's covariate distribution; `balance` gives the
standardised mean differences and variance ratios before and after."""

from __future__ import annotations

import numpy as np
from scipy import special

RIDGE = 1e-8
r"""Default ridge added to the logistic Hessian's slope block (separation safety).

A penalty :math:`\tfrac{\lambda}{2}\lVert\beta_{\text{slopes}}\rVert^2` with
:math:`\lambda = 10^{-8}` keeps the Newton system positive definite and the slopes finite
under complete separation, while moving a well-posed fit by about
:math:`\lambda \lVert H^{-1}\beta\rVert`, far below 1e-6 for any realistic sample size.
The intercept is not penalised.
"""


# ---------------------------------------------------------------------- input helpers
def as_batch_matrix(X: np.ndarray, name: str) -> np.ndarray:
    """(R, n, p) float array; a (n, p) matrix is one replicate."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3:
        raise ValueError(f"{name} must be (R, n, p) or (n, p); got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains non-finite values")
    return X


def as_batch_vector(y: np.ndarray, name: str, dtype=float) -> np.ndarray:
    """(R, n) array; a (n,) vector is one replicate."""
    y = np.asarray(y, dtype=dtype)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2:
        raise ValueError(f"{name} must be (R, n) or (n,); got shape {y.shape}")
    return y


def per_replicate(value, R: int, name: str) -> np.ndarray:
    """A scalar or (R,) parameter as an (R,) float array."""
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        return np.full(R, float(v))
    if v.shape != (R,):
        raise ValueError(f"{name} must be a scalar or have shape ({R},); got shape {v.shape}")
    return v


def weights_or_ones(w, shape: tuple[int, int], name: str = "w") -> np.ndarray:
    if w is None:
        return np.ones(shape)
    w = np.broadcast_to(np.asarray(w, dtype=float), shape) if np.ndim(w) == 1 else np.asarray(w, dtype=float)
    if w.shape != shape:
        raise ValueError(f"{name} must have the shape of the external outcomes {shape}; got {w.shape}")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return w


# ---------------------------------------------------------------------- propensity score
def logistic_irls(design: np.ndarray, z: np.ndarray, *, max_iter: int = 25, tol: float = 1e-10,
                  ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Batched logistic regression by Newton-Raphson (IRLS) with step halving.

    For every replicate r, maximises the penalised log-likelihood

    .. math::
        \ell_r(\beta) = \sum_i \{z_{ri}\,\eta_{ri} - \log(1 + e^{\eta_{ri}})\}
                        - \tfrac{\lambda}{2} \sum_{j \ge 1} \beta_j^2,
        \qquad \eta_{ri} = d_{ri}^\top \beta,

    with Newton steps :math:`\beta \leftarrow \beta + t\,H^{-1} g`, where
    :math:`g = D^\top(z - \mu) - \lambda \tilde\beta`,
    :math:`H = D^\top \operatorname{diag}\{\mu(1-\mu)\} D + \lambda \tilde I`
    (:math:`\tilde I` is the identity without the intercept entry), all R systems solved
    at once by `np.linalg.solve` on (R, q, q). The step length t starts at 1 and is
    halved (up to 30 times) while the objective decreases, so a replicate never moves
    downhill. A replicate stops updating once
    :math:`\max_j |t\,\Delta\beta_j| \le \mathrm{tol}\,(1 + \max_j |\beta_j|)`.

    Parameters
    ----------
    design : (R, n, q) array
        Design matrices; column 0 must be the intercept (it is not penalised).
    z : (R, n) or (n,) array of 0/1
        Responses.
    max_iter : int
        Newton iterations at most.
    tol : float
        Relative step tolerance for convergence.
    ridge : float
        :math:`\lambda`, see `RIDGE`.

    Returns
    -------
    coef : (R, q) array
        Estimates (from the last iteration for replicates that did not converge).
    converged : (R,) bool array
        False where the step criterion was not met within ``max_iter`` (typically
        complete or quasi-complete separation, where only the ridge keeps slopes finite)
        or the iterates became non-finite.
    n_iter : (R,) int array
        Newton iterations used.
    """
    design = np.asarray(design, dtype=float)
    R, n, q = design.shape
    z = np.broadcast_to(np.asarray(z, dtype=float), (R, n))
    pen = np.full(q, float(ridge))
    pen[0] = 0.0

    def objective(X, zz, b):
        eta = np.matmul(X, b[..., None])[..., 0]
        log1pexp = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))  # stable log(1 + e^eta)
        return (zz * eta - log1pexp).sum(axis=1) - 0.5 * (pen * b**2).sum(axis=1), eta

    coef = np.zeros((R, q))
    converged = np.zeros(R, dtype=bool)
    failed = np.zeros(R, dtype=bool)
    n_iter = np.zeros(R, dtype=int)
    ll, eta = objective(design, z, coef)
    for _ in range(max_iter):
        active = ~converged & ~failed
        if not active.any():
            break
        every = active.all()  # views instead of copies while no replicate has stopped
        X, zz, b, e0 = ((design, z, coef, eta) if every else
                        (design[active], z[active], coef[active], eta[active]))
        mu = special.expit(e0)
        hess = np.matmul(X.transpose(0, 2, 1) * (mu * (1 - mu))[:, None, :], X) + np.diag(pen)
        grad = np.matmul(X.transpose(0, 2, 1), (zz - mu)[..., None])[..., 0] - pen * b
        try:
            step = np.linalg.solve(hess, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:  # only possible with ridge = 0 and a singular design
            failed[active] = True
            break
        t = np.ones(len(b))
        ll_old = ll[active]
        new = b + step
        ll_new, eta_new = objective(X, zz, new)
        for _h in range(30):
            # accept equal-up-to-rounding values: near the optimum the change is ~1e-16 |ll|
            worse = ~(ll_new >= ll_old - 1e-12 * (1 + np.abs(ll_old)))
            if not worse.any():
                break
            t[worse] /= 2
            new[worse] = b[worse] + t[worse, None] * step[worse]
            ll_new[worse], eta_new[worse] = objective(X[worse], zz[worse], new[worse])
        moved = np.abs(t[:, None] * step).max(axis=1)
        coef[active], ll[active], eta[active] = new, ll_new, eta_new
        n_iter[active] += 1
        bad = ~np.all(np.isfinite(new), axis=1) | ~np.isfinite(ll_new)
        done = ~bad & (moved <= tol * (1 + np.abs(new).max(axis=1)))
        idx = np.flatnonzero(active)
        failed[idx[bad]] = True
        converged[idx[done]] = True
    return coef, converged & ~failed, n_iter


def propensity_scores(X_trial: np.ndarray, X_external: np.ndarray, max_iter: int = 25, tol: float = 1e-10,
                      *, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    r"""Propensity of current-trial membership for each external patient.

    Per replicate, the logistic model
    :math:`\Pr(z = 1 \mid x) = e(x) = \operatorname{expit}(\beta_0 + x^\top\beta)`
    is fitted to the stacked current-trial (z = 1) and external (z = 0) patients by
    `logistic_irls` (batched Newton-Raphson with a :math:`10^{-8}` ridge on the slopes,
    see `RIDGE`).

    Parameters
    ----------
    X_trial : (R, n_trial, p) or (n_trial, p) array
        Covariates of the current-trial patients (all arms: randomisation makes them one
        sample of the trial population).
    X_external : (R, n_ext, p) or (n_ext, p) array
        Covariates of the external patients, same columns.
    max_iter, tol : int, float
        Passed to `logistic_irls`.
    ridge : float
        Slope penalty, see `RIDGE`.

    Returns
    -------
    ps : (R, n_ext) array
        Fitted :math:`e(x_i)` of the external patients.
    converged : (R,) bool array
        Newton convergence per replicate (False flags separation or non-finite fits).
    """
    Xt, Xe = as_batch_matrix(X_trial, "X_trial"), as_batch_matrix(X_external, "X_external")
    if Xt.shape[0] != Xe.shape[0] or Xt.shape[2] != Xe.shape[2]:
        raise ValueError(f"X_trial {Xt.shape} and X_external {Xe.shape} must share R and p")
    fit = fit_ps(Xt, Xe, max_iter, tol, ridge)
    return fit["ps"][:, Xt.shape[1]:], fit["converged"]


def fit_ps(Xt: np.ndarray, Xe: np.ndarray, max_iter: int, tol: float, ridge: float) -> dict[str, np.ndarray]:
    """The stacked design [1, X] (trial rows first), z, coefficients, fitted ps of all rows."""
    R, n_t, _ = Xt.shape
    n_e = Xe.shape[1]
    if n_t == 0 or n_e == 0:
        raise ValueError(f"both groups need patients; got n_trial={n_t}, n_ext={n_e}")
    design = np.concatenate([np.ones((R, n_t + n_e, 1)), np.concatenate([Xt, Xe], axis=1)], axis=2)
    z = np.concatenate([np.ones(n_t), np.zeros(n_e)])
    coef, converged, _ = logistic_irls(design, z, max_iter=max_iter, tol=tol, ridge=ridge)
    ps = special.expit(np.matmul(design, coef[..., None])[..., 0])
    return {"design": design, "z": z, "coef": coef, "converged": converged, "ps": ps}


def att_weights(ps: np.ndarray, truncate: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""ATT odds weights of the external patients and their Kish effective sample size.

    .. math::
        \tilde w_i = \frac{e_i}{1 - e_i}, \qquad
        w_i = n_{\text{ext}} \frac{\tilde w_i}{\sum_k \tilde w_k}, \qquad
        \text{ESS} = \frac{(\sum_i w_i)^2}{\sum_i w_i^2} \le n_{\text{ext}}.

    The odds weights reweight the external sample to the covariate distribution of the
    current trial (the ATT population); current-trial patients have weight 1 and are not
    returned. Normalising to sum :math:`n_{\text{ext}}` makes a power prior with
    :math:`a_0 = 1` worth exactly the external sample size. Note that the weighted
    external mean has sampling variance :math:`\sigma^2 / \text{ESS}` (Kish), not
    :math:`\sigma^2 / n_{\text{ext}}`: with unequal weights a power prior on these
    weights claims more information than the reweighted data carry. To borrow no more
    than the Kish ESS, pass ``w * ess[:, None] / n_ext`` as the weights (or lower
    :math:`a_0`), and report both ESS values.

    Parameters
    ----------
    ps : (R, n_ext) or (n_ext,) array
        Propensity of current-trial membership of each external patient, in [0, 1).
        Values within 1e-15 of 1 are clipped there (odds at most about 1e15).
    truncate : float in (0, 1], optional
        Truncation (capping, not trimming): the odds above their per-replicate
        ``truncate`` quantile (e.g. 0.99) are set to that quantile before normalising;
        no patient is dropped. None (default) keeps the weights as they are.

    Returns
    -------
    w : (R, n_ext) array
        Normalised weights, each row summing to n_ext.
    ess : (R,) array
        Kish effective sample size of each row.
    """
    w, _ = att_weights_capped(ps, truncate)
    return w, kish(w)


def kish(w: np.ndarray) -> np.ndarray:
    return w.sum(axis=1) ** 2 / (w**2).sum(axis=1)


def att_weights_capped(ps, truncate: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ATT weights and the mask of patients whose odds were capped."""
    ps = as_batch_vector(ps, "ps")
    if np.any(~np.isfinite(ps)) or np.any((ps < 0) | (ps > 1)):
        raise ValueError("ps must be finite probabilities in [0, 1]")
    odds = (p := np.minimum(ps, 1 - 1e-15)) / (1 - p)
    capped = np.zeros(odds.shape, dtype=bool)
    if truncate is not None:
        if not 0 < truncate <= 1:
            raise ValueError(f"truncate must be a quantile in (0, 1]; got {truncate}")
        cap = np.quantile(odds, truncate, axis=1, keepdims=True)
        capped = odds > cap
        odds = np.minimum(odds, cap)
    total = odds.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("every replicate needs at least one external patient with ps > 0")
    return ps.shape[1] * odds / total, capped


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and reliability-weighted (unbiased for equal weights) variance over axis 1.

    x (R, n, p), w (R, n): var = sum w (x - m)^2 / (V1 - V2 / V1), V1 = sum w, V2 = sum w^2.
    """
    v1 = w.sum(axis=1)
    v2 = (w**2).sum(axis=1)
    m = np.einsum("rn,rnp->rp", w, x) / v1[:, None]
    var = np.einsum("rn,rnp->rp", w, (x - m[:, None, :]) ** 2) / (v1 - v2 / v1)[:, None]
    return m, var


def balance(X_trial: np.ndarray, X_external: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    r"""Covariate balance of the (weighted) external patients against the current trial.

    .. math::
        \text{SMD}_j = \frac{\bar x^{\text{trial}}_j - \bar x^{\text{ext}, w}_j}
                            {\sqrt{(s^2_{\text{trial}, j} + s^2_{\text{ext}, j}) / 2}},
        \qquad
        \text{VR}_j = \frac{s^{2}_{\text{ext}, w, j}}{s^2_{\text{trial}, j}},

    where :math:`\bar x^{\text{ext}, w}` and :math:`s^2_{\text{ext}, w}` are the
    weighted mean and the reliability-weighted variance
    :math:`\sum w (x - \bar x^w)^2 / (V_1 - V_2 / V_1)`. The SMD denominator is the
    pooled **unweighted** standard deviation (ddof = 1) of the two groups, the love-plot
    convention: it is the same before and after weighting, so a change in SMD reflects a
    change in the weighted mean only. Targets (REGULATORY.md §1): |SMD| < 0.1 (0.25
    tolerated), VR in [0.5, 2].

    Parameters
    ----------
    X_trial : (R, n_trial, p) or (n_trial, p) array
    X_external : (R, n_ext, p) or (n_ext, p) array
    w : (R, n_ext) or (n_ext,) array, optional
        External weights (e.g. from `att_weights`); None gives the raw balance.

    Returns
    -------
    dict with ``smd`` and ``variance_ratio``, each (R, p).
    """
    Xt, Xe = as_batch_matrix(X_trial, "X_trial"), as_batch_matrix(X_external, "X_external")
    if Xt.shape[0] != Xe.shape[0] or Xt.shape[2] != Xe.shape[2]:
        raise ValueError(f"X_trial {Xt.shape} and X_external {Xe.shape} must share R and p")
    R, n_e, _ = Xe.shape
    w = weights_or_ones(w, (R, n_e))
    m_t, v_t = Xt.mean(axis=1), Xt.var(axis=1, ddof=1)
    v_e = Xe.var(axis=1, ddof=1)
    m_w, v_w = _weighted_mean_var(Xe, w)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant covariates give inf/nan, as they should
        smd = (m_t - m_w) / np.sqrt((v_t + v_e) / 2)
        vr = v_w / v_t
    return {"smd": smd, "variance_ratio": vr}
