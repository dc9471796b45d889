"""Mixtures fitted to samples by EM (weighted beta and normal components), as RBesT's automixfit
approximates a MAP prior's predictive; the number of components chosen by AIC or BIC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from .base import as_float
from .mixtures import BetaMixture, NormalMixture


@dataclass(frozen=True)
class MixtureFit:
    """Result of an EM fit of a conjugate mixture to samples.

    Attributes
    ----------
    mixture : BetaMixture | NormalMixture
    loglik : float
        Log-likelihood of the samples at the estimate.
    n_params : int
        Free parameters: ``3K - 1``.
    n_obs : int
    n_iter : int
    converged : bool
    """

    mixture: Any
    loglik: float
    n_params: int
    n_obs: int
    n_iter: int
    converged: bool

    def aic(self, penalty: float = 2.0) -> float:
        r""":math:`-2\ell + k\,p` (RBesT's ``automixfit`` uses :math:`k=6`)."""
        return -2.0 * self.loglik + penalty * self.n_params

    def bic(self) -> float:
        r""":math:`-2\ell + p\log N`."""
        return -2.0 * self.loglik + self.n_params * np.log(self.n_obs)


def _beta_mle_weighted(c1: np.ndarray, c2: np.ndarray, a: np.ndarray, b: np.ndarray, gt1: bool):
    r"""Weighted beta MLE per component.

    Sufficient statistics: :math:`c_1 = \overline{\log x}`, :math:`c_2 = \overline{\log(1-x)}`
    (responsibility-weighted means).

    Maximises the concave :math:`\ell(a,b) = (a-1)c_1 + (b-1)c_2 - \log B(a,b)`; the score
    equations :math:`\psi(a)-\psi(a+b) = c_1`, :math:`\psi(b)-\psi(a+b)=c_2` are solved by
    Newton's method in :math:`(\log a,\log b)`.  With ``gt1`` (RBesT's ``constrain_gt1``,
    needed for a finite ELIR) the maximum over :math:`a,b\ge1` is the best of the
    unconstrained solution (if feasible) and the faces: on :math:`a=1` the score gives
    :math:`b = -1/c_2` because :math:`\psi(b+1)-\psi(b) = 1/b`.
    """
    la, lb = np.log(a), np.log(b)
    for _ in range(100):
        aa, bb = np.exp(la), np.exp(lb)
        pn = special.polygamma(1, aa + bb)
        f1 = special.digamma(aa) - special.digamma(aa + bb) - c1
        f2 = special.digamma(bb) - special.digamma(aa + bb) - c2
        j11 = (special.polygamma(1, aa) - pn) * aa
        j12 = -pn * bb
        j21 = -pn * aa
        j22 = (special.polygamma(1, bb) - pn) * bb
        det = j11 * j22 - j12 * j21
        da = (j22 * f1 - j12 * f2) / det
        db = (-j21 * f1 + j11 * f2) / det
        step = np.maximum(np.maximum(np.abs(da), np.abs(db)), 1e-300)
        damp = np.minimum(1.0, 2.0 / step)  # at most a factor e^2 per step
        la, lb = la - damp * da, lb - damp * db
        if np.all(np.maximum(np.abs(da), np.abs(db)) < 1e-12):
            break
    a_u, b_u = np.exp(la), np.exp(lb)
    if not gt1:
        return a_u, b_u

    def ll(x, y):
        return (x - 1) * c1 + (y - 1) * c2 - special.betaln(x, y)

    cands = [
        (np.maximum(a_u, 1.0), np.maximum(b_u, 1.0), (a_u >= 1) & (b_u >= 1)),
        (np.ones_like(c1), np.maximum(-1.0 / c2, 1.0), np.ones_like(c1, dtype=bool)),
        (np.maximum(-1.0 / c1, 1.0), np.ones_like(c1), np.ones_like(c1, dtype=bool)),
    ]
    best_a, best_b = cands[1][0], cands[1][1]
    best = ll(best_a, best_b)
    for ca, cb, feasible in (cands[0], cands[2]):
        val = np.where(feasible, ll(ca, cb), -np.inf)
        better = val > best
        best_a, best_b, best = (
            np.where(better, ca, best_a),
            np.where(better, cb, best_b),
            np.maximum(val, best),
        )
    return best_a, best_b


def _em(x, k, max_iter, tol, init, m_step, comp_logpdf):
    w, p1, p2 = init
    prev = -np.inf
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        lp = np.log(w) + comp_logpdf(x[:, None], p1, p2)
        ll_i = special.logsumexp(lp, axis=1)
        ll = float(ll_i.sum())
        resp = np.exp(lp - ll_i[:, None])
        w = resp.mean(axis=0)
        w = np.maximum(w, 1e-300) / np.maximum(w, 1e-300).sum()  # keep log(w) finite
        p1, p2 = m_step(resp, p1, p2)
        if abs(ll - prev) <= tol * (1.0 + abs(ll)):
            converged = True
            break
        prev = ll
    lp = np.log(w) + comp_logpdf(x[:, None], p1, p2)
    return w, p1, p2, float(special.logsumexp(lp, axis=1).sum()), it, converged


def _quantile_groups(x: np.ndarray, k: int):
    """Initial partition: K groups of consecutive order statistics (deterministic)."""
    order = np.argsort(x)
    groups = np.array_split(order, k)
    return [x[g] for g in groups]


def fit_beta_mixture(
    samples, k: int, *, constrain_gt1: bool = True, max_iter: int = 2000, tol: float = 1e-9
) -> MixtureFit:
    r"""Maximum-likelihood K-component beta mixture by EM.

    E-step: responsibilities :math:`\gamma_{ik}\propto w_k\,\mathrm{Beta}(x_i\mid a_k,b_k)`.
    M-step: :math:`w_k=\bar\gamma_{\cdot k}` and the weighted beta MLE of each component
    (:func:`_beta_mle_weighted`).  Started from K groups of consecutive order statistics,
    moment-matched.  ``constrain_gt1`` keeps :math:`a_k, b_k\ge1` as RBesT does by default
    so that the ELIR ESS exists.
    """
    x = as_float("samples", samples).ravel()
    if np.any((x <= 0) | (x >= 1)):
        raise ValueError("beta mixture samples must lie strictly inside (0, 1)")
    if int(k) != k or k < 1 or x.size < 10 * k:
        raise ValueError(
            f"k must be an integer >= 1 with at least 10 samples per component; got k={k!r}, {x.size} samples"
        )
    k = int(k)
    lx, l1x = np.log(x), np.log1p(-x)
    a0, b0 = [], []
    for g in _quantile_groups(x, k):
        m, v = g.mean(), max(g.var(), 1e-12)
        nn = max(m * (1 - m) / v - 1, 2.0 + 1e-6 if constrain_gt1 else 1e-3)
        a0.append(max(m * nn, 1.0 + 1e-6 if constrain_gt1 else 1e-3))
        b0.append(max((1 - m) * nn, 1.0 + 1e-6 if constrain_gt1 else 1e-3))

    def m_step(resp, a, b):
        s = resp.sum(axis=0)
        c1 = (resp * lx[:, None]).sum(axis=0) / s
        c2 = (resp * l1x[:, None]).sum(axis=0) / s
        return _beta_mle_weighted(c1, c2, a, b, constrain_gt1)

    def comp_logpdf(xx, a, b):
        return (a - 1) * lx[:, None] + (b - 1) * l1x[:, None] - special.betaln(a, b)

    w, a, b, ll, it, conv = _em(
        x, k, max_iter, tol, (np.full(k, 1 / k), np.array(a0), np.array(b0)), m_step, comp_logpdf
    )
    order = np.argsort(-w)
    return MixtureFit(BetaMixture(w[order], a[order], b[order]), ll, 3 * k - 1, x.size, it, conv)


def fit_normal_mixture(
    samples, k: int, *, sigma: float | None = None, max_iter: int = 2000, tol: float = 1e-9
) -> MixtureFit:
    r"""Maximum-likelihood K-component normal mixture by EM (closed-form M-step).

    :math:`w_k=\bar\gamma_{\cdot k}`, :math:`m_k=\sum_i\gamma_{ik}x_i/\sum_i\gamma_{ik}`,
    :math:`s_k^2=\sum_i\gamma_{ik}(x_i-m_k)^2/\sum_i\gamma_{ik}` (floored at 1e-12 of the
    sample variance to avoid collapse onto one point).
    """
    x = as_float("samples", samples).ravel()
    if int(k) != k or k < 1 or x.size < 10 * k:
        raise ValueError(
            f"k must be an integer >= 1 with at least 10 samples per component; got k={k!r}, {x.size} samples"
        )
    k = int(k)
    floor = 1e-12 * x.var()
    groups = _quantile_groups(x, k)
    m0 = np.array([g.mean() for g in groups])
    s0 = np.array([max(g.std(), np.sqrt(floor)) for g in groups])

    def m_step(resp, m, s):
        tot = resp.sum(axis=0)
        m = (resp * x[:, None]).sum(axis=0) / tot
        v = (resp * (x[:, None] - m) ** 2).sum(axis=0) / tot
        return m, np.sqrt(np.maximum(v, floor))

    def comp_logpdf(xx, m, s):
        return stats.norm.logpdf(xx, m, s)

    w, m, s, ll, it, conv = _em(x, k, max_iter, tol, (np.full(k, 1 / k), m0, s0), m_step, comp_logpdf)
    order = np.argsort(-w)
    return MixtureFit(
        NormalMixture(w[order], m[order], s[order], sigma=sigma), ll, 3 * k - 1, x.size, it, conv
    )


def auto_fit_mixture(
    samples,
    family: Literal["beta", "normal"],
    k_max: int = 4,
    criterion: Literal["aic", "bic"] = "aic",
    aic_penalty: float = 6.0,
    **kwargs,
) -> MixtureFit:
    """Fit 1..``k_max`` components and keep the best by AIC (penalty 6, RBesT's
    ``automixfit`` default, which favours fewer components) or BIC."""
    if family not in ("beta", "normal"):
        raise ValueError(f"family must be 'beta' or 'normal', got {family!r}")
    if criterion not in ("aic", "bic"):
        raise ValueError(f"criterion must be 'aic' or 'bic', got {criterion!r}")
    fitter = fit_beta_mixture if family == "beta" else fit_normal_mixture
    fits = [fitter(samples, k, **kwargs) for k in range(1, int(k_max) + 1)]
    score = [f.aic(aic_penalty) if criterion == "aic" else f.bic() for f in fits]
    return fits[int(np.argmin(score))]
