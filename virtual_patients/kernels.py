"""NumPy kernels that draw virtual patients from one posterior draw of a generator.

These are the hot loops (millions of patients per second): plain arrays in, plain arrays
out, every random number from the `numpy.random.Generator` passed in, in a fixed order,
so the same seed always gives the same patients.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .encoding import Encoder


def draw_covariates(
    params: dict[str, np.ndarray],
    encoders: list[Encoder],
    offsets: list[int],
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw n patients' covariates sequentially, each given the ones before it.

    Returns the design matrix D (n, P) and each covariate's values in model form
    (transformed-scale floats for continuous, level codes for binary/categorical,
    counts for count).
    """
    D = np.empty((n, offsets[-1]), order="F")  # filled and read a column at a time
    values: dict[str, np.ndarray] = {}
    for j, enc in enumerate(encoders):
        base = f"cov_{enc.name}"
        p = offsets[j]
        a, b = params[f"{base}_intercept"], params[f"{base}_coef"]
        eta = D[:, :p] @ b + a if p else np.broadcast_to(a, (n, *np.shape(a))).copy()
        if enc.type == "continuous":
            z = _normal(eta, params[f"{base}_sigma"], _z_bounds(enc), rng)
            values[enc.name] = enc.inverse(z)
            # an empirical margin enters later models through the value's mid-rank score,
            # exactly as a real patient's value would (see encoding.distributional_scores)
            D[:, p] = enc.forward(values[enc.name]) if enc.transform == "quantile" else z
        elif enc.type == "binary":
            code = (rng.random(n) < special.expit(eta)).astype(np.int64)
            D[:, p] = code
            values[enc.name] = code
        elif enc.type == "categorical":
            code = _categorical(eta, rng)
            for c in range(enc.width):
                D[:, p + c] = code == c + 1
            values[enc.name] = code
        else:  # count: negative binomial as a gamma-Poisson mixture
            phi = params[f"{base}_phi"]
            lam = rng.gamma(phi, np.exp(eta) / phi)
            x = rng.poisson(lam)
            D[:, p] = enc.forward(x.astype(float))
            values[enc.name] = x
    return D, values


def _z_bounds(enc: Encoder) -> tuple[float, float] | None:
    """The plausible range on the standardised scale, or None when unbounded."""
    lo, hi = -np.inf, np.inf
    if enc.range is not None:
        lo, hi = enc.range
    if enc.transform == "log":
        lo = max(lo, 0.0)
    if enc.transform == "log1p":
        lo = max(lo, -1.0)
    if enc.transform == "quantile" or (not np.isfinite(lo) and not np.isfinite(hi)):
        return None  # the empirical margin is bounded by its own knots
    with np.errstate(divide="ignore"):
        zl, zh = enc.forward(np.array([lo, hi])) if enc.type == "continuous" else (lo, hi)
    return float(zl), float(zh)


def _normal(eta: np.ndarray, sigma: float, bounds: tuple[float, float] | None, rng,
            rounds: int = 8) -> np.ndarray:
    """Normal draws, truncated to `bounds` when given.

    Rejection first (cheap when the bounds are plausibility limits that few draws
    cross); patients still outside after `rounds` redraws — deep in a tail — get the
    exact inversion of `_normal_inverse`.
    """
    z = eta + sigma * rng.standard_normal(eta.shape[0])
    if bounds is None:
        return z
    lo, hi = bounds
    bad = np.flatnonzero((z < lo) | (z > hi))
    for _ in range(rounds):
        if bad.size == 0:
            return z
        redraw = eta[bad] + sigma * rng.standard_normal(bad.size)
        z[bad] = redraw
        bad = bad[(redraw < lo) | (redraw > hi)]
    if bad.size:
        z[bad] = _normal_inverse(eta[bad], sigma, bounds, rng)
    return z


def _normal_inverse(eta: np.ndarray, sigma: float, bounds: tuple[float, float], rng) -> np.ndarray:
    """Truncated normal draws by inversion in log space on the lower tail (an interval in
    the upper tail is mirrored first): exact tens of sds out, where ndtr rounds to 0 or 1."""
    a, b = (bounds[0] - eta) / sigma, (bounds[1] - eta) / sigma
    flip = a > 0
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    v = rng.random(eta.shape[0])
    with np.errstate(divide="ignore"):
        # log of (1 - v) Phi(lo) + v Phi(hi)
        log_u = np.logaddexp(np.log1p(-v) + special.log_ndtr(lo), np.log(v) + special.log_ndtr(hi))
    z = np.clip(special.ndtri_exp(log_u), lo, hi)  # clip: last-bit rounding only
    return eta + sigma * np.where(flip, -z, z)


