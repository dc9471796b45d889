r"""MCMC (PyMC + nutpie) two-arm Bayesian analyses, for priors without a conjugate update.

The counterpart of `trials.bayesian.analyse`: each arm's parameter (response rate, mean
with known sd, or event rate) has a mixture prior and is updated with the arm summaries
of all R replicates of a chunk; reported is
:math:`\Pr(\theta_t - \theta_c > 0 \mid \text{data})` (or ``< 0``) and the posterior of
the difference.  Besides the conjugate mixtures of `trials.borrowing` (Beta / Normal /
Gamma), whose MCMC results must agree with the exact ones, it takes normal mixtures on
the log-odds (`LogitNormalMixture`) or on the log event rate (`LogNormalMixture`).

One PyMC model holds all R replicates: arm parameters of shape (R,), independent a
posteriori, sampled together (2R dimensions).  Each is sampled on an unconstrained scale
(logit p, log lambda, or the mean itself), standardised by a normal approximation of its
posterior; the mixture prior enters through ``pm.Potential`` (logsumexp over components,
plus the log-Jacobian of the transform) and the likelihood through the arm summaries.

The model is compiled once per (family, prior kinds and sizes, R) and process (nutpie,
numba backend); every call swaps the values of its ``pm.Data`` containers (data,
standardisation and prior parameters) with ``CompiledPyMCModel.with_data``, as
`insilico.validation.sbc` does.  The sampler is seeded from ``seed``: same seed, same numbers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy import special

from insilico.common.compilation import reproducible_compilation

from . import borrowing as bw

__all__ = ["LogitNormalMixture", "LogNormalMixture", "analyse_mcmc", "posterior_draws", "summarise_draws"]

FAMILIES = ("binary", "normal", "count")


# ------------------------------------------------------------------- non-conjugate priors
def _validated_components(weights, means, sds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, value in (("weights", weights), ("means", means), ("sds", sds)):
        arr = np.atleast_1d(np.asarray(value, dtype=float))
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-d sequence (one value per component), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got {arr.tolist()}")
        arrays.append(arr)
    w, m, s = arrays
    if not w.size == m.size == s.size:
        raise ValueError(f"weights, means and sds must have one value per component, got lengths "
                         f"{w.size}, {m.size}, {s.size}")
    if np.any(w < 0):
        raise ValueError(f"weights must be >= 0, got {w.tolist()}")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got sum {w.sum():.6g}")
    if np.any(s <= 0):
        raise ValueError(f"sds must be > 0, got {s.tolist()}")
    w = w / w.sum()
    for arr in (w, m, s):
        arr.flags.writeable = False  # the dataclass is frozen: so are its arrays
    return w, m, s


@dataclass(frozen=True, eq=False)
class _NormalOnScale:
    """A normal mixture on an unconstrained scale of the parameter (see subclasses)."""

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray

    def __post_init__(self) -> None:
        w, m, s = _validated_components(self.weights, self.means, self.sds)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "sds", s)

    @classmethod
    def from_components(cls, components):
        """Build from rows ``(w, mean, sd)``, as `trials.borrowing`'s mixtures."""
        arr = np.asarray(components, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"components must have shape (K, 3) rows (w, mean, sd), got {arr.shape}")
        return cls(arr[:, 0], arr[:, 1], arr[:, 2])

    @property
    def n_components(self) -> int:
        return self.weights.size


class LogitNormalMixture(_NormalOnScale):
    r"""Prior on the log-odds of a response rate: :math:`\operatorname{logit} p \sim \sum_k w_k N(m_k, s_k^2)`.

    Not conjugate with binomial data, so only `analyse_mcmc` takes it.
    """


class LogNormalMixture(_NormalOnScale):
    r"""Prior on the log event rate: :math:`\log\lambda \sim \sum_k w_k N(m_k, s_k^2)`.

    Not conjugate with Poisson data, so only `analyse_mcmc` takes it.
    """


# Prior kind -> (family, how its density is written on the unconstrained scale).
_PRIOR_KINDS = {
    bw.BetaMixture: ("binary", "beta"),
    LogitNormalMixture: ("binary", "normal"),
    bw.NormalMixture: ("normal", "normal"),
    bw.GammaMixture: ("count", "gamma"),
    LogNormalMixture: ("count", "normal"),
}


