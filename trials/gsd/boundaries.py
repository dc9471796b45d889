"""Group-sequential boundaries: Lan-DeMets error spending (asOF, asP, asHSD, asKD), constant
boundaries (Pocock, O'Brien-Fleming), beta-spending futility, and the exact crossing
probabilities of the canonical joint distribution of the look statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, special

SpendingKind = Literal["asOF", "asP", "asHSD", "asKD"]


DesignKind = Literal["asOF", "asP", "asHSD", "asKD", "asUser", "P", "OF"]


_SPENDING = ("asOF", "asP", "asHSD", "asKD")


_CONSTANT = ("P", "OF")


_BETA_SPENDING = {"bsOF": "asOF", "bsP": "asP", "bsHSD": "asHSD", "bsKD": "asKD"}


_Z_CAP = 8.0  # an efficacy boundary with (numerically) nothing to spend; rpact uses 8 too


_ndtr = special.ndtr


_ndtri = special.ndtri


def spending_function(kind: str, t, level: float, gamma: float | None = None) -> np.ndarray:
    """Cumulative error spent at information fraction(s) ``t`` for total error ``level``.

    Parameters
    ----------
    kind : {"asOF", "asP", "asHSD", "asKD"}
        Spending family (module docstring gives the formulas).
    t : array_like
        Information fractions in [0, 1].
    level : float
        Total one-sided error to spend (alpha for efficacy, beta for futility).
    gamma : float, optional
        Family parameter: required for ``"asHSD"`` (gamma) and ``"asKD"`` (rho > 0).
    """
    t = np.asarray(t, dtype=float)
    if np.any((t < 0) | (t > 1)):
        raise ValueError(f"information fractions must lie in [0, 1], got {t.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if kind == "asOF":
        with np.errstate(divide="ignore"):
            q = _ndtri(1 - level / 2) / np.sqrt(t)
        return 2 * _ndtr(-q)
    if kind == "asP":
        return level * np.log1p((np.e - 1) * t)
    if kind == "asHSD":
        if gamma is None:
            raise ValueError("'asHSD' needs gamma (e.g. -4 for O'Brien-Fleming-like, 1 for Pocock-like)")
        if gamma == 0:
            return level * t
        return level * (-np.expm1(-gamma * t)) / (-np.expm1(-gamma))
    if kind == "asKD":
        if gamma is None or gamma <= 0:
            raise ValueError(f"'asKD' needs gamma = rho > 0, got {gamma}")
        return level * t**gamma
    raise ValueError(f"kind must be one of {_SPENDING}, got {kind!r}")


def _grid(mu: float, lo: float, hi: float, r: int) -> tuple[np.ndarray, np.ndarray]:
    """J&T grid on (lo, hi) for a statistic with mean ``mu``: nodes and Simpson weights."""
    i = np.arange(1, 6 * r, dtype=float)
    x = np.where(i <= r - 1, -3 - 4 * np.log(r / i),
                 np.where(i <= 5 * r, -3 + 3 * (i - r) / (2 * r),
                          3 + 4 * np.log(r / np.maximum(6 * r - i, 1))))
    x = mu + x
    a, b = max(lo, x[0]), min(hi, x[-1])
    if not a < b:
        return np.empty(0), np.empty(0)
    pts = np.concatenate([[a], x[(x > a) & (x < b)], [b]])
    d = np.diff(pts)
    z = np.empty(2 * len(pts) - 1)
    z[0::2] = pts
    z[1::2] = pts[:-1] + d / 2
    w = np.zeros_like(z)
    w[1::2] = 4 * d / 6
    w[0:-1:2] += d / 6
    w[2::2] += d / 6
    return z, w


class _Recursion:
    """Stage-by-stage sub-densities of Z_k on the continuation region.

    ``h`` holds weight * sub-density at the nodes ``z`` of the current stage, so a
    probability at the next stage is ``h @ P(next event | z)``.
    """

    def __init__(self, t: np.ndarray, drift: float, r: int):
        self.t, self.sq, self.drift, self.r = t, np.sqrt(t), drift, r
        self.k = -1
        self.z = self.h = None

    def prob_above(self, k: int, u: float) -> float:
        """P(continued through k-1, Z_k >= u)."""
        if k == 0:
            return float(_ndtr(self.drift * self.sq[0] - u))
        m, sd = self._cond(k)
        return float(self.h @ _ndtr((m - u * self.sq[k]) / sd))

    def prob_below(self, k: int, lower: float) -> float:
        """P(continued through k-1, Z_k < lower)."""
        if k == 0:
            return float(_ndtr(lower - self.drift * self.sq[0]))
        m, sd = self._cond(k)
        return float(self.h @ _ndtr((lower * self.sq[k] - m) / sd))

    def _cond(self, k: int) -> tuple[np.ndarray, float]:
        if self.k != k - 1:
            raise RuntimeError(f"advance the recursion to stage {k} first (at {self.k + 1})")
        dk = self.t[k] - self.t[k - 1]
        return self.z * self.sq[k - 1] + self.drift * dk, np.sqrt(dk)

    def advance(self, k: int, lower: float, upper: float) -> None:
        """Condition on lower < Z_k < upper and move to stage k."""
        mu = self.drift * self.sq[k]
        z, w = _grid(mu, lower, upper, self.r)
        if k == 0:
            h = w * np.exp(-0.5 * (z - mu) ** 2) / np.sqrt(2 * np.pi)
        elif len(z) == 0 or len(self.z) == 0:
            h = np.zeros_like(z)
        else:
            m, sd = self._cond(k)
            arg = (z[:, None] * self.sq[k] - m[None, :]) / sd
            dens = np.exp(-0.5 * arg**2) @ self.h * (self.sq[k] / (sd * np.sqrt(2 * np.pi)))
            h = w * dens
        self.z, self.h, self.k = z, h, k


def _check_rates(information_rates) -> np.ndarray:
    t = np.asarray(information_rates, dtype=float)
    if t.ndim != 1 or len(t) < 1:
        raise ValueError(f"information_rates must be a non-empty 1-d sequence, got {information_rates!r}")
    if np.any(np.diff(t) <= 0) or t[0] <= 0 or abs(t[-1] - 1) > 1e-12:
        raise ValueError(f"information_rates must increase strictly in (0, 1] and end at 1, got {t.tolist()}")
    return t


def _bounds(k_max: int, values, fill: float, name: str, length: int | None = None) -> np.ndarray:
    n = k_max if length is None else length
    if values is None:
        return np.full(n, fill)
    v = np.asarray(values, dtype=float)
    if v.shape != (n,):
        raise ValueError(f"{name} must have length {n}, got shape {v.shape}")
    return v


def crossing_probabilities(information_rates, upper, lower=None, drift: float = 0.0,
                           grid_points: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Exact stage-wise boundary-crossing probabilities.

    Parameters
    ----------
    information_rates : array_like, shape (K,)
    upper : array_like, shape (K,)
        Efficacy boundaries on the z scale (``inf`` = no efficacy stop at that look).
    lower : array_like, shape (K,), optional
        Futility boundaries; the trial stops when ``Z_k <= lower_k`` (default ``-inf``).
    drift : float
        Mean of the final z statistic, ``theta * sqrt(I_max)``.
    grid_points : int
        J&T grid parameter r (6r - 1 nodes before Simpson midpoints).

    Returns
    -------
    upper_probs, lower_probs : ndarray, shape (K,)
        ``P(continue to k, Z_k >= u_k)`` and ``P(continue to k, Z_k <= l_k)``.
    """
    t = _check_rates(information_rates)
    k_max = len(t)
    u = _bounds(k_max, upper, np.inf, "upper")
    lo = _bounds(k_max, lower, -np.inf, "lower")
    rec = _Recursion(t, float(drift), int(grid_points))
    up = np.zeros(k_max)
    dn = np.zeros(k_max)
    for k in range(k_max):
        up[k] = rec.prob_above(k, u[k]) if np.isfinite(u[k]) else 0.0
        dn[k] = rec.prob_below(k, lo[k]) if np.isfinite(lo[k]) else 0.0
        if k < k_max - 1:
            rec.advance(k, lo[k], u[k])
    return up, dn


