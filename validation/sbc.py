r"""Simulation-based calibration (SBC): code verification of a Bayesian model and its sampler.

For replicate r = 1..R (Talts et al. 2018, "Validating Bayesian inference algorithms
with simulation-based calibration", arXiv:1804.06788; Modrák et al. 2023, "Simulation-
based calibration checking for Bayesian computation", Bayesian Analysis):

1. draw :math:`\tilde\theta_r \sim p(\theta)` and :math:`\tilde y_r \sim p(y \mid \tilde\theta_r)`;
2. refit the same model on :math:`\tilde y_r` and keep L (thinned) posterior draws;
3. for every scalar parameter, the rank :math:`\#\{\ell : \theta_{r\ell} < \tilde\theta_r\}
   \in \{0, \dots, L\}`.

Averaged over the prior, the posterior is the prior, so with a correct model and sampler
each rank is uniform on 0..L. The ranks are pooled into B bins and tested with Pearson's
:math:`\chi^2 = \sum_b (O_b - E_b)^2 / E_b` on B - 1 degrees of freedom, per parameter;
the verdict is Bonferroni-adjusted over parameters: :math:`\min_k p_k \cdot K \ge \alpha`.

The model is compiled once (nutpie, numba backend) and every replicate swaps the values
of its ``pm.Data`` containers (``CompiledPyMCModel.with_data``), so a refit of a small
model costs a fraction of a second. This module works on any PyMC model whose observed
values live in ``pm.Data`` containers; `virtual_patients.sbc` builds one from a generator
spec.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from insilico.common.compilation import reproducible_compilation

Simulator = Callable[[np.random.Generator], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


# ---------------------------------------------------------------------- numpy kernels
def rank_statistics(theta: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each true value among posterior draws: #{draws < theta}, ties split at random.

    theta (P,), draws (L, P) -> ranks (P,) in 0..L. Ties (possible for discrete or
    rounded values) get a uniformly random position among the tied draws (Modrák et al.
    2023, sec. 2), so the ranks stay uniform.
    """
    theta = np.asarray(theta, dtype=float)
    draws = np.asarray(draws, dtype=float)
    below = (draws < theta[None, :]).sum(axis=0)
    ties = (draws == theta[None, :]).sum(axis=0)
    return below + rng.integers(0, ties + 1)


