r"""Group-sequential designs: error-spending boundaries and exact crossing probabilities
(plain numpy/scipy). Trials are simulated by the engine (`trials.engine`).

Canonical joint distribution
----------------------------
With information fractions :math:`0 < t_1 < \dots < t_K = 1` and drift :math:`\theta`
(the mean of the final z statistic), the sequential z statistics satisfy

.. math::

    Z_k \sim N(\theta\sqrt{t_k}, 1), \qquad
    \operatorname{Cov}(Z_j, Z_k) = \sqrt{t_j / t_k}\ (j \le k),

i.e. :math:`S_k = Z_k\sqrt{t_k}` has independent increments
:math:`S_k - S_{k-1} \sim N(\theta\Delta_k, \Delta_k)`, :math:`\Delta_k = t_k - t_{k-1}`.
Stage-wise crossing probabilities are computed by recursive numerical integration of the
sub-density of :math:`Z_k` on the continuation region (Armitage, McPherson & Rowe 1969;
Jennison & Turnbull 2000, ch. 19): the J&T grid of :math:`6r - 1` points per stage
(default ``r = 32``), Simpson's rule between grid points. Accuracy is far below 1e-8
for the designs here (checked against ``r = 128`` in the tests).

Error spending (one-sided level :math:`\alpha`, as rpact's ``typeOfDesign``)
-------------------------------------------------------------------------
* ``"asOF"`` Lan-DeMets O'Brien-Fleming type: :math:`\alpha(t) = 2 - 2\Phi(z_{1-\alpha/2}/\sqrt{t})`
* ``"asP"`` Lan-DeMets Pocock type: :math:`\alpha(t) = \alpha \log(1 + (e - 1)t)`
* ``"asHSD"`` Hwang-Shih-DeCani: :math:`\alpha(1 - e^{-\gamma t})/(1 - e^{-\gamma})`
  (:math:`\alpha t` at :math:`\gamma = 0`)
* ``"asKD"`` Kim-DeMets power family: :math:`\alpha t^{\gamma}`
* ``"P"`` / ``"OF"``: the classical constant Pocock and O'Brien-Fleming boundaries
  :math:`c_k = C` and :math:`c_k = C/\sqrt{t_k}` with :math:`C` solving total crossing
  probability :math:`= \alpha`.

Efficacy boundary :math:`u_k` solves
:math:`P_0(Z_j < u_j, j < k;\ Z_k \ge u_k) = \alpha(t_k) - \alpha(t_{k-1})`.

Futility (always *non-binding* for the efficacy boundaries unless ``binding_futility``)
--------------------------------------------------------------------------------------
* fixed z bounds: ``futility=[l_1, ..., l_{K-1}]`` (``-inf`` = none at that look);
* beta spending ``futility="bsOF" | "bsP" | "bsHSD" | "bsKD"`` (same families with
  :math:`\beta` in place of :math:`\alpha`): for a drift :math:`\theta`, :math:`l_k` solves
  :math:`P_\theta(l_j < Z_j < u_j, j<k;\ Z_k < l_k) = \beta(t_k) - \beta(t_{k-1})` (capped at
  :math:`u_k`), and :math:`\theta` is solved so that :math:`l_K = u_K`, i.e. power is exactly
  :math:`1-\beta` when futility stops are obeyed. This is rpact's construction for
  ``typeBetaSpending`` with ``bindingFutility = FALSE`` and reproduces its futility bounds
  and shift.

Simulation
----------
Trials are simulated by the engine (`trials.engine`, ``insilico simulate``): a design's
``sample_size.stages`` with ``spending`` give these boundaries, and each look's statistic is
compared with them (a trial stops at the first look with :math:`Z_k \ge u_k`, or for
:math:`k < K` with :math:`Z_k < l_k`; the last look always ends it).

References: Jennison C, Turnbull BW (2000) *Group Sequential Methods with Applications to
Clinical Trials*, ch. 2, 7, 19; Lan KKG, DeMets DL (1983) Biometrika 70:659-663;
Hwang IK, Shih WJ, DeCani JS (1990) Stat Med 9:1439-1445; Schoenfeld D (1981) Biometrika
68:316-319; Dunnett CW (1955) JASA 50:1096-1121.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "GroupSequentialDesign",
    "ExactCharacteristics",
    "spending_function",
    "crossing_probabilities",
    "group_sequential_design",
    "fixed_sample_design",
    "exact_characteristics",
    "drift_for_power",
    "means_drift",
    "logrank_drift",
    "power_z_test",
    "power_t_test",
    "expected_events_exponential",
    "analysis_time_exponential",
    "dunnett_critical_value",
]

SpendingKind = Literal["asOF", "asP", "asHSD", "asKD"]
DesignKind = Literal["asOF", "asP", "asHSD", "asKD", "P", "OF"]

_SPENDING = ("asOF", "asP", "asHSD", "asKD")
_CONSTANT = ("P", "OF")
_BETA_SPENDING = {"bsOF": "asOF", "bsP": "asP", "bsHSD": "asHSD", "bsKD": "asKD"}
_Z_CAP = 8.0  # an efficacy boundary with (numerically) nothing to spend; rpact uses 8 too

_ndtr = special.ndtr
_ndtri = special.ndtri


# ---------------------------------------------------------------------------------------
# spending functions
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# recursive numerical integration (Jennison & Turnbull ch. 19)
# ---------------------------------------------------------------------------------------

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


def _solve_efficacy(t, spend_increments, lower, grid_points) -> np.ndarray:
    """Efficacy boundaries spending the given increments (under drift 0)."""
    k_max = len(t)
    rec = _Recursion(t, 0.0, grid_points)
    u = np.empty(k_max)
    for k in range(k_max):
        target = spend_increments[k]
        if target <= 1e-15:
            u[k] = _Z_CAP
        elif k == 0:
            u[k] = -_ndtri(target)
        else:
            f = lambda x, k=k, target=target: rec.prob_above(k, x) - target  # noqa: E731
            if f(-_Z_CAP) < 0:
                raise ValueError(f"stage {k + 1}: cannot spend {target:.3g}, less probability is left")
            u[k] = _Z_CAP if f(_Z_CAP) > 0 else optimize.brentq(f, -_Z_CAP, _Z_CAP, xtol=1e-13)
        if k < k_max - 1:
            rec.advance(k, lower[k], u[k])
    return u


def _solve_constant(t, alpha, kind, grid_points) -> np.ndarray:
    shape = np.ones_like(t) if kind == "P" else 1 / np.sqrt(t)

    def f(c):
        up, _ = crossing_probabilities(t, c * shape, None, 0.0, grid_points)
        return up.sum() - alpha

    c = optimize.brentq(f, -_ndtri(alpha) * 0.5, -_ndtri(alpha / len(t)) + 1, xtol=1e-13)
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


# ---------------------------------------------------------------------------------------
# design
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupSequentialDesign:
    """A one-sided group-sequential design on the z scale.

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

    @property
    def kmax(self) -> int:
        return len(self.information_rates)


