"""Priors from one historical control arm: the fixed power prior (Ibrahim & Chen 2000; binary,
normal and count) and the commensurate prior (Hobbs et al. 2011; binary and normal), with the
power prior's ESS."""

from __future__ import annotations

import numpy as np
from scipy import special

from .base import as_float, check_positive
from .mixtures import BetaMixture, GammaMixture, NormalMixture


def _check_a0(a0) -> np.ndarray:
    a = as_float("a0", a0)
    if np.any((a < 0) | (a > 1)):
        raise ValueError(f"a0 must lie in [0, 1], got {a!r}")
    return a


def power_prior_binary(r_h, n_h, a0, initial: BetaMixture | None = None) -> BetaMixture:
    r"""Fixed-:math:`a_0` power prior for a response rate (Ibrahim & Chen 2000).

    .. math:: p(\theta\mid D_h, a_0) \propto L(\theta\mid D_h)^{a_0}\,\pi_0(\theta),
       \qquad L^{a_0} = \theta^{a_0 r_h}(1-\theta)^{a_0(n_h-r_h)},

    i.e. the conjugate update of :math:`\pi_0` (default Beta(1, 1)) with :math:`a_0 r_h`
    responders of :math:`a_0 n_h`.  Vectorised over ``r_h, n_h, a0``.  The borrowed
    information is :func:`power_prior_ess` = :math:`a_0 n_h`; the prior's total ESS adds
    that of :math:`\pi_0` (2 for the uniform).
    """
    a = _check_a0(a0)
    init = BetaMixture(1.0, 1.0, 1.0) if initial is None else initial
    return init.posterior(a * as_float("r_h", r_h), a * as_float("n_h", n_h))


def power_prior_normal(mean_h, n_h, a0, sigma: float, initial: NormalMixture | None = None) -> NormalMixture:
    r"""Fixed-:math:`a_0` power prior for a normal mean with known sampling sd ``sigma``.

    Raising the likelihood of :math:`n_h` observations with mean :math:`\bar y_h` to the
    power :math:`a_0` gives the likelihood of :math:`a_0 n_h` observations with that mean.
    With ``initial=None`` (flat initial prior) the result is
    :math:`\mathrm{N}(\bar y_h, \sigma^2/(a_0 n_h))`, ESS exactly :math:`a_0 n_h`;
    otherwise the conjugate update of ``initial``.
    """
    a = _check_a0(a0)
    if np.any(a == 0) and initial is None:
        raise ValueError("a0 = 0 with a flat initial prior gives an improper prior; pass initial=...")
    nh = as_float("n_h", n_h)
    check_positive("n_h", nh)
    se = sigma / np.sqrt(a * nh)
    m = as_float("mean_h", mean_h)
    if initial is None:
        m, se = np.broadcast_arrays(m, se)
        return NormalMixture(np.ones(m.shape + (1,)), m[..., None], se[..., None], sigma=sigma)
    return initial.posterior(m, se=se)


def power_prior_count(events_h, exposure_h, a0, initial: GammaMixture | None = None) -> GammaMixture:
    r"""Fixed-:math:`a_0` power prior for a Poisson event rate.

    .. math:: L(\lambda\mid D_h)^{a_0} \propto \lambda^{a_0 y_h} e^{-a_0 E_h \lambda},

    the likelihood of :math:`a_0 y_h` events over :math:`a_0 E_h` exposure, so the result is
    the conjugate update of :math:`\pi_0` (default Gamma(0.001, 0.001), the vague rate prior
    of the treatment arm): Gamma(:math:`0.001 + a_0 y_h`, :math:`0.001 + a_0 E_h`).  The
    borrowed information is :func:`power_prior_ess` = :math:`a_0 E_h` units of exposure.
    Vectorised over ``events_h, exposure_h, a0``.
    """
    a = _check_a0(a0)
    y = as_float("events_h", events_h)
    e = as_float("exposure_h", exposure_h)
    check_positive("exposure_h", e)
    init = GammaMixture(1.0, 0.001, 0.001) if initial is None else initial
    return init.posterior(a * y, a * e)


def power_prior_ess(a0, n_h) -> np.ndarray:
    r"""Information borrowed by a fixed power prior: :math:`a_0 n_h` observations."""
    return _check_a0(a0) * as_float("n_h", n_h)


def commensurate_prior_normal(
    mean_h, n_h, sigma_h: float, kappa, sigma: float | None = None
) -> NormalMixture:
    r"""Commensurate prior for the current mean with fixed commensurability :math:`\kappa`.

    Hobbs et al. (2011): :math:`\mu \mid \mu_h \sim \mathrm{N}(\mu_h, 1/\kappa)` and, after
    a flat-prior analysis of the historical data,
    :math:`\mu_h \sim \mathrm{N}(\bar y_h, \sigma_h^2/n_h)`; integrating :math:`\mu_h` out,

    .. math:: \mu \sim \mathrm{N}\big(\bar y_h,\ \sigma_h^2/n_h + 1/\kappa\big).

    :math:`\kappa\to\infty` pools, :math:`\kappa\to0` ignores the history.  Its ESS with
    respect to the current sampling sd :math:`\sigma` is
    :math:`\sigma^2/(\sigma_h^2/n_h + 1/\kappa)`.  Vectorised over the inputs.
    """
    k = as_float("kappa", kappa)
    check_positive("kappa", k)
    nh = as_float("n_h", n_h)
    check_positive("n_h", nh)
    m = as_float("mean_h", mean_h)
    sd = np.sqrt(sigma_h**2 / nh + 1.0 / k)
    m, sd = np.broadcast_arrays(m, sd)
    return NormalMixture(np.ones(m.shape + (1,)), m[..., None], sd[..., None], sigma=sigma)


def commensurate_prior_binary(r_h, n_h, kappa) -> BetaMixture:
    r"""Commensurate prior for a response rate, mapped to a conjugate beta (documented choice).

    On the logit scale, :math:`\phi_h = \operatorname{logit}\theta_h` is estimated by
    :math:`\hat\phi_h = \log\frac{r_h+1/2}{n_h-r_h+1/2}` with variance
    :math:`v_h = \frac{1}{r_h+1/2} + \frac{1}{n_h-r_h+1/2}` (normal approximation with the
    Haldane-Anscombe correction), and the commensurate prior for the current logit is
    :math:`\mathrm{N}(\hat\phi_h, v_h + 1/\kappa)`.  To keep the analysis conjugate (and
    vectorised) this logit-normal is replaced by the beta with the same mean and variance
    on the probability scale (moments by 40-point Gauss-Hermite quadrature).  Its moment
    ESS is therefore exactly :math:`a + b`.
    """
    r = as_float("r_h", r_h)
    n = as_float("n_h", n_h)
    k = as_float("kappa", kappa)
    check_positive("kappa", k)
    if np.any(r < 0) or np.any(r > n):
        raise ValueError(f"need 0 <= r_h <= n_h, got r_h={r!r}, n_h={n!r}")
    phi = np.log((r + 0.5) / (n - r + 0.5))
    v = 1.0 / (r + 0.5) + 1.0 / (n - r + 0.5) + 1.0 / k
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    th = special.expit(phi[..., None] + np.sqrt(v)[..., None] * x)
    m = np.sum(w * th, axis=-1)
    var = np.sum(w * th**2, axis=-1) - m**2
    nn = m * (1 - m) / var - 1.0
    return BetaMixture(np.ones(m.shape + (1,)), (m * nn)[..., None], ((1 - m) * nn)[..., None])