def bin_counts(ranks: np.ndarray, L: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Observed counts per bin (bins, P) and each bin's probability under uniform ranks (bins,).

    Rank r in 0..L falls in bin floor(r * bins / (L + 1)); when bins does not divide
    L + 1 the bins hold unequal numbers of ranks and their probabilities differ.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    which = ranks * bins // (L + 1)
    observed = np.stack([np.bincount(which[:, k], minlength=bins) for k in range(which.shape[1])], axis=1)
    prob = np.bincount(np.arange(L + 1) * bins // (L + 1), minlength=bins) / (L + 1)
    return observed, prob


def rank_uniformity(ranks: np.ndarray, L: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square test of uniform ranks per parameter: (statistic (P,), p-value (P,)).

    chi2 = sum_b (O_b - E_b)^2 / E_b with E_b = R * P(bin b), referred to chi2(bins - 1).
    """
    observed, prob = bin_counts(ranks, L, bins)
    expected = observed.sum(axis=0)[None, :] * prob[:, None]
    chi2 = ((observed - expected) ** 2 / expected).sum(axis=0)
    return chi2, stats.chi2.sf(chi2, bins - 1)


def default_bins(L: int, replicates: int, min_expected: int = 10, max_bins: int = 20) -> int:
    """The most bins, at most `max_bins`, that divide L + 1 evenly and expect at least
    `min_expected` ranks each; at least 2. Ten per bin (not the bare chi-square minimum
    of five) keeps the approximation sound and the test aimed at the smooth shapes that
    miscalibration produces (a slope, a U or a hump; Talts et al. 2018, sec. 4)."""
    cap = max(2, min(max_bins, replicates // min_expected))
    divisors = [b for b in range(2, cap + 1) if (L + 1) % b == 0]
    return divisors[-1] if divisors else 2


def thin_indices(total: int, L: int) -> np.ndarray:
    """L indices spread evenly over `total` pooled draws (chain after chain)."""
    if L > total:
        raise ValueError(f"L={L} thinned draws need at least L posterior draws, got chains*draws={total}")
    return np.round(np.linspace(0, total - 1, L)).astype(np.int64)


# ---------------------------------------------------------------------- result
@dataclass(frozen=True)
class SBCResult:
    """Ranks of R replicates and their uniformity test.

    ``ranks``: DataFrame replicate x parameter, values in 0..L. ``divergences``: number
    of divergent post-warmup transitions of each refit; ``seconds``: wall time of each
    replicate (simulation + refit + ranks).
    """

    ranks: pd.DataFrame
    L: int
    bins: int
    chi2: pd.Series
    pvalues: pd.Series
    divergences: np.ndarray
    seconds: np.ndarray
    settings: dict = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        return self.ranks.shape[1]

    @property
    def min_p(self) -> float:
        return float(self.pvalues.min())

    @property
    def bonferroni_p(self) -> float:
        """min p x number of parameters, capped at 1: the family-wise p-value."""
        return float(min(1.0, self.min_p * self.n_params))

    @property
    def divergent_share(self) -> float:
        """Share of refits with at least one divergent transition."""
        return float(np.mean(self.divergences > 0))

    def passed(self, alpha: float = 0.01) -> bool:
        """Ranks uniform for every parameter at family-wise level alpha (Bonferroni)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        return self.bonferroni_p >= alpha

    def summary(self, alpha: float = 0.01) -> dict:
        return {
            "replicates": int(self.ranks.shape[0]),
            "n_params": self.n_params,
            "L": self.L,
            "bins": self.bins,
            "min_p": self.min_p,
            "worst_parameter": str(self.pvalues.idxmin()),
            "bonferroni_p": self.bonferroni_p,
            "alpha": alpha,
            "passed": self.passed(alpha),
            "divergent_share": self.divergent_share,
            "seconds_per_replicate": float(np.mean(self.seconds)),
            "pvalues": {k: float(v) for k, v in self.pvalues.items()},
            **self.settings,
        }


# ---------------------------------------------------------------------- the loop
def _flat_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


class SBC:
    """SBC of one PyMC model: compiled once on construction, run with `run`.

    ``model``: a PyMC model whose observed values are pm.Data containers (the refit model).
    ``simulate``: rng -> (theta, data), e.g. the model's own forward simulator
    (`insilico.virtual_patients.model.prior_predictive`). ``theta`` must
    hold every free random variable of ``model`` (its scalar elements are the parameters
    ranked); ``data`` a value for every pm.Data container except those named in
    ``fixed_data`` (e.g. a design matrix), which keep their current values.
    """

    def __init__(self, model, simulate: Simulator, *, fixed_data: Iterable[str] = ()):
        import nutpie

        self.model = model
        self.fixed_data = set(fixed_data)
        unknown = self.fixed_data - {v.name for v in model.data_vars}
        if unknown:
            raise ValueError(f"fixed_data names {sorted(unknown)} are not pm.Data containers of the model")
        self.simulate = simulate
        self.params = [v.name for v in model.free_RVs]
        with reproducible_compilation():
            self.compiled = nutpie.compile_pymc_model(model, var_names=self.params)

    def _data_for(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = {v.name for v in self.model.data_vars}
        missing = sorted(names - self.fixed_data - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(f"the simulator must return every pm.Data container of the model: missing {missing}, "
                             f"unknown {unknown} (list containers held constant in fixed_data)")
        return data

    def run(
        self,
        replicates: int = 100,
        *,
        seed: int = 0,
        draws: int = 250,
        tune: int = 250,
        chains: int = 2,
        L: int = 99,
        bins: int | None = None,
        target_accept: float = 0.8,
        simulate: Simulator | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SBCResult:
        """R replicates of simulate -> refit -> rank; deterministic for a given seed.

        Replicate r draws all its randomness from child r of ``SeedSequence(seed)``
        (simulation, sampler seed and rank tie-breaks). ``simulate`` replaces the
        simulator for this run (e.g. to show that SBC detects a mismatch).
        """
        import nutpie

        for name, v, lo in (("replicates", replicates, 1), ("draws", draws, 1), ("tune", tune, 1),
                            ("chains", chains, 1), ("L", L, 1)):
            if int(v) != v or v < lo:
                raise ValueError(f"{name} must be a whole number >= {lo}, got {v}")
        idx = thin_indices(chains * draws, L)
        bins = default_bins(L, replicates) if bins is None else bins
        if int(bins) != bins or not 2 <= bins <= L + 1:
            raise ValueError(f"bins must be a whole number in [2, L + 1 = {L + 1}], got {bins}")
        sim = simulate if simulate is not None else self.simulate
        rows, divergences, seconds, columns = [], [], [], None
        for r, child in enumerate(np.random.SeedSequence(seed).spawn(replicates)):
            start = time.perf_counter()
            sim_ss, fit_ss = child.spawn(2)
            theta, data = sim(np.random.default_rng(sim_ss))
            compiled = self.compiled.with_data(**self._data_for(data))
            fit_rng = np.random.default_rng(fit_ss)
            trace = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=chains,
                                  seed=int(fit_rng.integers(0, 2**63)), save_warmup=False,
                                  progress_bar=False, target_accept=target_accept)
            post = trace["posterior"]
            true, pooled, names = [], [], []
            for p in self.params:
                values = post[p].values
                shape = values.shape[2:]
                if p not in theta or np.shape(theta[p]) != shape:
                    raise ValueError(f"the simulator's theta lacks '{p}' with shape {shape}")
                true.append(np.asarray(theta[p], dtype=float).reshape(-1))
                pooled.append(values.reshape(chains * draws, -1))
                names += _flat_names(p, shape)
            if columns is None:
                columns = names
            rows.append(rank_statistics(np.concatenate(true), np.concatenate(pooled, axis=1)[idx], fit_rng))
            divergences.append(int(trace["sample_stats"]["diverging"].values.sum()))
            seconds.append(time.perf_counter() - start)
            if progress is not None:
                progress(r + 1, replicates)
        ranks = pd.DataFrame(np.array(rows, dtype=np.int64), columns=columns)
        ranks.index.name = "replicate"
        chi2, p = rank_uniformity(ranks.to_numpy(), L, bins)
        settings = {"seed": seed, "draws": draws, "tune": tune, "chains": chains, "target_accept": target_accept}
        return SBCResult(ranks, L, int(bins), pd.Series(chi2, index=columns, name="chi2"),
                         pd.Series(p, index=columns, name="p_value"), np.array(divergences),
                         np.array(seconds), settings)


def run_sbc(model, simulate: Simulator, *, fixed_data: Iterable[str] = (), **kwargs) -> SBCResult:
    """`SBC(model, simulate, fixed_data=...).run(**kwargs)` in one call."""
    return SBC(model, simulate, fixed_data=fixed_data).run(**kwargs)


__all__ = ["SBC", "SBCResult", "bin_counts", "default_bins", "rank_statistics",
           "rank_uniformity", "run_sbc", "thin_indices"]
