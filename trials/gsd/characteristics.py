"""What a group-sequential design does: exact power, stopping and expected information at a drift,
the drift for a given power, drifts of means and log-rank designs, events and analysis times of
exponential survival, and Dunnett's critical value for several arms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy.special import ndtr, ndtri

from ..analyses import power_t_test as exact_t_power
from .boundaries import GroupSequentialDesign, crossing_probabilities


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

    hi = 2 * (-ndtri(design.alpha) - ndtri(1 - power)) + 1
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
    return float(ndtr(means_drift(alternative, stdev, n1, n2) + ndtri(alpha)))


def power_t_test(alternative: float, stdev: float, n1: int, n2: int, alpha: float = 0.025) -> float:
    """One-sided power of the pooled two-sample t test (noncentral t, exact)."""
    return exact_t_power(alternative, stdev, n1, n2, alpha)


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
        g = lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi) * ndtr((c - sr * x) / s1) ** n_arms  # noqa: E731
        return integrate.quad(g, -12, 12, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    return optimize.brentq(lambda c: cover(c) - (1 - alpha), 0.0, 10.0, xtol=1e-12)