def _solve_efficacy(t, spend_increments, lower, grid_points, two_sided: bool = False) -> np.ndarray:
    """Efficacy boundaries spending the given increments (under drift 0). ``two_sided``:
    symmetric boundaries, P(continued, |Z_k| >= c_k) spending each increment (``lower`` unused)."""
    k_max = len(t)
    rec = _Recursion(t, 0.0, grid_points)
    u = np.empty(k_max)
    for k in range(k_max):
        target = spend_increments[k]
        if target <= 1e-15:
            u[k] = _Z_CAP
        elif k == 0:
            u[k] = -_ndtri(target / 2 if two_sided else target)
        else:
            def f(x, k=k, target=target):
                return rec.prob_above(k, x) + (rec.prob_below(k, -x) if two_sided else 0.0) - target

            start = 0.0 if two_sided else -_Z_CAP
            if f(start) < 0:
                raise ValueError(f"stage {k + 1}: cannot spend {target:.3g}, less probability is left")
            u[k] = _Z_CAP if f(_Z_CAP) > 0 else optimize.brentq(f, start, _Z_CAP, xtol=1e-13)
        if k < k_max - 1:
            rec.advance(k, -u[k] if two_sided else lower[k], u[k])
    return u


def _solve_constant(t, alpha, kind, grid_points, sided: int = 1) -> np.ndarray:
    shape = np.ones_like(t) if kind == "P" else 1 / np.sqrt(t)

    def f(c):
        up, dn = crossing_probabilities(t, c * shape, -c * shape if sided == 2 else None, 0.0, grid_points)
        return up.sum() + (dn.sum() if sided == 2 else 0.0) - alpha

    level = alpha / sided
    c = optimize.brentq(f, -_ndtri(level) * 0.5, -_ndtri(level / len(t)) + 1, xtol=1e-13)
    return c * shape