def group_sequential_design(information_rates=None, *, kmax: int | None = None, alpha: float = 0.025,
                            beta: float = 0.2, type_of_design: DesignKind = "asOF",
                            gamma: float | None = None, futility=None, futility_gamma: float | None = None,
                            binding_futility: bool = False, grid_points: int = 32) -> GroupSequentialDesign:
    """Build a one-sided group-sequential design (rpact's ``getDesignGroupSequential``).

    Parameters
    ----------
    information_rates : array_like, optional
        Information fractions of the looks; default equally spaced ``k/kmax``.
    kmax : int, optional
        Number of looks if ``information_rates`` is not given.
    alpha, beta : float
        One-sided significance level and type II error.
    type_of_design : {"asOF", "asP", "asHSD", "asKD", "P", "OF"}
    gamma : float, optional
        Parameter for ``"asHSD"`` (gamma) / ``"asKD"`` (rho).
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
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
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
        cum = spending_function(type_of_design, t, alpha, gamma)
        u = _solve_efficacy(t, np.diff(np.concatenate([[0.0], cum])), eff_lower, r)
    elif type_of_design in _CONSTANT:
        if binding_futility:
            raise ValueError("binding futility is implemented for spending designs only")
        u = _solve_constant(t, alpha, type_of_design, r)
    else:
        raise ValueError(f"type_of_design must be one of {_SPENDING + _CONSTANT}, got {type_of_design!r}")

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

    up0, _ = crossing_probabilities(t, u, eff_lower, 0.0, r)
    return GroupSequentialDesign(
        information_rates=t, alpha=alpha, beta=beta, type_of_design=type_of_design, gamma=gamma,
        critical_values=u, futility_bounds=lower, alpha_spent=np.cumsum(up0),
        binding_futility=binding_futility, futility=fut_kind, drift_beta_spending=drift_bs,
        grid_points=r)


def fixed_sample_design(alpha: float = 0.025, beta: float = 0.2) -> GroupSequentialDesign:
    """A single look at full information: critical value ``z_{1-alpha}``."""
    return group_sequential_design([1.0], alpha=alpha, beta=beta, type_of_design="asOF")


# ---------------------------------------------------------------------------------------
# exact characteristics and closed forms
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExactCharacteristics:
    """Exact operating characteristics of a design at one drift.

    ``expected_information`` is the expected information fraction at stopping
    (multiply by the maximum sample size / number of events for the expected N / events).
    """

    drift: float
    reject_per_stage: np.ndarray
    futility_per_stage: np.ndarray
    power: float
    early_stop: float
    expected_information: float


def exact_characteristics(design: GroupSequentialDesign, drift: float) -> ExactCharacteristics:
    """Exact stage-wise rejection / futility probabilities for a drift (futility obeyed)."""
    t = design.information_rates
    up, dn = crossing_probabilities(t, design.critical_values, design.futility_bounds, drift,
                                    design.grid_points)
    stop = up + dn
    stop_k = stop.copy()
    stop_k[-1] = 1 - stop[:-1].sum()
    return ExactCharacteristics(
        drift=float(drift), reject_per_stage=up, futility_per_stage=dn, power=float(up.sum()),
        early_stop=float(stop[:-1].sum()), expected_information=float(t @ stop_k))


def drift_for_power(design: GroupSequentialDesign, power: float | None = None) -> float:
    """Drift giving the requested power (default 1 - beta); rpact's ``shift`` is its square."""
    power = 1 - design.beta if power is None else power
    if not design.alpha < power < 1:
        raise ValueError(f"power must lie in (alpha, 1), got {power}")

    def f(theta):
        return exact_characteristics(design, theta).power - power

    hi = 2 * (-_ndtri(design.alpha) - _ndtri(1 - power)) + 1
    return optimize.brentq(f, 0.0, hi, xtol=1e-12)


