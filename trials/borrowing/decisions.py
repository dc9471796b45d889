"""Two-arm decisions on posterior probabilities: exact decision tables and boundaries and the
operating characteristics of binary designs (RBesT oc2S), and thresholds calibrated to a type
I error, by simulation or exactly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from .base import as_float
from .difference import prob_diff_greater
from .mixtures import BetaMixture


def _check_design(prior_t, prior_c, n_t, n_c) -> tuple[int, int]:
    for name, p in (("prior_t", prior_t), ("prior_c", prior_c)):
        if not isinstance(p, BetaMixture) or p.batch_shape:
            raise TypeError(f"{name} must be a single BetaMixture, got {p!r}")
    if int(n_t) != n_t or n_t < 1 or int(n_c) != n_c or n_c < 1:
        raise ValueError(f"n_t and n_c must be integers >= 1, got n_t={n_t!r}, n_c={n_c!r}")
    return int(n_t), int(n_c)


def _check_prob(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")


def decision_table_binary(
    prior_t: BetaMixture, prior_c: BetaMixture, n_t: int, n_c: int, delta: float = 0.0
) -> np.ndarray:
    r""":math:`\Pr(\theta_t-\theta_c>\delta \mid r_t, r_c)` for every outcome, shape ``(n_t+1, n_c+1)``."""
    n_t, n_c = _check_design(prior_t, prior_c, n_t, n_c)
    rt = np.arange(n_t + 1, dtype=float)[:, None]
    rc = np.arange(n_c + 1, dtype=float)[None, :]
    post_t = prior_t.posterior(np.broadcast_to(rt, (n_t + 1, n_c + 1)), n_t)
    post_c = prior_c.posterior(np.broadcast_to(rc, (n_t + 1, n_c + 1)), n_c)
    return prob_diff_greater(post_t, post_c, delta, dedupe=False)


def decision_boundary_binary(
    prior_t: BetaMixture, prior_c: BetaMixture, n_t: int, n_c: int, threshold: float, delta: float = 0.0
) -> np.ndarray:
    r"""Largest control count with success, for each treatment count.

    Success is :math:`\Pr(\theta_t-\theta_c>\delta\mid r_t,r_c) > c` (strict, as RBesT's
    ``decision2S``).  The posterior of :math:`\theta_c` given :math:`r_c+1` dominates
    the one given :math:`r_c` in likelihood ratio (the ratio is
    :math:`\propto\theta/(1-\theta)`, whatever the prior), so the probability falls as
    :math:`r_c` grows and success holds exactly for :math:`r_c \le D(r_t)`.  :math:`D` is
    found by bisection over :math:`r_c`, vectorised over all :math:`r_t`:
    :math:`O(n_t \log n_c)` posterior probabilities.

    Returns
    -------
    numpy.ndarray
        Integer array of length ``n_t + 1``; ``-1`` where no control outcome gives
        success, ``n_c`` where all do.
    """
    n_t, n_c = _check_design(prior_t, prior_c, n_t, n_c)
    _check_prob("threshold", threshold)
    rt = np.arange(n_t + 1, dtype=float)
    post_t = prior_t.posterior(rt, n_t)
    lo = np.full(n_t + 1, -1)  # success known at lo (virtual outcome -1)
    hi = np.full(n_t + 1, n_c + 1)  # failure known at hi (virtual outcome n_c + 1)
    while np.any(hi - lo > 1):
        open_ = hi - lo > 1
        # rows already closed evaluate a harmless valid outcome (0) and are not updated
        mid = np.where(open_, (lo + hi) // 2, 0)
        post_c = prior_c.posterior(mid.astype(float), n_c)
        ok = prob_diff_greater(post_t, post_c, delta) > threshold
        lo = np.where(open_ & ok, mid, lo)
        hi = np.where(open_ & ~ok, mid, hi)
    return lo


def oc2s_binary(
    prior_t: BetaMixture,
    prior_c: BetaMixture,
    n_t: int,
    n_c: int,
    threshold: float,
    delta: float = 0.0,
) -> Callable[[Any, Any], np.ndarray]:
    r"""Exact success probability of a two-arm binary design (RBesT's ``oc2S``).

    With the decision boundary :math:`D(r_t)` of :func:`decision_boundary_binary`,

    .. math:: \Pr(\text{success}\mid\theta_t,\theta_c) = \sum_{r_t=0}^{n_t}
              \mathrm{Bin}(r_t\mid n_t,\theta_t)\;F_{\mathrm{Bin}(n_c,\theta_c)}(D(r_t)),

    exact up to the accuracy of the posterior probabilities at the boundary.

    Returns
    -------
    callable
        ``oc(theta_t, theta_c)``, vectorised over broadcasting arrays; the boundary is
        attached as ``oc.boundary``.
    """
    boundary = decision_boundary_binary(prior_t, prior_c, n_t, n_c, threshold, delta)
    rt = np.arange(int(n_t) + 1)

    def oc(theta_t, theta_c) -> np.ndarray:
        tt = as_float("theta_t", theta_t)
        tc = as_float("theta_c", theta_c)
        for name, v in (("theta_t", tt), ("theta_c", tc)):
            if np.any((v < 0) | (v > 1)):
                raise ValueError(f"{name} must lie in [0, 1], got {v!r}")
        tt, tc = np.broadcast_arrays(tt, tc)
        pt = stats.binom.pmf(rt[:, None], n_t, tt.reshape(1, -1))
        pc = stats.binom.cdf(boundary[:, None], n_c, tc.reshape(1, -1))  # cdf(-1) = 0
        return np.sum(pt * pc, axis=0).reshape(tt.shape)

    oc.boundary = boundary  # type: ignore[attr-defined]
    return oc


def effect_for_power(oc: Callable, theta_c: float, power: float = 0.8, upper: float | None = None) -> float:
    r"""Smallest :math:`d` with :math:`\mathrm{oc}(\theta_c + d, \theta_c) = ` ``power`` (brentq).

    The exact power is a polynomial in :math:`\theta_t` and increases with it for a
    design that succeeds more often with more treatment responders.
    """
    hi = (1.0 - theta_c) if upper is None else upper
    f = lambda d: float(oc(theta_c + d, theta_c)) - power  # noqa: E731
    if f(0.0) >= 0 or f(hi) <= 0:
        raise ValueError(f"power {power} is not crossed for d in [0, {hi}] at theta_c={theta_c}")
    return optimize.brentq(f, 0.0, hi, xtol=1e-10)


@dataclass(frozen=True)
class ThresholdCalibration:
    """Threshold calibrated on simulated null posterior probabilities.

    Attributes
    ----------
    threshold : float
        Smallest ``c`` with empirical ``Pr(prob > c) <= alpha``.
    mcse : float
        Monte Carlo standard error of ``threshold`` (from the order-statistic interval).
    ci : tuple of float
        Distribution-free 95% interval of the ``1 - alpha`` quantile.
    type1 : float
        Empirical ``Pr(prob > threshold)`` on the same replicates.
    n_replicates : int
    """

    threshold: float
    mcse: float
    ci: tuple[float, float]
    type1: float
    n_replicates: int


def calibrate_threshold(null_posterior_probs, alpha: float = 0.025) -> ThresholdCalibration:
    r"""Smallest threshold :math:`c` with :math:`\widehat{\Pr}(p > c) \le \alpha` under the null.

    With the sorted probabilities :math:`p_{(1)}\le\dots\le p_{(R)}` and
    :math:`m=\lfloor\alpha R\rfloor`, :math:`c = p_{(R-m)}`: at most :math:`m` values
    exceed it, while any smaller :math:`c` lets :math:`p_{(R-m)}` through as well.

    Its Monte Carlo error follows from the binomial count of values below the true
    :math:`1-\alpha` quantile: the order statistics :math:`p_{(j)}` with
    :math:`j = R(1-\alpha) \pm 1.96\sqrt{R\alpha(1-\alpha)}` bound a 95% interval, and
    the standard error is its width over :math:`2\times1.96`.
    """
    p = as_float("null_posterior_probs", null_posterior_probs).ravel()
    if p.size < 2:
        raise ValueError(f"null_posterior_probs needs at least 2 values, got {p.size}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    r = p.size
    ps = np.sort(p)
    m = int(np.floor(alpha * r + 1e-9))  # guard alpha*R landing a hair below an integer
    c = float(ps[r - m - 1])
    half = 1.959963984540054 * np.sqrt(r * alpha * (1 - alpha))
    j_lo = int(np.clip(np.floor(r * (1 - alpha) - half), 1, r)) - 1
    j_hi = int(np.clip(np.ceil(r * (1 - alpha) + half), 1, r)) - 1
    ci = (float(ps[j_lo]), float(ps[j_hi]))
    return ThresholdCalibration(
        threshold=c,
        mcse=(ci[1] - ci[0]) / (2 * 1.959963984540054),
        ci=ci,
        type1=float(np.mean(p > c)),
        n_replicates=r,
    )


@dataclass(frozen=True)
class ExactThresholdCalibration:
    """Threshold calibrated on the exact type I error of a binary two-arm design.

    Attributes
    ----------
    threshold : float
        Smallest ``c`` such that ``max_theta Pr(P > c | theta, theta) <= alpha`` on the grid.
    max_type1 : float
        Achieved maximum type I error at ``threshold``.
    theta_at_max : float
        Where on the grid the maximum is reached.
    """

    threshold: float
    max_type1: float
    theta_at_max: float


def calibrate_threshold_exact(
    prior_t: BetaMixture,
    prior_c: BetaMixture,
    n_t: int,
    n_c: int,
    alpha: float = 0.025,
    theta_grid=None,
    delta: float = 0.0,
) -> ExactThresholdCalibration:
    r"""Exact calibration of the success threshold on a grid of null rates.

    The type I error :math:`T_\theta(c) = \sum_{r_t,r_c} \mathrm{Bin}(r_t)\mathrm{Bin}(r_c)
    \,1[P(r_t,r_c) > c]` is a step function of :math:`c` that only moves at the lattice
    values :math:`P(r_t,r_c)`.  Scanning those values from the largest down and
    accumulating the outcome probabilities gives every step; the answer is the lattice
    value just below the last step at which :math:`\max_\theta T_\theta \le \alpha`.
    """
    n_t, n_c = _check_design(prior_t, prior_c, n_t, n_c)
    _check_prob("alpha", alpha)
    grid = np.linspace(0.01, 0.99, 99) if theta_grid is None else as_float("theta_grid", theta_grid).ravel()
    table = decision_table_binary(prior_t, prior_c, n_t, n_c, delta).ravel()
    mass = (
        stats.binom.pmf(np.arange(n_t + 1)[:, None, None], n_t, grid)
        * stats.binom.pmf(np.arange(n_c + 1)[None, :, None], n_c, grid)
    ).reshape(-1, grid.size)
    values, inverse = np.unique(table, return_inverse=True)  # ascending v_0 < v_1 < ...
    mass_at = np.zeros((values.size, grid.size))
    np.add.at(mass_at, inverse.ravel(), mass)
    # type1_ge[j] = Pr(P >= v_j | theta): the type I error of any c in [v_{j-1}, v_j)
    type1_ge = np.cumsum(mass_at[::-1], axis=0)[::-1]
    within = np.nonzero(type1_ge.max(axis=1) <= alpha)[0]  # a tail j0, j0+1, ... (decreasing)
    if within.size == 0:
        # even rejecting only the largest value is too often: reject nothing
        c, type1 = float(values[-1]), np.zeros(grid.size)
    elif within[0] == 0:
        # rejecting every outcome is within alpha
        c, type1 = float(np.nextafter(values[0], -np.inf)), type1_ge[0]
    else:
        c, type1 = float(values[within[0] - 1]), type1_ge[within[0]]
    k = int(np.argmax(type1))
    return ExactThresholdCalibration(threshold=c, max_type1=float(type1[k]), theta_at_max=float(grid[k]))
