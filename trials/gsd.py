r"""Group-sequential designs: error-spending boundaries, exact crossing probabilities and
vectorised Monte Carlo simulation of two-arm (and multi-arm) trials.

Plain numpy/scipy kernels. Every simulated quantity has a leading replicate axis of length
``R``; every random draw comes from a :class:`numpy.random.Generator` argument, so the same
seed gives bit-identical results.

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

Simulation conventions (match rpact 3.3.4 where noted)
------------------------------------------------------
* A trial stops at the first look with :math:`Z_k \ge u_k` (efficacy) or, for
  :math:`k < K`, :math:`Z_k \le l_k` (futility); the last look always ends it.
* Means (:func:`simulate_means`): stage-wise *sufficient statistics* per arm are drawn —
  the stage sum :math:`\sim N(m\mu, m\sigma^2)` and, for the t statistic, the within-stage
  sum of squares :math:`\sim \sigma^2\chi^2_{m-1}` (independent), exactly equivalent to
  drawing the :math:`m` patients. ``statistic="z"`` (default) is the cumulative two-sample
  z statistic with known sd — what rpact's ``getSimulationMeans`` computes by default
  (``normalApproximation = TRUE``: stage-wise normal statistics combined with
  :math:`\sqrt{n_k}` weights, which is the cumulative z). ``statistic="t"`` is the pooled
  two-sample t statistic on the cumulative data with :math:`N_k - 2` df, mapped to the z
  scale by matching p-values, :math:`Z_k = \Phi^{-1}(F_{t, N_k-2}(T_k))`, the scale rpact
  compares with its critical values. (rpact's ``normalApproximation = FALSE`` draws one
  noncentral t per *stage* and combines them with :math:`\sqrt{n_k}` weights, an
  approximation to this cumulative t; the operating characteristics agree within Monte
  Carlo error.) Cumulative arm sizes: ``n1 = floor(N r/(1+r) + 1/2)``, ``n2 = N - n1``
  (rpact uses the fractional ``N r/(1+r)``).
* Survival (:func:`simulate_survival`): exponential event times, treatment hazard
  ``hazard_ratio * lambda2``; ``entry="regular"`` uses rpact's deterministic accrual grid
  :math:`e_i = iA/N` and ``assignment="fixed"`` its repeated allocation pattern
  (1:1 → T, C, T, C, ...); ``entry="uniform"`` and ``assignment="random"`` randomise them.
  Look :math:`k` is at the calendar time of the :math:`d_k`-th event; the log-rank
  statistic uses all subjects entered by then. ``direction="lower"`` (rpact's
  ``directionUpper = FALSE``) means efficacy for HR < 1, i.e. :math:`Z = (E_1 - O_1)/\sqrt V`.
* No dropout, no sample-size re-estimation.

References: Jennison C, Turnbull BW (2000) *Group Sequential Methods with Applications to
Clinical Trials*, ch. 2, 7, 19; Lan KKG, DeMets DL (1983) Biometrika 70:659-663;
Hwang IK, Shih WJ, DeCani JS (1990) Stat Med 9:1439-1445; Schoenfeld D (1981) Biometrika
68:316-319; Dunnett CW (1955) JASA 50:1096-1121.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "GroupSequentialDesign",
    "ExactCharacteristics",
    "GSDSimulation",
    "MultiArmSimulation",
    "OperatingCharacteristics",
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
    "simulate_means",
    "simulate_survival",
    "simulate_multiarm_means",
    "summarize",
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


def _arm_sizes(total, allocation_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    total = np.asarray(total, dtype=np.int64)
    n1 = np.floor(total * allocation_ratio / (1 + allocation_ratio) + 0.5).astype(np.int64)
    return n1, total - n1


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


# ---------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GSDSimulation:
    """Per-replicate results of a simulated group-sequential trial.

    Attributes
    ----------
    stage : ndarray (R,) int
        1-based look at which the trial stopped.
    rejected, futility : ndarray (R,) bool
        Stopped for efficacy (at any look) / for futility before the last look.
    n_subjects : ndarray (R,)
        Subjects used (means) or enrolled by the stopping look (survival).
    events : ndarray (R,) or None
        Events at the stopping look (survival).
    analysis_time : ndarray (R, K) or None
        Calendar time of each look reached (``nan`` after the stop).
    z : ndarray (R, K)
        Test statistic on the z scale at each look reached (``nan`` after the stop).
    estimate : ndarray (R,)
        Mean difference (means) or Peto hazard ratio ``exp(U/V)`` (survival) at the stop.
    """

    design: GroupSequentialDesign
    endpoint: str
    stage: np.ndarray
    rejected: np.ndarray
    futility: np.ndarray
    n_subjects: np.ndarray
    z: np.ndarray
    estimate: np.ndarray
    events: np.ndarray | None = None
    analysis_time: np.ndarray | None = None
    settings: dict = field(default_factory=dict)

    @property
    def n_replicates(self) -> int:
        return len(self.stage)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_replicates(n_replicates) -> int:
    if int(n_replicates) != n_replicates or n_replicates < 1:
        raise ValueError(f"n_replicates must be a positive integer, got {n_replicates}")
    return int(n_replicates)


def _stopping(design: GroupSequentialDesign, z: np.ndarray):
    """First look crossing a boundary: (stage index, rejected, futility)."""
    k_max = design.kmax
    cross = z >= design.critical_values
    fut = z <= design.futility_bounds
    fut[:, -1] = False
    stop = cross | fut
    stop[:, -1] = True
    idx = np.argmax(stop, axis=1)
    rows = np.arange(len(z))
    rejected = cross[rows, idx]
    futility = fut[rows, idx] & ~rejected
    return idx, rejected, futility, np.arange(k_max)[None, :] > idx[:, None]


def simulate_means(design: GroupSequentialDesign, *, alternative: float, planned_subjects,
                   n_replicates: int, rng: np.random.Generator, stdev: float = 1.0,
                   allocation_ratio: float = 1.0, statistic: Literal["z", "t"] = "z",
                   direction: Literal["upper", "lower"] = "upper") -> GSDSimulation:
    r"""Simulate a two-arm group-sequential trial with a normal endpoint.

    Treatment mean ``alternative``, control mean 0, common sd ``stdev``; rpact's
    ``getSimulationMeans(design, alternative, stDev, plannedSubjects)``.

    Parameters
    ----------
    planned_subjects : array_like (K,)
        Cumulative total subjects at each look (both arms).
    statistic : {"z", "t"}
        Known-sd z statistic (rpact's default ``normalApproximation = TRUE``), or the
        pooled t statistic mapped to the z scale by p-value (``normalApproximation = FALSE``).
    direction : {"upper", "lower"}
        ``"lower"``: efficacy for a negative difference (the statistic is negated).

    Returns
    -------
    GSDSimulation
        ``estimate`` is the observed mean difference (treatment - control) at the stop.

    Notes
    -----
    Per replicate, stage and arm: one normal draw for the stage sum and (``"t"``) one
    gamma draw for the within-stage sum of squares, all in a single vectorised call each
    (normals first, so ``"t"`` and ``"z"`` runs share their means for the same seed).
    """
    rng = _check_rng(rng)
    R = _check_replicates(n_replicates)
    n_tot = np.asarray(planned_subjects)
    if n_tot.shape != (design.kmax,) or np.any(n_tot != np.round(n_tot)):
        raise ValueError(f"planned_subjects must be {design.kmax} integers, got {np.asarray(planned_subjects).tolist()}")
    if statistic not in ("t", "z"):
        raise ValueError(f"statistic must be 't' or 'z', got {statistic!r}")
    if direction not in ("upper", "lower"):
        raise ValueError(f"direction must be 'upper' or 'lower', got {direction!r}")
    if not stdev > 0 or not allocation_ratio > 0:
        raise ValueError(f"stdev and allocation_ratio must be > 0, got {stdev}, {allocation_ratio}")
    n1, n2 = _arm_sizes(n_tot, allocation_ratio)
    n = np.stack([n1, n2], axis=1)  # (K, 2) cumulative
    m = np.diff(np.concatenate([np.zeros((1, 2), dtype=np.int64), n]), axis=0)  # (K, 2) per stage
    if np.any(m < 1) or np.any(n[0] < 2):
        raise ValueError(f"each arm needs >= 2 subjects at look 1 and >= 1 new per look; "
                         f"got arm sizes {n.T.tolist()} from planned_subjects {n_tot.tolist()}")

    mu = np.array([alternative, 0.0])
    stage_sum = m * mu + stdev * np.sqrt(m) * rng.standard_normal((R, design.kmax, 2))
    if statistic == "t":
        stage_ss = 2 * stdev**2 * rng.standard_gamma((m - 1) / 2, size=(R, design.kmax, 2))

    cum_sum = np.cumsum(stage_sum, axis=1)
    mean = cum_sum / n  # (R, K, 2)
    diff = mean[..., 0] - mean[..., 1]
    se_unit = np.sqrt(1 / n1 + 1 / n2)  # (K,)
    sign = 1.0 if direction == "upper" else -1.0
    if statistic == "z":
        z = sign * diff / (stdev * se_unit)
    else:
        # Chan et al. pairwise update of the within-arm sum of squares over stages.
        ss = np.empty((R, design.kmax, 2))
        ss[:, 0] = stage_ss[:, 0]
        for k in range(1, design.kmax):
            delta = stage_sum[:, k] / m[k] - mean[:, k - 1]
            ss[:, k] = ss[:, k - 1] + stage_ss[:, k] + delta**2 * (n[k - 1] * m[k] / n[k])
        df = n1 + n2 - 2
        tstat = sign * diff / (np.sqrt(ss.sum(axis=2) / df) * se_unit)
        # p-value matching, Z = Phi^-1(F_t(T)); the upper tail is computed directly so
        # that large statistics keep their precision
        z = -_ndtri(special.stdtr(df, -tstat))

    idx, rejected, futility, after = _stopping(design, z)
    rows = np.arange(R)
    z = np.where(after, np.nan, z)
    return GSDSimulation(
        design=design, endpoint="means", stage=idx + 1, rejected=rejected, futility=futility,
        n_subjects=n_tot[idx].astype(float), z=z, estimate=diff[rows, idx],
        settings={"alternative": alternative, "stdev": stdev, "planned_subjects": n_tot.tolist(),
                  "allocation_ratio": allocation_ratio, "statistic": statistic,
                  "direction": direction, "n_replicates": R})


def _logrank(entry, surv, arm, t, upper: bool):
    """Log-rank z statistics at calendar times ``t`` for each row (replicate).

    entry : (R, N) or (N,) entry times; surv : (R, N) event times from entry;
    arm : (R, N) or (N,) bool, True = treatment; t : (R,) analysis times.
    Returns z (efficacy positive), Peto log-HR estimate U/V and the number entered.

    All replicates at once, one sort per look: subjects not yet entered get follow-up -1 so
    they sort first; the (arm, event) flags ride in the two lowest mantissa bits of the
    int64 view of the non-negative follow-up time, so one ``np.sort`` along axis 1 replaces
    argsort plus gathers (two follow-up times would have to lie within 3 ulp of each other
    for the order to change). After the sort the subjects at risk at position j are the
    N - j later ones, and the treatment subjects at risk are a cumulative sum.
    With ``f`` the treatment fraction at risk at each event:
    ``U = O_1 - sum f`` and ``V = sum f (1 - f)``.
    """
    tt = t[:, None]
    n_all = surv.shape[1]
    entered = entry <= tt
    follow = np.where(entered, np.minimum(surv, tt - entry), -1.0)
    flags = ((arm & entered).astype(np.int8) << 1) | ((entry + surv) <= tt).astype(np.int8)
    key = (follow.view(np.int64) & ~np.int64(3)) | flags
    key.sort(axis=1)
    low = (key & 3).astype(np.int8)
    arm_s = low >> 1
    ev_s = (low & 1).astype(np.float64)
    n_ent = entered.sum(axis=1) if entered.ndim == 2 else np.broadcast_to(entered.sum(axis=-1), t.shape)
    n_arm = arm_s.sum(axis=1, dtype=np.int32)
    # treatment subjects at risk at position j: those at positions >= j
    at_risk1 = (n_arm[:, None] - np.cumsum(arm_s, axis=1, dtype=np.int32)) + arm_s
    frac1 = at_risk1 * (1.0 / np.arange(n_all, 0, -1))  # / (N - j)
    sum_f = np.einsum("ij,ij->i", ev_s, frac1)
    sum_f2 = np.einsum("ij,ij,ij->i", ev_s, frac1, frac1)
    o1 = np.einsum("ij,ij->i", ev_s, arm_s.astype(np.float64))
    o_minus_e = o1 - sum_f
    var = sum_f - sum_f2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = o_minus_e / np.sqrt(var)
        log_hr = o_minus_e / var
    return (z if upper else -z), log_hr, n_ent


def simulate_survival(design: GroupSequentialDesign, *, hazard_ratio: float, lambda2: float,
                      planned_events, max_subjects: int, accrual_time: float,
                      n_replicates: int, rng: np.random.Generator,
                      direction: Literal["lower", "upper"] = "lower",
                      allocation: tuple[int, int] = (1, 1),
                      entry: Literal["regular", "uniform"] = "regular",
                      assignment: Literal["fixed", "random"] = "fixed",
                      chunk_size: int = 2048) -> GSDSimulation:
    r"""Simulate an event-driven two-arm group-sequential trial with exponential times.

    rpact's ``getSimulationSurvival(design, hazardRatio, lambda2, directionUpper,
    accrualTime = c(0, A), plannedEvents, maxNumberOfSubjects)``.

    Parameters
    ----------
    hazard_ratio : float
        Treatment / control hazard ratio; control hazard ``lambda2``.
    planned_events : array_like (K,)
        Cumulative events triggering each look.
    max_subjects, accrual_time : int, float
        Subjects accrued uniformly over ``[0, accrual_time]``.
    direction : {"lower", "upper"}
        ``"lower"`` (rpact ``directionUpper = FALSE``): efficacy for HR < 1.
    allocation : (int, int)
        Treatment : control allocation, e.g. ``(2, 1)``.
    entry : {"regular", "uniform"}
        rpact's deterministic grid ``e_i = i A / N``, or iid uniform entry times.
    assignment : {"fixed", "random"}
        rpact's repeated pattern (``a1`` treatment then ``a2`` control), or complete
        randomisation with probability ``a1 / (a1 + a2)``.
    chunk_size : int
        Replicates processed together (memory only; results do not depend on it).

    Returns
    -------
    GSDSimulation
        ``n_subjects`` = entered by the stopping look, ``events`` = planned events at it,
        ``analysis_time`` (R, K), ``estimate`` = Peto hazard ratio at the stop.
    """
    rng = _check_rng(rng)
    R = _check_replicates(n_replicates)
    d = np.asarray(planned_events)
    N = int(max_subjects)
    if d.shape != (design.kmax,) or np.any(d != np.round(d)) or np.any(np.diff(d) <= 0) or d[0] < 1:
        raise ValueError(f"planned_events must be {design.kmax} increasing positive integers, got {d.tolist()}")
    if d[-1] > N:
        raise ValueError(f"planned_events[-1]={d[-1]} exceeds max_subjects={N} (no dropout: at most one event each)")
    if not hazard_ratio > 0 or not lambda2 > 0 or not accrual_time > 0:
        raise ValueError(f"hazard_ratio, lambda2, accrual_time must be > 0, got {hazard_ratio}, {lambda2}, {accrual_time}")
    a1, a2 = (int(a) for a in allocation)
    if a1 < 1 or a2 < 1:
        raise ValueError(f"allocation must be two positive integers, got {allocation}")
    if entry not in ("regular", "uniform") or assignment not in ("fixed", "random"):
        raise ValueError(f"entry must be 'regular'|'uniform' and assignment 'fixed'|'random', got {entry!r}, {assignment!r}")
    if direction not in ("lower", "upper"):
        raise ValueError(f"direction must be 'lower' or 'upper', got {direction!r}")
    d = d.astype(np.int64)

    # random numbers first, all at once, so chunking never changes them
    expo = rng.standard_exponential((R, N))
    if entry == "uniform":
        entry_times = rng.uniform(0.0, accrual_time, (R, N))
    else:
        entry_times = np.arange(1, N + 1) * (accrual_time / N)
    if assignment == "random":
        arm = rng.random((R, N)) < a1 / (a1 + a2)
    else:
        arm = (np.arange(N) % (a1 + a2)) < a1
    lam1 = hazard_ratio * lambda2
    surv = expo / np.where(arm, lam1, lambda2)

    K = design.kmax
    z = np.full((R, K), np.nan)
    times = np.full((R, K), np.nan)
    entered = np.zeros((R, K))
    log_hr = np.full((R, K), np.nan)
    step = max(int(chunk_size), 1)
    for lo in range(0, R, step):
        sl = slice(lo, min(lo + step, R))
        e_c = entry_times if entry_times.ndim == 1 else entry_times[sl]
        a_c = arm if arm.ndim == 1 else arm[sl]
        s_c = surv[sl]
        cal = np.sort(e_c + s_c, axis=1)[:, d - 1]  # (r, K) look times (a SIMD sort beats partition)
        times[sl] = cal
        act = np.ones(s_c.shape[0], dtype=bool)
        for k in range(K):
            rows = np.flatnonzero(act)
            if rows.size == 0:
                break
            e_r = e_c if e_c.ndim == 1 else e_c[rows]
            a_r = a_c if a_c.ndim == 1 else a_c[rows]
            zk, lhr, nk = _logrank(e_r, s_c[rows], a_r, cal[rows, k], direction == "upper")
            g = rows + lo
            z[g, k], log_hr[g, k], entered[g, k] = zk, lhr, nk
            if k < K - 1:
                stop = (zk >= design.critical_values[k]) | (zk <= design.futility_bounds[k])
                act[rows[stop]] = False

    idx, rejected, futility, after = _stopping(design, z)  # nan (look not reached) compares False
    rows = np.arange(R)
    z = np.where(after, np.nan, z)
    times = np.where(after, np.nan, times)
    return GSDSimulation(
        design=design, endpoint="survival", stage=idx + 1, rejected=rejected, futility=futility,
        n_subjects=entered[rows, idx], z=z, estimate=np.exp(log_hr[rows, idx]),
        events=d[idx].astype(float), analysis_time=times,
        settings={"hazard_ratio": hazard_ratio, "lambda2": lambda2, "planned_events": d.tolist(),
                  "max_subjects": N, "accrual_time": accrual_time, "direction": direction,
                  "allocation": (a1, a2), "entry": entry, "assignment": assignment,
                  "n_replicates": R})


@dataclass(frozen=True)
class MultiArmSimulation:
    """Per-replicate results of a multi-arm trial (k treatments vs a shared control).

    ``rejected`` (R, k) per arm; ``stage`` (R, k) 1-based look at which each arm stopped
    (efficacy or last look); ``n_subjects`` (R,) total subjects used; ``critical_values``
    (K,) boundaries each comparison used.
    """

    rejected: np.ndarray
    stage: np.ndarray
    n_subjects: np.ndarray
    critical_values: np.ndarray
    adjustment: str
    settings: dict = field(default_factory=dict)

    @property
    def any_rejected(self) -> np.ndarray:
        return self.rejected.any(axis=1)


def simulate_multiarm_means(*, alternatives, planned_subjects_per_arm, n_replicates: int,
                            rng: np.random.Generator, stdev: float = 1.0, alpha: float = 0.025,
                            information_rates=None, type_of_design: DesignKind = "asOF",
                            gamma: float | None = None,
                            adjustment: Literal["bonferroni", "dunnett"] = "bonferroni") -> MultiArmSimulation:
    r"""k treatment arms vs a shared control, known-sd z statistics, equal arm sizes.

    Each comparison :math:`Z_{ik} = (\bar x_{ik} - \bar x_{0k}) / (\sigma\sqrt{2/n_k})`.

    * ``"bonferroni"``: every comparison gets a group-sequential design at level
      ``alpha / k`` (same spending family); an arm stops recruiting when it crosses its
      efficacy boundary, the others and the control go on (separate monitoring). Each
      comparison's type I error is at most ``alpha / k`` whatever the other arms do, so the
      family-wise error rate is at most ``alpha``.
    * ``"dunnett"``: single look only (``planned_subjects_per_arm`` of length 1); critical
      value from :func:`dunnett_critical_value` with correlation 1/2, giving FWER exactly
      ``alpha`` under the global null.

    Parameters
    ----------
    alternatives : array_like (k,)
        Mean difference of each treatment arm vs control.
    planned_subjects_per_arm : array_like (K,)
        Cumulative subjects per arm (control included) at each look.
    """
    rng = _check_rng(rng)
    R = _check_replicates(n_replicates)
    alt = np.atleast_1d(np.asarray(alternatives, dtype=float))
    k = len(alt)
    n = np.asarray(planned_subjects_per_arm)
    K = len(n)
    if n.ndim != 1 or np.any(n != np.round(n)) or n[0] < 1 or np.any(np.diff(n) < 1):
        raise ValueError(f"planned_subjects_per_arm must be increasing positive integers, got {n.tolist()}")
    if adjustment == "dunnett":
        if K != 1:
            raise ValueError("adjustment='dunnett' is implemented for a single look only; use 'bonferroni'")
        crit = np.array([dunnett_critical_value(k, alpha, 0.5)])
    elif adjustment == "bonferroni":
        rates = n / n[-1] if information_rates is None else information_rates
        crit = group_sequential_design(rates, alpha=alpha / k, type_of_design=type_of_design,
                                       gamma=gamma).critical_values
    else:
        raise ValueError(f"adjustment must be 'bonferroni' or 'dunnett', got {adjustment!r}")

    m = np.diff(np.concatenate([[0], n]))  # per-stage subjects per arm
    mu = np.concatenate([[0.0], alt])  # arm 0 = control
    sums = m[:, None] * mu + stdev * np.sqrt(m)[:, None] * rng.standard_normal((R, K, k + 1))
    means = np.cumsum(sums, axis=1) / n[:, None]
    z = (means[..., 1:] - means[..., :1]) / (stdev * np.sqrt(2 / n))[:, None]  # (R, K, k)
    cross = z >= crit[None, :, None]
    stopped = cross.copy()
    stopped[:, -1, :] = True
    idx = np.argmax(stopped, axis=1)  # (R, k)
    rejected = np.take_along_axis(cross, idx[:, None, :], axis=1)[:, 0, :]
    trial_end = idx.max(axis=1)
    n_used = n[idx].sum(axis=1) + n[trial_end]
    return MultiArmSimulation(
        rejected=rejected, stage=idx + 1, n_subjects=n_used.astype(float), critical_values=crit,
        adjustment=adjustment,
        settings={"alternatives": alt.tolist(), "planned_subjects_per_arm": n.tolist(),
                  "stdev": stdev, "alpha": alpha, "type_of_design": type_of_design,
                  "n_replicates": R})


# ---------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------

def _prop(x: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(x))
    return p, float(np.sqrt(p * (1 - p) / len(x)))


def _mean(x: np.ndarray) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan")
    se = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(np.mean(x)), se


@dataclass(frozen=True)
class OperatingCharacteristics:
    """Simulated operating characteristics, each with its Monte Carlo standard error.

    Proportions carry the binomial MCSE ``sqrt(p(1-p)/R)``; means ``sd/sqrt(n)``.
    ``mean_analysis_times[k]`` is the mean calendar time of look k among replicates that
    reached it (rpact's ``analysisTime``); ``expected_duration`` the mean time at stopping.
    """

    n_replicates: int
    power: float
    power_mcse: float
    reject_per_stage: np.ndarray
    reject_per_stage_mcse: np.ndarray
    futility_per_stage: np.ndarray
    futility_per_stage_mcse: np.ndarray
    early_stop: float
    early_stop_mcse: float
    expected_n: float
    expected_n_mcse: float
    expected_events: float = float("nan")
    expected_events_mcse: float = float("nan")
    mean_analysis_times: np.ndarray | None = None
    mean_analysis_times_mcse: np.ndarray | None = None
    expected_duration: float = float("nan")
    expected_duration_mcse: float = float("nan")

    def to_frame(self):
        """Tidy table: one row per (quantity, stage) with value, MCSE and R."""
        import pandas as pd

        rows = []

        def add(name, value, se, stage=None):
            rows.append({"quantity": name, "stage": stage, "value": value, "mcse": se})

        add("power", self.power, self.power_mcse)
        for k, (v, s) in enumerate(zip(self.reject_per_stage, self.reject_per_stage_mcse, strict=True)):
            add("reject_per_stage", v, s, k + 1)
        for k, (v, s) in enumerate(zip(self.futility_per_stage, self.futility_per_stage_mcse, strict=True)):
            add("futility_per_stage", v, s, k + 1)
        add("early_stop", self.early_stop, self.early_stop_mcse)
        add("expected_n", self.expected_n, self.expected_n_mcse)
        if not np.isnan(self.expected_events):
            add("expected_events", self.expected_events, self.expected_events_mcse)
            for k, (v, s) in enumerate(zip(self.mean_analysis_times, self.mean_analysis_times_mcse, strict=True)):
                add("mean_analysis_time", v, s, k + 1)
            add("expected_duration", self.expected_duration, self.expected_duration_mcse)
        df = pd.DataFrame(rows)
        df["n_replicates"] = self.n_replicates
        return df


def summarize(sim: GSDSimulation) -> OperatingCharacteristics:
    """Power, per-stage rejection/futility, early stopping, expected N / events, mean look times."""
    K = sim.design.kmax
    rej = np.array([_prop(sim.rejected & (sim.stage == k + 1)) for k in range(K)])
    fut = np.array([_prop(sim.futility & (sim.stage == k + 1)) for k in range(K)])
    power = _prop(sim.rejected)
    early = _prop(sim.stage < K)
    en = _mean(sim.n_subjects)
    extra = {}
    if sim.events is not None:
        ev = _mean(sim.events)
        at = np.array([_mean(sim.analysis_time[:, k]) for k in range(K)])
        rows = np.arange(sim.n_replicates)
        dur = _mean(sim.analysis_time[rows, sim.stage - 1])
        extra = {"expected_events": ev[0], "expected_events_mcse": ev[1],
                 "mean_analysis_times": at[:, 0], "mean_analysis_times_mcse": at[:, 1],
                 "expected_duration": dur[0], "expected_duration_mcse": dur[1]}
    return OperatingCharacteristics(
        n_replicates=sim.n_replicates, power=power[0], power_mcse=power[1],
        reject_per_stage=rej[:, 0], reject_per_stage_mcse=rej[:, 1],
        futility_per_stage=fut[:, 0], futility_per_stage_mcse=fut[:, 1],
        early_stop=early[0], early_stop_mcse=early[1], expected_n=en[0], expected_n_mcse=en[1],
        **extra)