def means_drift(alternative: float, stdev: float, n1: float, n2: float) -> float:
    """Drift of the two-sample z statistic: ``delta / (sigma sqrt(1/n1 + 1/n2))``."""
    return alternative / (stdev * np.sqrt(1 / n1 + 1 / n2))


def logrank_drift(hazard_ratio: float, events: float, allocation_fraction: float = 0.5) -> float:
    """Schoenfeld drift of the log-rank statistic (efficacy for HR < 1 positive).

    ``Phi(drift - z_{1-alpha})`` is Schoenfeld's fixed-sample power, as in
    :func:`trials.survival.schoenfeld_power`.
    """
    p = allocation_fraction
    return -np.log(hazard_ratio) * np.sqrt(events * p * (1 - p))


def power_z_test(alternative: float, stdev: float, n1: int, n2: int, alpha: float = 0.025) -> float:
    """One-sided power of the known-sd two-sample z test."""
    return float(_ndtr(means_drift(alternative, stdev, n1, n2) + _ndtri(alpha)))


def power_t_test(alternative: float, stdev: float, n1: int, n2: int, alpha: float = 0.025) -> float:
    """One-sided power of the pooled two-sample t test (noncentral t, exact)."""
    from .analyses import power_t_test as exact

    return exact(alternative, stdev, n1, n2, alpha)


def expected_events_exponential(time, *, lambda2: float, hazard_ratio: float, max_subjects: int,
                                accrual_time: float, allocation_fraction: float = 0.5) -> np.ndarray:
    """Expected number of events by calendar ``time``: uniform accrual, exponential times.

    ``D(t) = N sum_a pi_a (1/A) int_0^{min(t, A)} (1 - exp(-lambda_a (t - u))) du``.
    """
    t = np.asarray(time, dtype=float)
    m = np.minimum(t, accrual_time)
    out = np.zeros_like(t)
    for pi, lam in ((allocation_fraction, hazard_ratio * lambda2), (1 - allocation_fraction, lambda2)):
        out += pi * (m - (np.exp(-lam * (t - m)) - np.exp(-lam * t)) / lam) / accrual_time
    return max_subjects * out


def analysis_time_exponential(events, **kwargs) -> np.ndarray:
    """Calendar time at which ``events`` are expected (inverse of :func:`expected_events_exponential`)."""
    ev = np.atleast_1d(np.asarray(events, dtype=float))
    if np.any(ev >= kwargs["max_subjects"]):
        raise ValueError(f"events must be < max_subjects={kwargs['max_subjects']}, got {ev.tolist()}")
    out = []
    for d in ev:
        hi = kwargs["accrual_time"] + 1.0
        while expected_events_exponential(hi, **kwargs) < d:
            hi *= 2
        out.append(optimize.brentq(lambda x, d=d: expected_events_exponential(x, **kwargs) - d,
                                   0.0, hi, xtol=1e-12))
    return np.array(out)


def dunnett_critical_value(n_arms: int, alpha: float = 0.025, rho: float = 0.5) -> float:
    """One-sided Dunnett critical value for ``n_arms`` equicorrelated z statistics.

    Solves ``P(max_i Z_i < c) = 1 - alpha`` with ``Corr(Z_i, Z_j) = rho >= 0``, written as a
    one-dimensional integral: ``int phi(x) Phi((c - sqrt(rho) x) / sqrt(1 - rho))^k dx``.
    (``rho = n_t / (n_t + n_c)`` for equal treatment-arm sizes; 1/2 for equal allocation.)
    """
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    if not 0 <= rho < 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    sr, s1 = np.sqrt(rho), np.sqrt(1 - rho)

    def cover(c):
        g = lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi) * _ndtr((c - sr * x) / s1) ** n_arms  # noqa: E731
        return integrate.quad(g, -12, 12, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    return optimize.brentq(lambda c: cover(c) - (1 - alpha), 0.0, 10.0, xtol=1e-12)
