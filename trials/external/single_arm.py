"""A single-arm trial against weighted external controls: the weighted difference in means with
an M-estimation sandwich (or Hajek) standard error that counts the propensity model's uncertainty."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..analyses import finish
from .propensity import RIDGE, as_batch_matrix, as_batch_vector, att_weights_capped, fit_ps, kish, weights_or_ones


# ---------------------------------------------------------------------- purely external comparison
def external_normal(y: np.ndarray, y_ext: np.ndarray, X: np.ndarray | None = None,
                    X_ext: np.ndarray | None = None, *, alpha: float = 0.025,
                    sided: Literal["one", "two"] = "one", direction: Literal["greater", "less"] = "greater",
                    level: float = 0.95, weights: np.ndarray | None = None, truncate: float | None = None,
                    se: Literal["sandwich", "hajek"] = "sandwich", max_iter: int = 25, tol: float = 1e-10,
                    ridge: float = RIDGE) -> dict[str, np.ndarray]:
    r"""Single-arm trial against weighted external controls: weighted difference in means.

    .. math::
        \hat\delta = \hat\mu_1 - \hat\mu_0, \qquad \hat\mu_1 = \bar y, \qquad
        \hat\mu_0 = \frac{\sum_i w_i y_i}{\sum_i w_i},

    with :math:`w` the ATT odds weights (`att_weights`), so that :math:`\hat\mu_0`
    estimates the external-control mean in the trial's covariate distribution and
    :math:`\hat\delta` the effect in the treated (ATT). Reference distribution: standard
    normal. Two robust standard errors:

    ``se="hajek"``: the Hajek (ratio-estimator) sandwich with the weights held fixed,

    .. math::
        \widehat{\operatorname{se}}^2 = \frac{s^2}{n}
            + \frac{\sum_i w_i^2 (y_i - \hat\mu_0)^2}{(\sum_i w_i)^2};

    it ignores the estimation of the propensity score, which for the ATT can err either
    way (Reifeis & Hudgens 2022, Am J Epidemiol 191:1092); in the tests' confounded
    scenario it is conservative (coverage 0.99 for a nominal 0.95).

    ``se="sandwich"`` (default): the M-estimation sandwich
    :math:`A^{-1} B A^{-\top}` of the stacked estimating equations
    :math:`\theta = (\beta, \mu_1, \mu_0)`, summed over the N = n + n_ext patients
    (:math:`z_i = 1` in the trial, :math:`d_i = [1, x_i]`,
    :math:`e_i = \operatorname{expit}(d_i^\top\beta)`),

    .. math::
        \psi_\beta = (z_i - e_i)\, d_i, \qquad
        \psi_{\mu_1} = z_i (y_i - \mu_1), \qquad
        \psi_{\mu_0} = (1 - z_i)\, w_i(\beta) (y_i - \mu_0),

    with :math:`B = \sum_i \psi_i\psi_i^\top`,
    :math:`A = -\sum_i \partial\psi_i / \partial\theta^\top`
    (:math:`\partial w_i / \partial\beta = w_i d_i`, the odds being
    :math:`e^{d_i^\top\beta}` up to a constant that cancels), and
    :math:`\widehat{\operatorname{se}}^2 = c^\top A^{-1} B A^{-\top} c`,
    :math:`c = e_{\mu_1} - e_{\mu_0}`. It accounts for the propensity-score estimation.
    Patients whose odds were capped by ``truncate`` are given
    :math:`\partial w_i / \partial\beta = 0` (the cap treated as fixed, an
    approximation). With ``weights`` given there is nothing estimated in the weights and
    both choices give the Hajek formula.

    Parameters
    ----------
    y : (R, n) array
        Outcomes of the single-arm (treated) current trial.
    y_ext : (R, n_ext) array
        External control outcomes.
    X, X_ext : (R, n, p) and (R, n_ext, p) arrays, optional
        Covariates for the propensity score; not needed when ``weights`` is given.
    alpha, sided, direction, level
        As in `trials.analyses`.
    weights, truncate, max_iter, tol, ridge
        As in `hybrid_normal`.
    se : {"sandwich", "hajek"}
        Standard error, see above.

    Returns
    -------
    dict of (R,) arrays: the keys of `trials.analyses` plus ``weights_ess`` and
    ``ps_converged``.
    """
    y = as_batch_vector(y, "y")
    y_ext = as_batch_vector(y_ext, "y_ext")
    R, n = y.shape
    n_ext = y_ext.shape[1]
    if y_ext.shape[0] != R:
        raise ValueError(f"y {y.shape} and y_ext {y_ext.shape} must share R")
    if se not in ("sandwich", "hajek"):
        raise ValueError(f"se must be 'sandwich' or 'hajek'; got {se!r}")
    if weights is not None:
        w = weights_or_ones(weights, (R, n_ext), "weights")
        ok, fit, capped = np.ones(R, dtype=bool), None, None
    else:
        if X is None or X_ext is None:
            raise ValueError("give the covariates X and X_ext (for propensity-score weights) or weights")
        Xt, Xe = as_batch_matrix(X, "X"), as_batch_matrix(X_ext, "X_ext")
        if Xt.shape[:2] != (R, n) or Xe.shape[:2] != (R, n_ext) or Xt.shape[2] != Xe.shape[2]:
            raise ValueError(f"X {Xt.shape} and X_ext {Xe.shape} do not match y {y.shape} and y_ext {y_ext.shape}")
        fit = fit_ps(Xt, Xe, max_iter, tol, ridge)
        ok = fit["converged"]
        w, capped = att_weights_capped(fit["ps"][:, n:], truncate)
    sw = w.sum(axis=1)
    mu1 = y.mean(axis=1)
    mu0 = (w * y_ext).sum(axis=1) / sw
    est = mu1 - mu0
    if fit is None or se == "hajek":
        var0 = (w**2 * (y_ext - mu0[:, None]) ** 2).sum(axis=1) / sw**2
        std_error = np.sqrt(y.var(axis=1, ddof=1) / n + var0)
    else:
        std_error = np.sqrt(_att_sandwich_var(fit, y, y_ext, w, capped, mu1, mu0, ridge))
    out = finish(est, std_error, None, alpha, sided, direction, level)
    out.update(weights_ess=kish(w), ps_converged=ok)
    return out


def _att_sandwich_var(fit, y, y_ext, w, capped, mu1, mu0, ridge) -> np.ndarray:
    """c' A^{-1} B A^{-T} c for theta = (beta, mu1, mu0); see `external_normal`."""
    D, z, e = fit["design"], fit["z"], fit["ps"]
    R, N, q = D.shape
    n = y.shape[1]
    y_all = np.concatenate([y, y_ext], axis=1)
    w_all = np.concatenate([np.zeros((R, n)), w], axis=1)
    dw_all = np.concatenate([np.zeros((R, n)), np.where(capped, 0.0, w)], axis=1)  # d w_i / d eta_i
    r1 = z * (y_all - mu1[:, None])
    r0 = w_all * (y_all - mu0[:, None])
    psi = np.concatenate([(z - e)[..., None] * D, r1[..., None], r0[..., None]], axis=2)
    B = np.matmul(psi.transpose(0, 2, 1), psi)
    pen = np.full(q, float(ridge))
    pen[0] = 0.0
    A = np.zeros((R, q + 2, q + 2))
    A[:, :q, :q] = np.matmul(D.transpose(0, 2, 1) * (e * (1 - e))[:, None, :], D) + np.diag(pen)
    A[:, q, q] = z.sum()
    A[:, q + 1, :q] = -np.einsum("rn,rnq->rq", dw_all * (y_all - mu0[:, None]), D)
    A[:, q + 1, q + 1] = w_all.sum(axis=1)
    c = np.zeros(q + 2)
    c[q], c[q + 1] = 1.0, -1.0
    u = np.linalg.solve(A.transpose(0, 2, 1), np.broadcast_to(c, (R, q + 2))[..., None])[..., 0]
    return np.einsum("rp,rpq,rq->r", u, B, u)