def _beta_futility(t, u, beta, kind, gamma, drift, grid_points) -> tuple[np.ndarray, float]:
    """Beta-spending futility bounds for a drift; returns (l_1..l_K, residual at stage K).

    The residual is P(reach K, Z_K < u_K) - (beta - beta(t_{K-1})): zero when the drift
    gives power exactly 1 - beta.
    """
    k_max = len(t)
    cum = spending_function(kind, t, beta, gamma)
    inc = np.diff(np.concatenate([[0.0], cum]))
    rec = _Recursion(t, drift, grid_points)
    lo = np.empty(k_max)
    for k in range(k_max - 1):
        if inc[k] <= 1e-15:
            lo[k] = -np.inf
        elif k == 0:
            lo[k] = min(drift * np.sqrt(t[0]) + _ndtri(inc[0]), u[0])
        else:
            f = lambda x, k=k: rec.prob_below(k, x) - inc[k]  # noqa: E731
            lo[k] = u[k] if f(u[k]) < 0 else optimize.brentq(f, -20.0, u[k], xtol=1e-13)
        rec.advance(k, lo[k], u[k])
    lo[-1] = u[-1]
    resid = rec.prob_below(k_max - 1, u[-1]) - inc[-1]
    return lo, resid


@dataclass(frozen=True)
class GroupSequentialDesign:
    """A group-sequential design on the z scale: one-sided, or two-sided with symmetric
    boundaries (stop and reject when |Z_k| >= c_k).

    Attributes
    ----------
    information_rates : ndarray (K,)
    alpha, beta : float
        One-sided type I error; type II error (used for drift and beta spending).
    type_of_design : str
        Efficacy boundary family (``"asOF"``, ``"asP"``, ``"asHSD"``, ``"asKD"``, ``"P"``, ``"OF"``).
    gamma : float or None
        Parameter of ``"asHSD"``/``"asKD"``.
    critical_values : ndarray (K,)
        Efficacy boundaries u_k.
    futility_bounds : ndarray (K,)
        Futility boundaries l_k, ``-inf`` where none; ``l_K`` is always ``-inf`` (the final
        look has no separate futility decision).
    alpha_spent : ndarray (K,)
        Cumulative type I error spent (exact, under H0, ignoring non-binding futility).
    binding_futility : bool
        Whether the efficacy boundaries account for the futility boundaries.
    futility : str or None
        Beta-spending family used for ``futility_bounds`` if any, or ``"fixed"``.
    drift_beta_spending : float or None
        Drift solved with the beta-spending futility bounds (rpact's ``sqrt(shift)``).
    sided : int
        1, or 2 (``alpha`` then two-sided, ``alpha_spent`` counting both tails).
    """

    information_rates: np.ndarray
    alpha: float
    beta: float
    type_of_design: str
    gamma: float | None
    critical_values: np.ndarray
    futility_bounds: np.ndarray
    alpha_spent: np.ndarray
    binding_futility: bool = False
    futility: str | None = None
    drift_beta_spending: float | None = None
    grid_points: int = 32
    sided: int = 1

    @property
    def kmax(self) -> int:
        return len(self.information_rates)