def _prior_on_scale(prior, family: str, arm: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The prior's density form and its components (weights, p1, p2): (a, b) for a beta,
    (shape, rate) for a gamma, (mean, sd) for a normal on the unconstrained scale.
    Zero-weight components are dropped (they would put -inf in the logsumexp)."""
    kind = _PRIOR_KINDS.get(type(prior))
    if kind is None:
        raise ValueError(f"the {arm} prior must be one of {sorted(c.__name__ for c in _PRIOR_KINDS)}, "
                         f"got {type(prior).__name__}")
    if kind[0] != family:
        allowed = sorted(c.__name__ for c, (f, _) in _PRIOR_KINDS.items() if f == family)
        raise ValueError(f"the {arm} prior is a {type(prior).__name__}, which does not fit the {family} "
                         f"outcome family (use {' or '.join(allowed)})")
    if isinstance(prior, bw.MixtureBase) and prior.batch_shape != ():
        raise ValueError(f"the {arm} prior must be a single mixture (batch_shape ()), got batch_shape "
                         f"{prior.batch_shape}")
    live = prior.weights > 0
    form = kind[1]
    if form == "beta":
        p1, p2 = prior.a, prior.b
    elif form == "gamma":
        p1, p2 = prior.shapes, prior.rates
    else:
        p1, p2 = prior.means, prior.sds
    return form, prior.weights[live], p1[live], p2[live]


def _log_normaliser(form: str, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Log normalising constant of each component's density on the unconstrained scale."""
    if form == "beta":
        return special.betaln(p1, p2)
    if form == "gamma":
        return special.gammaln(p1) - p1 * np.log(p2)
    return np.log(p2) + 0.5 * np.log(2 * np.pi)


def _moments_on_scale(form: str, w: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> tuple[float, float]:
    """Mean and variance of the prior on the unconstrained scale (for the standardisation)."""
    if form == "beta":  # logit of a Beta(a, b)
        m, v = special.digamma(p1) - special.digamma(p2), special.polygamma(1, p1) + special.polygamma(1, p2)
    elif form == "gamma":  # log of a Gamma(shape a, rate b)
        m, v = special.digamma(p1) - np.log(p2), special.polygamma(1, p1)
    else:
        m, v = p1, p2**2
    mean = np.sum(w * m)
    return float(mean), float(np.sum(w * (v + m * m)) - mean**2)


# ------------------------------------------------------------------- data of one arm
def _arm_data(family: str, mean: np.ndarray, n: float, sigma: float | None,
              exposure: float) -> dict[str, np.ndarray]:
    """Likelihood data of one arm, (R,) arrays: the sufficient statistic ``y`` and its
    information ``info`` (trials, n / sigma^2, or exposure)."""
    R = mean.shape[0]
    if family == "binary":
        return {"y": np.rint(mean * n), "info": np.full(R, float(n))}
    if family == "count":
        return {"y": mean * n, "info": np.full(R, n * exposure)}
    return {"y": mean.astype(float), "info": np.full(R, n / sigma**2)}


def _likelihood_approximation(family: str, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Normal approximation of the likelihood on the unconstrained scale (+1/2 counts keep
    it finite at 0 and n)."""
    y, info = data["y"], data["info"]
    if family == "binary":
        return np.log((y + 0.5) / (info - y + 0.5)), 1.0 / (y + 0.5) + 1.0 / (info - y + 0.5)
    if family == "count":
        return np.log((y + 0.5) / info), 1.0 / (y + 0.5)
    return y, 1.0 / info


# ------------------------------------------------------------------- the compiled model
_COMPILED: dict[tuple, object] = {}
_COMPILE_LOCK = threading.Lock()


def _arm_logp(pm, pt, arm: str, family: str, form: str, R: int, K: int):
    """Free variable, prior and likelihood of one arm (``t`` or ``c``), added to the model
    in context; every input is a ``pm.Data`` container swapped per call."""
    loc = pm.Data(f"{arm}_loc", np.zeros(R))
    scale = pm.Data(f"{arm}_scale", np.ones(R))
    const = pm.Data(f"{arm}_const", np.zeros(K))
    p1 = pm.Data(f"{arm}_p1", np.ones(K))
    p2 = pm.Data(f"{arm}_p2", np.ones(K))
    y = pm.Data(f"{arm}_y", np.zeros(R))
    info = pm.Data(f"{arm}_info", np.ones(R))
    # The sampled u is standardised: z = loc + scale * u, with (loc, scale) a normal
    # approximation of z's posterior, so all 2R coordinates start near their posterior on
    # a unit scale and NUTS tunes quickly.  Its Jacobian, log(scale), is constant in u: left out.
    u = pm.Flat(f"{arm}_u", shape=R)
    z = loc + scale * u
    if family == "binary":
        # log p and log(1 - p) = log p - z: one softplus per value (libm calls dominate the cost)
        log_p = -pt.softplus(-z)
        log_q = log_p - z
    # component kernels, (R, 1) against the (K,) component parameters
    if form == "beta":
        # z = logit p: Beta(a, b) density times the Jacobian dp/dz = p (1 - p), i.e.
        # p^a (1 - p)^b / B(a, b)
        comp = p1 * log_p[:, None] + p2 * log_q[:, None]
    elif form == "gamma":
        # z = log lambda: Gamma(a, rate b) density times d lambda/dz = lambda, i.e.
        # b^a lambda^a exp(-b lambda) / Gamma(a)
        comp = p1 * z[:, None] - p2 * pt.exp(z)[:, None]
    else:  # a normal mixture on z itself (logit p, log lambda or the mean): no Jacobian
        comp = -0.5 * ((z[:, None] - p1) / p2) ** 2
    pm.Potential(f"{arm}_prior", pt.logsumexp(const + comp, axis=1).sum())
    if family == "binary":  # binomial kernel
        loglik = y * log_p + (info - y) * log_q
    elif family == "count":  # Poisson kernel in log lambda, exposure info
        loglik = y * z - info * pt.exp(z)
    else:  # normal sample mean, precision info = n / sigma^2
        loglik = -0.5 * info * (y - z) ** 2
    pm.Potential(f"{arm}_likelihood", loglik.sum())


def _compiled_model(family: str, forms: tuple[str, str], sizes: tuple[int, int], R: int):
    """The nutpie-compiled model for this structure, built and compiled on first use.

    K (``sizes``) and R are part of the key: ``with_data`` checks only the rank of a new
    value, and the compiled functions assume the lengths they were compiled with (another
    K gives wrong numbers without an error), so a different K or R needs its own model."""
    key = (family, forms, sizes, R)
    with _COMPILE_LOCK:
        if key not in _COMPILED:
            import nutpie
            import pymc as pm
            import pytensor.tensor as pt

            with pm.Model() as model:
                for arm, form, K in zip(("t", "c"), forms, sizes, strict=True):
                    _arm_logp(pm, pt, arm, family, form, R, K)
            with reproducible_compilation():
                _COMPILED[key] = nutpie.compile_pymc_model(model, var_names=["t_u", "c_u"])
        return _COMPILED[key]


# ------------------------------------------------------------------- public API
def _check_summaries(summaries: dict, family: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    try:
        mean_t = np.asarray(summaries["mean_t"], dtype=float)
        mean_c = np.asarray(summaries["mean_c"], dtype=float)
        n_t, n_c = summaries["n_t"], summaries["n_c"]
    except KeyError as err:
        raise ValueError(f"summaries lack {err.args[0]!r} (need n_t, n_c, mean_t, mean_c)") from None
    if mean_t.ndim != 1 or mean_t.shape != mean_c.shape or mean_t.size == 0:
        raise ValueError(f"mean_t and mean_c must be equal-length 1-d arrays (one value per replicate), got "
                         f"shapes {mean_t.shape} and {mean_c.shape}")
    for name, n in (("n_t", n_t), ("n_c", n_c)):
        if int(n) != n or n < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {n!r}")
    if not (np.all(np.isfinite(mean_t)) and np.all(np.isfinite(mean_c))):
        raise ValueError("mean_t and mean_c must be finite")
    if family == "binary" and (np.any((mean_t < 0) | (mean_t > 1)) or np.any((mean_c < 0) | (mean_c > 1))):
        raise ValueError("binary mean_t and mean_c are response proportions and must lie in [0, 1]")
    if family == "count" and (np.any(mean_t < 0) or np.any(mean_c < 0)):
        raise ValueError("count mean_t and mean_c are events per patient and must be >= 0")
    return mean_t, mean_c, int(n_t), int(n_c)


def _sampler_seed(seed) -> int:
    if seed is None:
        raise ValueError("seed must be given (an int): the same seed gives the same numbers")
    # nutpie takes one integer; SeedSequence spreads any int (or sequence) over 63 bits
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> np.uint64(1))


def posterior_draws(control_prior, treatment_prior, summaries: dict, family: str, sigma: float | None, *,
                    exposure: float = 1.0, seed, draws: int = 1000, tune: int = 1000,
                    chains: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws ``(theta_t, theta_c)``, each of shape (chains, draws, R), on the scale
    of the comparison: response rate (binary), mean (normal), log event rate (count)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if family == "normal" and (sigma is None or not np.isfinite(sigma) or sigma <= 0):
        raise ValueError(f"the normal family needs the known outcome sd sigma > 0, got {sigma!r}")
    if family == "count" and not (np.isfinite(exposure) and exposure > 0):
        raise ValueError(f"exposure must be > 0, got {exposure!r}")
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
    mean_t, mean_c, n_t, n_c = _check_summaries(summaries, family)
    R = mean_t.size
    values, forms, sizes, standard = {}, [], [], {}
    for arm, prior, mean, n in (("t", treatment_prior, mean_t, n_t), ("c", control_prior, mean_c, n_c)):
        label = "treatment" if arm == "t" else "control"
        form, w, p1, p2 = _prior_on_scale(prior, family, label)
        data = _arm_data(family, mean, n, sigma, exposure)
        # normal approximation of the posterior: precision-weighted prior and likelihood
        m0, v0 = _moments_on_scale(form, w, p1, p2)
        mh, vh = _likelihood_approximation(family, data)
        v = 1.0 / (1.0 / v0 + 1.0 / vh)
        loc, scale = v * (m0 / v0 + mh / vh), np.sqrt(v)
        standard[arm] = (loc, scale)
        values.update({f"{arm}_loc": loc, f"{arm}_scale": scale, f"{arm}_y": data["y"],
                       f"{arm}_info": data["info"], f"{arm}_p1": p1, f"{arm}_p2": p2,
                       # the model adds only the kernels: log weights and normalisers go in here
                       f"{arm}_const": np.log(w) - _log_normaliser(form, p1, p2)})
        forms.append(form)
        sizes.append(w.size)
    import nutpie

    compiled = _compiled_model(family, tuple(forms), tuple(sizes), R).with_data(**values)
    trace = nutpie.sample(compiled, draws=int(draws), tune=int(tune), chains=int(chains), cores=int(chains),
                          seed=_sampler_seed(seed), save_warmup=False, progress_bar=False)
    post = trace["posterior"]
    out = []
    for arm in ("t", "c"):
        loc, scale = standard[arm]
        z = loc + scale * np.asarray(post[f"{arm}_u"].values)
        out.append(special.expit(z) if family == "binary" else z)
    return out[0], out[1]


def _check_analysis(direction: str, level: float) -> None:
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")


def _ess_mean(x: np.ndarray) -> np.ndarray:
    """Effective sample size for the mean, per replicate, of (chains, draws, R) draws."""
    from arviz_stats.base import array_stats

    return np.asarray(array_stats.ess(x, chain_axis=0, draw_axis=1, method="mean"), dtype=float)


def summarise_draws(theta_t: np.ndarray, theta_c: np.ndarray, *, direction: str, level: float,
                    threshold: float) -> dict[str, np.ndarray]:
    """`bayesian.analyse`'s summaries (without ``prior_ess``) from (chains, draws, R) draws,
    plus ``posterior_prob_mcse``."""
    _check_analysis(direction, level)
    diff = theta_t - theta_c
    benefit = (diff > 0) if direction == "greater" else (diff < 0)
    prob = benefit.mean(axis=(0, 1))
    # MCSE of a share: sqrt(p (1 - p) / ESS of the indicator); 0 when every draw agrees
    ess = _ess_mean(benefit.astype(float))
    mcse = np.sqrt(prob * (1.0 - prob) / ess)
    flat = diff.reshape(-1, diff.shape[-1])
    lower, upper = np.quantile(flat, [0.5 - level / 2, 0.5 + level / 2], axis=0)
    return {"estimate": flat.mean(axis=0), "std_error": flat.std(axis=0), "lower": lower, "upper": upper,
            "p_value": 1.0 - prob, "posterior_prob": prob, "decision": (prob > threshold).astype(np.int8),
            "posterior_prob_mcse": mcse}


def analyse_mcmc(control_prior, treatment_prior, summaries: dict, family: str, sigma: float | None, *,
                 direction: str, level: float, threshold: float, exposure: float = 1.0, seed,
                 draws: int = 1000, tune: int = 1000, chains: int = 2) -> dict[str, np.ndarray]:
    """Posterior-probability analysis of one look's arm summaries by MCMC.

    Same keys and meanings as `trials.bayesian.analyse` (``prior_ess`` left out), from
    the draws: ``estimate`` the posterior mean of the difference (risk difference, mean
    difference, or log rate ratio), ``std_error`` its posterior sd, ``lower``/``upper``
    the equal-tailed credible interval at ``level``, ``posterior_prob`` the share of
    draws with a benefit, ``p_value = 1 - posterior_prob``, ``decision`` =
    ``posterior_prob > threshold``; plus ``posterior_prob_mcse``, its Monte Carlo
    standard error from the effective sample size.  Priors: `trials.borrowing` Beta /
    Normal / Gamma mixtures or `LogitNormalMixture` / `LogNormalMixture`, matching the
    family.  The same ``seed`` gives the same numbers.
    """
    _check_analysis(direction, level)  # before sampling, not after
    theta_t, theta_c = posterior_draws(control_prior, treatment_prior, summaries, family, sigma,
                                       exposure=exposure, seed=seed, draws=draws, tune=tune, chains=chains)
    return summarise_draws(theta_t, theta_c, direction=direction, level=level, threshold=threshold)
