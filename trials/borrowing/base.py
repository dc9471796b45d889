"""The mixture prior base class: weights and per-component parameters with a batch shape, moments,
densities, quantiles, sampling, robustification and the conjugate update's reweighting."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
from scipy import special


def as_float(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric, got {type(value).__name__}") from err
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr!r}")
    return arr


def check_positive(name: str, arr: np.ndarray) -> None:
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0, got min {arr.min()!r}")


def component_rows(components, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights and the two parameter columns of a (K, 3) component table."""
    arr = as_float("components", components)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"components must have shape (K, 3) rows {layout}, got {arr.shape}")
    return arr[:, 0], arr[:, 1], arr[:, 2]


class MixtureBase(abc.ABC):
    """Behaviour shared by the three conjugate mixture families.

    Subclasses are frozen dataclasses whose first field is ``weights`` followed by the
    two component parameter arrays named in ``_param_names``.
    """

    _param_names: ClassVar[tuple[str, str]]
    weights: np.ndarray

    # -- construction -----------------------------------------------------------------
    def _normalise_fields(self) -> None:
        w = as_float("weights", self.weights)
        p1 = as_float(self._param_names[0], getattr(self, self._param_names[0]))
        p2 = as_float(self._param_names[1], getattr(self, self._param_names[1]))
        if w.ndim == 0:
            w = w[None]
        try:
            w, p1, p2 = np.broadcast_arrays(w, p1, p2)
        except ValueError as err:
            raise ValueError(
                f"weights {w.shape}, {self._param_names[0]} {p1.shape} and "
                f"{self._param_names[1]} {p2.shape} must broadcast to batch_shape + (K,)"
            ) from err
        if np.any(w < 0):
            raise ValueError(f"weights must be >= 0, got {w!r}")
        total = w.sum(axis=-1, keepdims=True)
        if np.any(np.abs(total - 1.0) > 1e-6):
            raise ValueError(f"weights must sum to 1 over the last axis, got sums {total.squeeze(-1)!r}")
        # copies: the instance is frozen, its arrays must not alias a caller's buffer
        object.__setattr__(self, "weights", np.array(w / total))
        object.__setattr__(self, self._param_names[0], np.array(p1))
        object.__setattr__(self, self._param_names[1], np.array(p2))
        for arr in (self.weights, *self._params()):
            arr.flags.writeable = False

    def _params(self) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, self._param_names[0]), getattr(self, self._param_names[1])

    def _replace(self, weights, p1, p2, **extra):
        kw = {"weights": weights, self._param_names[0]: p1, self._param_names[1]: p2}
        kw.update(self._extra_fields())
        kw.update(extra)
        return type(self)(**kw)

    def _extra_fields(self) -> dict[str, Any]:
        return {}

    # -- shape ------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return self.weights.shape[-1]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the replicate batch (``()`` for a single mixture)."""
        return self.weights.shape[:-1]

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("a single mixture has no length; batch_shape is ()")
        return self.batch_shape[0]

    def __getitem__(self, index):
        """Select replicates: ``post[i]`` is the mixture of replicate ``i``."""
        if not self.batch_shape:
            raise TypeError("a single mixture cannot be indexed; batch_shape is ()")
        p1, p2 = self._params()
        return self._replace(self.weights[index], p1[index], p2[index])

    def broadcast_to(self, batch_shape: tuple[int, ...]):
        """This mixture repeated over ``batch_shape`` (e.g. a prior for every replicate)."""
        shape = tuple(batch_shape) + (self.n_components,)
        p1, p2 = self._params()
        return self._replace(*(np.broadcast_to(x, shape) for x in (self.weights, p1, p2)))

    # -- family hooks -----------------------------------------------------------------
    @abc.abstractmethod
    def _comp_logpdf(self, x: np.ndarray) -> np.ndarray:
        """Family hook (each mixture family defines it)."""

    @abc.abstractmethod
    def _comp_cdf(self, x: np.ndarray) -> np.ndarray:
        """Family hook (each mixture family defines it)."""

    @abc.abstractmethod
    def _comp_ppf(self, q: np.ndarray) -> np.ndarray:
        """Family hook (each mixture family defines it)."""

    @abc.abstractmethod
    def _comp_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Family hook (each mixture family defines it)."""

    @abc.abstractmethod
    def _comp_sample(self, rng: np.random.Generator, p1, p2) -> np.ndarray:
        """Family hook (each mixture family defines it)."""

    # -- distribution functions -----------------------------------------------------
    def mean(self) -> np.ndarray:
        r"""Mixture mean :math:`\sum_k w_k \mu_k`, shape ``batch_shape``."""
        m, _ = self._comp_moments()
        return np.sum(self.weights * m, axis=-1)

    def var(self) -> np.ndarray:
        r"""Mixture variance :math:`\sum_k w_k(\sigma_k^2+\mu_k^2) - \mu^2`."""
        m, v = self._comp_moments()
        mu = np.sum(self.weights * m, axis=-1)
        return np.sum(self.weights * (v + m * m), axis=-1) - mu * mu

    def sd(self) -> np.ndarray:
        """Mixture standard deviation, shape ``batch_shape``."""
        return np.sqrt(self.var())

    def logpdf(self, x) -> np.ndarray:
        r"""Log density :math:`\log\sum_k w_k f_k(x)`; ``x`` broadcasts against ``batch_shape``."""
        x = np.asarray(x, dtype=float)[..., None]
        with np.errstate(divide="ignore"):
            lw = np.log(self.weights)
        return special.logsumexp(lw + self._comp_logpdf(x), axis=-1)

    def pdf(self, x) -> np.ndarray:
        """Density; ``x`` broadcasts against ``batch_shape``."""
        return np.exp(self.logpdf(x))

    def cdf(self, x) -> np.ndarray:
        r"""Distribution function :math:`\sum_k w_k F_k(x)`."""
        x = np.asarray(x, dtype=float)[..., None]
        return np.sum(self.weights * self._comp_cdf(x), axis=-1)

    def quantile(self, q) -> np.ndarray:
        r"""Quantile function by bisection on the mixture cdf.

        The mixture quantile lies between the smallest and largest component quantiles
        (:math:`F(\min_k Q_k(q)) \le q \le F(\max_k Q_k(q))`), which gives a bracket;
        100 halvings shrink it below double precision.
        """
        q = as_float("q", q)
        if np.any((q < 0) | (q > 1)):
            raise ValueError(f"q must lie in [0, 1], got {q!r}")
        qk = self._comp_ppf(q[..., None])
        # components with zero weight must not widen the bracket to infinity
        live = self.weights > 0
        lo = np.min(np.where(live, qk, np.inf), axis=-1)
        hi = np.max(np.where(live, qk, -np.inf), axis=-1)
        lo, hi, qb = np.broadcast_arrays(lo, hi, q)
        lo, hi = lo.copy(), hi.copy()
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < qb
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws per batch element, shape ``batch_shape + (n,)``.

        A component is drawn per value (inverse cdf of the weights), then the value from
        that component.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        cw = np.cumsum(self.weights, axis=-1)[..., None, :]
        u = rng.random(self.batch_shape + (n,))
        comp = np.minimum(np.sum(u[..., None] >= cw, axis=-1), self.n_components - 1)
        p1, p2 = self._params()
        p1s = np.take_along_axis(
            np.broadcast_to(p1[..., None, :], comp.shape + (self.n_components,)), comp[..., None], -1
        )[..., 0]
        p2s = np.take_along_axis(
            np.broadcast_to(p2[..., None, :], comp.shape + (self.n_components,)), comp[..., None], -1
        )[..., 0]
        return self._comp_sample(rng, p1s, p2s)

    # -- robustification ---------------------------------------------------------------
    @abc.abstractmethod
    def _robust_component(self, mean, n) -> tuple[np.ndarray, np.ndarray]:
        """Family hook (each mixture family defines it)."""

    def robustify(self, weight: float, mean: float | None = None, n: float = 1.0):
        r"""Add a vague component with weight ``weight`` (Schmidli et al. 2014).

        The informative components are rescaled to total weight ``1 - weight``; the new
        last component is a unit-information prior (worth ``n`` observations, default
        one) centred at ``mean``, with RBesT's conventions:

        * beta: :math:`\mathrm{Beta}(m(n+1), (1-m)(n+1))`, ``mean`` default 1/2, i.e. the
          uniform Beta(1, 1) (RBesT counts ``n + 1`` so that the default is the uniform
          rather than Beta(1/2, 1/2));
        * normal: :math:`\mathrm{N}(m, \sigma^2/n)` with the mixture's ``sigma``;
        * gamma (Poisson): :math:`\mathrm{Gamma}(m n, n)`.

        For normal and gamma the default ``mean`` is the prior mean; RBesT strongly
        recommends passing the null value instead.
        """
        weight = float(weight)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1], got {weight!r}")
        if not np.isfinite(n) or n <= 0:
            raise ValueError(f"n must be > 0, got {n!r}")
        r1, r2 = self._robust_component(mean, float(n))
        shape = self.batch_shape + (1,)
        p1, p2 = self._params()
        # a default mean has the batch shape: give it the component axis
        r1, r2 = (np.broadcast_to(np.expand_dims(r, -1), shape) for r in (r1, r2))
        return self._replace(
            np.concatenate([self.weights * (1.0 - weight), np.full(shape, weight)], axis=-1),
            np.concatenate([p1, r1], axis=-1),
            np.concatenate([p2, r2], axis=-1),
        )

    def _update(self, log_marginal: np.ndarray, p1: np.ndarray, p2: np.ndarray):
        with np.errstate(divide="ignore"):
            lw = np.log(self.weights) + log_marginal
        lw = lw - special.logsumexp(lw, axis=-1, keepdims=True)
        return self._replace(np.exp(lw), p1, p2)

    def __repr__(self) -> str:
        p1, p2 = self._params()
        extra = "".join(f", {k}={v!r}" for k, v in self._extra_fields().items())
        if not self.batch_shape:
            comps = ", ".join(
                f"({w:.4g}, {x:.4g}, {y:.4g})" for w, x, y in zip(self.weights, p1, p2, strict=True)
            )
            return f"{type(self).__name__}[{comps}]{extra}"
        return f"{type(self).__name__}(batch_shape={self.batch_shape}, K={self.n_components}{extra})"