def group_sequential_design(information_rates=None, *, kmax: int | None = None, alpha: float = 0.025,
                            beta: float = 0.2, type_of_design: DesignKind = "asOF",
                            gamma: float | None = None, futility=None, futility_gamma: float | None = None,
                            binding_futility: bool = False, user_alpha_spending=None, sided: int = 1,
                            grid_points: int = 32) -> GroupSequentialDesign:
    """Build a group-sequential design (rpact's ``getDesignGroupSequential``), one-sided or
    two-sided with symmetric boundaries (``sided = 2``, no futility).

    Parameters
    ----------
    information_rates : array_like, optional
        Information fractions of the looks; default equally spaced ``k/kmax``.
    kmax : int, optional
        Number of looks if ``information_rates`` is not given.
    alpha, beta : float
        One-sided significance level and type II error.
    type_of_design : {"asOF", "asP", "asHSD", "asKD", "asUser", "P", "OF"}
    gamma : float, optional
        Parameter for ``"asHSD"`` (gamma) / ``"asKD"`` (rho).
    user_alpha_spending : array_like, optional
        ``"asUser"``: the cumulative alpha spent at each look, increasing, the last = ``alpha``.
    sided : {1, 2}
        Two-sided: ``alpha`` is the two-sided level, spent on both tails symmetrically.
    futility : None, array_like of length K-1, or {"bsOF", "bsP", "bsHSD", "bsKD"}
        Fixed z futility bounds (``-inf`` for none) or a beta-spending family.
    futility_gamma : float, optional
        Parameter of the ``"bsHSD"``/``"bsKD"`` beta-spending function.
    binding_futility : bool
        Only with fixed futility bounds: compute efficacy boundaries accounting for them.
    grid_points : int
        J&T grid parameter r.

    Examples
    --------
    >>> d = group_sequential_design([0.3333333, 0.6666667, 1.0], type_of_design="asOF")
    >>> np.round(d.critical_values, 4).tolist()
    [3.7103, 2.5114, 1.993]
    """
    if information_rates is None:
        if kmax is None or kmax < 1:
            raise ValueError(f"give information_rates or kmax >= 1, got kmax={kmax}")
        information_rates = np.arange(1, kmax + 1) / kmax
    t = _check_rates(information_rates)
    k_max = len(t)
    if sided not in (1, 2):
        raise ValueError(f"sided must be 1 or 2, got {sided}")
    if not 0 < alpha < 0.5 * sided:
        raise ValueError(f"alpha must lie in (0, {0.5 * sided:g}), got {alpha}")
    if sided == 2 and (futility is not None or binding_futility):
        raise ValueError("two-sided designs here have no futility bounds")
    if not 0 < beta < 1 - alpha:
        raise ValueError(f"beta must lie in (0, 1 - alpha), got {beta}")
    r = int(grid_points)
    if r < 8:
        raise ValueError(f"grid_points must be >= 8, got {grid_points}")

    fut_kind = None
    lower = np.full(k_max, -np.inf)
    if futility is not None and not isinstance(futility, str):
        fut_kind = "fixed"
        lower[:-1] = _bounds(k_max, futility, -np.inf, "futility", length=k_max - 1)
    elif isinstance(futility, str) and futility not in _BETA_SPENDING:
        raise ValueError(f"futility must be None, z bounds or one of {tuple(_BETA_SPENDING)}, got {futility!r}")
    if binding_futility and fut_kind != "fixed":
        raise ValueError("binding_futility needs fixed futility bounds (beta spending here is non-binding)")

    eff_lower = lower if binding_futility else np.full(k_max, -np.inf)
    if type_of_design in _SPENDING:
        # two-sided as rpact: each tail spends the one-sided function at alpha / 2 (the same
        # thing for the families linear in alpha; not for asOF)
        cum = spending_function(type_of_design, t, alpha, gamma) if sided == 1 else \
            2 * spending_function(type_of_design, t, alpha / 2, gamma)
        increments = np.diff(np.concatenate([[0.0], cum]))
        u = _solve_efficacy(t, increments, eff_lower, r, two_sided=sided == 2)
    elif type_of_design == "asUser":
        cum = np.asarray(user_alpha_spending if user_alpha_spending is not None else [], dtype=float)
        if cum.shape != (k_max,) or np.any(np.diff(cum) <= 0) or cum[0] <= 0 or abs(cum[-1] - alpha) > 1e-12:
            raise ValueError(f"asUser needs user_alpha_spending: {k_max} cumulative values, increasing, the last = "
                             f"alpha {alpha}, got {None if user_alpha_spending is None else list(user_alpha_spending)}")
        increments = np.diff(np.concatenate([[0.0], cum]))
        u = _solve_efficacy(t, increments, eff_lower, r, two_sided=sided == 2)
    elif type_of_design in _CONSTANT:
        if binding_futility:
            raise ValueError("binding futility is implemented for spending designs only")
        u = _solve_constant(t, alpha, type_of_design, r, sided)
    else:
        raise ValueError(f"type_of_design must be one of {(*_SPENDING, 'asUser', *_CONSTANT)}, "
                         f"got {type_of_design!r}")

    drift_bs = None
    if isinstance(futility, str):
        fut_kind = futility
        kind = _BETA_SPENDING[futility]
        if k_max == 1:
            raise ValueError("beta-spending futility needs at least two looks")

        def resid(theta):
            return _beta_futility(t, u, beta, kind, futility_gamma, theta, r)[1]

        hi = -_ndtri(alpha) - _ndtri(beta)
        while resid(hi) > 0:
            hi *= 1.5
        drift_bs = optimize.brentq(resid, 0.0, hi, xtol=1e-12)
        lo_all, _ = _beta_futility(t, u, beta, kind, futility_gamma, drift_bs, r)
        lower[:-1] = lo_all[:-1]

    up0, dn0 = crossing_probabilities(t, u, -u if sided == 2 else eff_lower, 0.0, r)
    if sided == 2:
        up0 = up0 + dn0
    return GroupSequentialDesign(
        information_rates=t, alpha=alpha, beta=beta, type_of_design=type_of_design, gamma=gamma,
        critical_values=u, futility_bounds=lower, alpha_spent=np.cumsum(up0),
        binding_futility=binding_futility, futility=fut_kind, drift_beta_spending=drift_bs,
        grid_points=r, sided=sided)


def fixed_sample_design(alpha: float = 0.025, beta: float = 0.2) -> GroupSequentialDesign:
    """A single look at full information: critical value ``z_{1-alpha}``."""
    return group_sequential_design([1.0], alpha=alpha, beta=beta, type_of_design="asOF")
