"""Beta, normal (known sd) and gamma mixture priors with their conjugate updates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import special, stats

from .base import MixtureBase, as_float, check_positive, component_rows


@dataclass(frozen=True, eq=False, repr=False)
class BetaMixture(MixtureBase):
    r"""Mixture of beta densities for a response rate :math:`\theta\in(0,1)`.

    .. math:: p(\theta) = \sum_k w_k \,\mathrm{Beta}(\theta \mid a_k, b_k)

    Parameters
    ----------
    weights, a, b : array_like
        Arrays broadcasting to ``batch_shape + (K,)``; weights sum to one over the last
        axis, ``a, b > 0``.

    Examples
    --------
    >>> prior = BetaMixture([0.8, 0.2], [10.0, 1.0], [30.0, 1.0])
    >>> post = prior.posterior(r=[2, 12], n=20)   # two replicates in one call
    >>> post.batch_shape, post.n_components
    ((2,), 2)
    """

    weights: np.ndarray
    a: np.ndarray
    b: np.ndarray
    _param_names: ClassVar[tuple[str, str]] = ("a", "b")

    def __post_init__(self) -> None:
        self._normalise_fields()
        check_positive("a", self.a)
        check_positive("b", self.b)

    @classmethod
    def from_components(cls, components) -> BetaMixture:
        """Build from rows ``(w, a, b)`` (RBesT's ``mixbeta`` layout)."""
        return cls(*component_rows(components, "(w, a, b)"))

    @classmethod
    def from_mean_n(cls, mean, n, weights=1.0) -> BetaMixture:
        r"""Components from mean :math:`m` and prior sample size :math:`n`: :math:`a=mn`, :math:`b=(1-m)n`."""
        m = as_float("mean", mean)
        nn = as_float("n", n)
        return cls(np.broadcast_to(weights, np.broadcast(m, nn).shape), m * nn, (1 - m) * nn)

    def _comp_logpdf(self, x):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = stats.beta.logpdf(x, self.a, self.b)
        return out

    def _comp_cdf(self, x):
        return special.betainc(self.a, self.b, np.clip(x, 0.0, 1.0))

    def _comp_ppf(self, q):
        return special.betaincinv(self.a, self.b, q)

    def _comp_moments(self):
        n = self.a + self.b
        m = self.a / n
        return m, m * (1 - m) / (n + 1)

    def _comp_sample(self, rng, a, b):
        return rng.beta(a, b)

    def _robust_component(self, mean, n):
        # RBesT's robustify.betaMix: mean 1/2 by default and n + 1 pseudo-observations,
        # so that n = 1 gives the uniform Beta(1, 1) rather than Beta(1/2, 1/2).
        m = 0.5 if mean is None else float(mean)
        if not 0.0 < m < 1.0:
            raise ValueError(f"mean must lie in (0, 1), got {mean!r}")
        return np.asarray(m * (n + 1)), np.asarray((1 - m) * (n + 1))

    def posterior(self, r, n) -> BetaMixture:
        r"""Conjugate update with ``r`` responders of ``n`` (arrays over replicates).

        Component :math:`k` becomes :math:`\mathrm{Beta}(a_k+r, b_k+n-r)` with weight
        proportional to :math:`w_k B(a_k+r, b_k+n-r)/B(a_k,b_k)` (the beta-binomial
        marginal likelihood without the binomial coefficient, which cancels).
        Non-integer ``r, n`` are allowed (power priors).
        """
        r = as_float("r", r)
        n = as_float("n", n)
        if np.any(r < 0) or np.any(r > n):
            raise ValueError(f"need 0 <= r <= n, got r={r!r}, n={n!r}")
        r1 = r[..., None]
        n1 = n[..., None]
        a1 = self.a + r1
        b1 = self.b + n1 - r1
        lm = special.betaln(a1, b1) - special.betaln(self.a, self.b)
        return self._update(lm, a1, b1)


@dataclass(frozen=True, eq=False, repr=False)
class NormalMixture(MixtureBase):
    r"""Mixture of normal densities for a mean :math:`\mu` with known sampling sd.

    .. math:: p(\mu) = \sum_k w_k \,\mathrm{N}(\mu \mid m_k, s_k^2)

    Parameters
    ----------
    weights, means, sds : array_like
        Arrays broadcasting to ``batch_shape + (K,)``.
    sigma : float, optional
        Known sampling standard deviation of one observation (RBesT's reference scale):
        needed for ``n``-based updates, unit-information robustification and the ESS.
    """

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    sigma: float | None = None
    _param_names: ClassVar[tuple[str, str]] = ("means", "sds")

    def __post_init__(self) -> None:
        self._normalise_fields()
        check_positive("sds", self.sds)
        if self.sigma is not None:
            s = float(self.sigma)
            if not np.isfinite(s) or s <= 0:
                raise ValueError(f"sigma must be a finite number > 0, got {self.sigma!r}")
            object.__setattr__(self, "sigma", s)

    @classmethod
    def from_components(cls, components, sigma: float | None = None) -> NormalMixture:
        """Build from rows ``(w, mean, sd)`` (RBesT's ``mixnorm`` layout)."""
        return cls(*component_rows(components, "(w, m, s)"), sigma=sigma)

    def _extra_fields(self):
        return {"sigma": self.sigma}

    def _comp_logpdf(self, x):
        return stats.norm.logpdf(x, self.means, self.sds)

    def _comp_cdf(self, x):
        return special.ndtr((x - self.means) / self.sds)

    def _comp_ppf(self, q):
        return self.means + self.sds * special.ndtri(q)

    def _comp_moments(self):
        return self.means, self.sds**2

    def _comp_sample(self, rng, m, s):
        return rng.normal(m, s)

    def _robust_component(self, mean, n):
        # RBesT's robustify.normMix: N(mean, sigma^2 / n), mean defaulting to the prior
        # mean (RBesT strongly recommends giving the null value explicitly).
        if self.sigma is None:
            raise ValueError("robustify needs the sampling sd: construct the mixture with sigma=...")
        m = self.mean() if mean is None else np.asarray(float(mean))
        return np.asarray(m), np.asarray(self.sigma / np.sqrt(n))

    def posterior(self, mean, n=None, se=None) -> NormalMixture:
        r"""Conjugate update with an observed sample mean (arrays over replicates).

        Give either ``n`` (then :math:`se = \sigma/\sqrt n`, needs ``sigma``) or ``se``.
        Component :math:`k` becomes normal with precision :math:`1/s_k^2 + 1/se^2` and
        mean :math:`(m_k/s_k^2 + \bar y/se^2)/(1/s_k^2+1/se^2)`; its weight is
        proportional to :math:`w_k\,\mathrm{N}(\bar y \mid m_k, s_k^2 + se^2)`.
        """
        ybar = as_float("mean", mean)
        if (n is None) == (se is None):
            raise ValueError("give exactly one of n or se")
        if se is None:
            if self.sigma is None:
                raise ValueError("posterior(mean, n=...) needs sigma; give se=... or set sigma")
            nn = as_float("n", n)
            check_positive("n", nn)
            se_arr = self.sigma / np.sqrt(nn)
        else:
            se_arr = as_float("se", se)
            check_positive("se", se_arr)
        y1 = ybar[..., None]
        v1 = (se_arr**2)[..., None]
        v0 = self.sds**2
        prec = 1.0 / v0 + 1.0 / v1
        m1 = (self.means / v0 + y1 / v1) / prec
        lm = stats.norm.logpdf(y1, self.means, np.sqrt(v0 + v1))
        m1, s1 = np.broadcast_arrays(m1, np.sqrt(1.0 / prec))
        return self._update(lm, m1, s1)


@dataclass(frozen=True, eq=False, repr=False)
class GammaMixture(MixtureBase):
    r"""Mixture of gamma densities (shape, rate) for a Poisson event rate :math:`\lambda`.

    .. math:: p(\lambda) = \sum_k w_k \,\mathrm{Gamma}(\lambda \mid \alpha_k, \beta_k),
       \qquad E\lambda = \alpha/\beta

    The likelihood is Poisson: ``events`` counted over ``exposure`` units.
    """

    weights: np.ndarray
    shapes: np.ndarray
    rates: np.ndarray
    _param_names: ClassVar[tuple[str, str]] = ("shapes", "rates")

    def __post_init__(self) -> None:
        self._normalise_fields()
        check_positive("shapes", self.shapes)
        check_positive("rates", self.rates)

    @classmethod
    def from_components(cls, components) -> GammaMixture:
        """Build from rows ``(w, shape, rate)`` (RBesT's ``mixgamma`` layout)."""
        return cls(*component_rows(components, "(w, shape, rate)"))

    def _comp_logpdf(self, x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return stats.gamma.logpdf(x, self.shapes, scale=1.0 / self.rates)

    def _comp_cdf(self, x):
        return special.gammainc(self.shapes, self.rates * np.maximum(x, 0.0))

    def _comp_ppf(self, q):
        return special.gammaincinv(self.shapes, q) / self.rates

    def _comp_moments(self):
        return self.shapes / self.rates, self.shapes / self.rates**2

    def _comp_sample(self, rng, a, b):
        return rng.gamma(a, 1.0 / b)

    def _robust_component(self, mean, n):
        # RBesT's robustify.gammaMix for a Poisson likelihood: mean/n parametrisation
        # with n the rate (exposure units), i.e. Gamma(mean * n, n); default n = 1 and
        # the prior mean.
        m = self.mean() if mean is None else np.asarray(float(mean))
        if np.any(m <= 0):
            raise ValueError(f"mean must be > 0, got {mean!r}")
        return np.asarray(m * n), np.asarray(n)

    def posterior(self, events, exposure) -> GammaMixture:
        r"""Conjugate update with ``events`` over ``exposure`` (arrays over replicates).

        Component :math:`k` becomes :math:`\mathrm{Gamma}(\alpha_k+y, \beta_k+E)` with
        weight proportional to the negative-binomial marginal likelihood
        :math:`w_k\,\frac{\Gamma(\alpha_k+y)}{\Gamma(\alpha_k)}
        \frac{\beta_k^{\alpha_k}}{(\beta_k+E)^{\alpha_k+y}}` (the factor
        :math:`E^y/y!` cancels).
        """
        y = as_float("events", events)
        e = as_float("exposure", exposure)
        if np.any(y < 0):
            raise ValueError(f"events must be >= 0, got {y!r}")
        if np.any(e < 0):
            raise ValueError(f"exposure must be >= 0, got {e!r}")
        y1 = y[..., None]
        e1 = e[..., None]
        a1 = self.shapes + y1
        b1 = self.rates + e1
        lm = (
            special.gammaln(a1)
            - special.gammaln(self.shapes)
            + self.shapes * np.log(self.rates)
            - a1 * np.log(b1)
        )
        return self._update(lm, a1, b1)


Mixture = BetaMixture | NormalMixture | GammaMixture