def _categorical(eta: np.ndarray, rng) -> np.ndarray:
    """Level codes from K-1 logits against a reference level with logit 0 (inversion),
    a column at a time on 1-D arrays."""
    n, k = eta.shape
    m = np.maximum(eta.max(axis=1), 0.0)
    cums = [np.exp(-m)]  # the reference level
    for c in range(k):
        cums.append(cums[-1] + np.exp(eta[:, c] - m))
    u = rng.random(n) * cums[-1]
    code = (u > cums[0]).astype(np.int64)
    for c in range(1, k):
        code += u > cums[c]
    return code


# ---------------------------------------------------------------------- outcomes
SURVIVAL = ("weibull", "piecewise_exponential")


def outcome_noise(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """The outcome's random part, drawn once so that control and treated twins share it."""
    if family == "normal":
        return rng.standard_normal(n)
    if family in SURVIVAL:
        return rng.standard_exponential(n)
    return rng.random(n)  # bernoulli / poisson: inversion of a uniform


def outcome_from_noise(family: str, eta: np.ndarray, noise: np.ndarray, params: dict[str, np.ndarray],
                       cuts: np.ndarray | None = None) -> np.ndarray:
    """Outcome on the model's internal scale for linear predictor eta.

    normal: standardised y; bernoulli: 0/1; poisson: counts; survival: uncensored event
    time in the generator's time unit, solving H0(t) e^eta = E for E ~ Exp(1).
    """
    if family == "normal":
        return eta + params["sigma"] * noise
    if family == "bernoulli":
        return (noise < special.expit(eta)).astype(np.int64)
    if family == "poisson":
        return _poisson_inverse(noise, np.exp(eta))
    # S(t) = exp(-H) (or (1 + theta H)^(-1/theta) with frailty) = exp(-E): solve for H, then t
    theta = params.get("frailty_var")
    target = (np.expm1(theta * noise) / theta if theta is not None else noise) * np.exp(-eta)
    if family == "piecewise_exponential":
        return piecewise_inverse(target, params["log_baseline"], cuts)
    return target ** (1.0 / params["shape"])


def piecewise_inverse(target: np.ndarray, log_baseline: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """t with H0(t) = target for a piecewise-constant baseline hazard."""
    h = np.exp(log_baseline)
    bounds = np.concatenate([[0.0], cuts])
    at_bounds = np.concatenate([[0.0], np.cumsum(h[:-1] * np.diff(bounds))])
    j = np.searchsorted(at_bounds, target, side="right") - 1
    return bounds[j] + (target - at_bounds[j]) / h[j]


def survival_from_cumhaz(H: np.ndarray, theta: np.ndarray | None) -> np.ndarray:
    """S = exp(-H), or with a gamma frailty of variance theta, (1 + theta H)^(-1/theta)."""
    if theta is None:
        return np.exp(-H)
    return np.exp(-np.log1p(theta * H) / theta)


def baseline_cumhaz(family: str, t: np.ndarray, P: dict[str, np.ndarray], cuts: np.ndarray | None) -> np.ndarray:
    """H0(t) for every patient (rows) under every posterior draw (columns)."""
    if family == "piecewise_exponential":
        from .model import interval_exposure

        return interval_exposure(t, cuts) @ np.exp(P["log_baseline"]).T
    return np.asarray(t, dtype=float)[:, None] ** P["shape"][None, :]


def _poisson_inverse(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    from scipy import stats

    # ppf(0) is -1: u can be exactly 0 (probability 2^-53 a draw)
    return np.maximum(stats.poisson.ppf(u, lam), 0).astype(np.int64)


def censor(
    t: np.ndarray, administrative: float, dropout_rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Right-censor event times at end of follow-up and at exponential dropout times."""
    c = np.full(t.shape, administrative, dtype=float)
    if dropout_rate > 0:
        c = np.minimum(c, rng.exponential(1.0 / dropout_rate, t.shape))
    event = (t <= c).astype(np.int64)
    return np.minimum(t, c), event
