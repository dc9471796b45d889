r"""The Bayesian generator as a PyMC model.

Covariates (sequential factorisation of the joint distribution, spec order):

.. math::

    p(x_1, \dots, x_J) = \prod_j p(x_j \mid x_{<j})

each factor a GLM on the design columns :math:`D_{<j}` of the covariates before it:

* continuous: :math:`z_j \sim N(a_j + D_{<j} b_j, \sigma_j)` on the transformed,
  standardised scale, :math:`\sigma_j \sim \mathrm{HalfNormal}(1)`;
* binary: :math:`\mathrm{logit}\,P(x_j = 1) = a_j + D_{<j} b_j`;
* categorical: multinomial logit, reference level logit 0,
  :math:`\eta_{jk} = a_{jk} + D_{<j} b_{jk}` for the other K-1 levels;
* count: negative binomial, :math:`\log E x_j = a_j + D_{<j} b_j`, dispersion
  :math:`\phi_j \sim \mathrm{HalfNormal}(10)` (variance :math:`\mu + \mu^2/\phi`).

Pairwise and higher dependence between covariates of every type is kept up to the
linear-on-link-scale terms, and every parameter has a posterior, so a cohort drawn with
one posterior draw carries parameter uncertainty.

Outcome, with a hierarchical (non-centred) study intercept:

.. math::

    \alpha_s = \mu + \tau \epsilon_s,\quad \epsilon_s \sim N(0, 1),\quad
    \tau \sim \mathrm{HalfNormal}(\text{priors.between\_study\_sd}),\quad
    \eta_i = \alpha_{s(i)} + D_i \beta

* normal: :math:`(y - \bar y)/s_y \sim N(\eta, \sigma)`;
* bernoulli: :math:`\mathrm{logit}\,p = \eta`;  poisson: :math:`\log \lambda = \eta`;
* weibull (proportional hazards, right-censored): hazard
  :math:`h(t) = k\, t^{k-1} e^{\eta}` with t in units of the median observed time,
  :math:`\log k \sim N(0, 1)`; PyMC's Weibull(alpha=k, beta=e^{-\eta/k}) with censoring;
* piecewise_exponential (proportional hazards, right-censored): hazard
  :math:`h(t) = e^{\eta + \lambda_{j(t)}}` on intervals cut at quantiles of the event
  times, :math:`\lambda_1 = 0`, :math:`\lambda_{j+1} = \lambda_j + s\,\epsilon_j`
  (random-walk smoothing, s = priors.baseline_step_sd); the likelihood is the Poisson
  form :math:`\sum_i d_i \log h(t_i) - H(t_i)`.
* survival with ``frailty: true``: a gamma frailty of mean 1 and variance
  :math:`\theta \sim \mathrm{HalfNormal}(1)` multiplies each hazard and is integrated
  out: :math:`S(t) = (1 + \theta H(t))^{-1/\theta}`. Treatment effects act on the
  conditional (frailty-given) hazard.

A new study draws :math:`\alpha_{new} = \mu + \tau \epsilon` — the meta-analytic-
predictive (MAP) idea behind synthetic control arms. With fewer than two studies
:math:`\tau` is not identified and is left out (all patients share :math:`\mu`).

Coefficients have Normal(0, priors.coefficient_sd) priors and intercepts
Normal(0, priors.intercept_sd) — weakly informative on the standardised scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .encoding import Encoder, design_offsets
from .spec import GeneratorSpec


@dataclass(frozen=True)
class OutcomeData:
    """The outcome on the model's internal scale."""

    family: str
    y: np.ndarray  # standardised y (normal), 0/1 (bernoulli), counts (poisson), time/unit (weibull)
    event: np.ndarray | None = None  # survival only
    cuts: np.ndarray | None = None  # piecewise_exponential: interior cut points (time units)


def covariate_param_names(enc: Encoder) -> list[str]:
    base = f"cov_{enc.name}"
    names = [f"{base}_intercept"]
    names.append(f"{base}_coef")
    if enc.type == "continuous":
        names.append(f"{base}_sigma")
    if enc.type == "count":
        names.append(f"{base}_phi")
    return names


def build_model(
    D: np.ndarray,
    observed: dict[str, np.ndarray],
    encoders: list[Encoder],
    outcome: OutcomeData,
    study_codes: np.ndarray,
    n_studies: int,
    spec: GeneratorSpec,
    *,
    data_containers: bool = False,
):
    """Build the joint PyMC model of covariates and control outcome.

    ``observed[name]`` holds each covariate in model form: standardised z (continuous),
    0/1 (binary), level codes 0..K-1 (categorical), raw counts (count).

    ``data_containers=True`` puts every observed value (covariates, outcome and the
    survival terms of `outcome_data_values`) in named ``pm.Data`` containers
    ``<rv>_data`` / ``<term>_data`` so that one compiled model can be refitted on new
    data of the same size (simulation-based calibration); the design D stays constant.
    """
    import pymc as pm
    import pytensor.tensor as pt

    def data(name: str, value: np.ndarray):
        return pm.Data(f"{name}_data", value) if data_containers else value

    pr = spec.priors
    offsets = design_offsets(encoders)
    coords = {"predictor": [f"p{i}" for i in range(D.shape[1])]}
    with pm.Model(coords=coords) as model:
        for j, enc in enumerate(encoders):
            base = f"cov_{enc.name}"
            p = offsets[j]
            X = D[:, :p]
            if enc.type == "categorical":
                k = enc.width
                a = pm.Normal(f"{base}_intercept", 0.0, pr.intercept_sd, shape=(k,))
                b = pm.Normal(f"{base}_coef", 0.0, pr.coefficient_sd, shape=(p, k))
                eta = a[None, :] + pt.dot(X, b) if p else pt.broadcast_to(a[None, :], (D.shape[0], k))
                logits = pt.concatenate([pt.zeros((D.shape[0], 1)), eta], axis=1)
                pm.Categorical(f"{base}_obs", logit_p=logits, observed=data(f"{base}_obs", observed[enc.name]))
                continue
            a = pm.Normal(f"{base}_intercept", 0.0, pr.intercept_sd)
            b = pm.Normal(f"{base}_coef", 0.0, pr.coefficient_sd, shape=(p,))
            eta = a + pt.dot(X, b) if p else a
            obs = data(f"{base}_obs", observed[enc.name])
            if enc.type == "continuous":
                sigma = pm.HalfNormal(f"{base}_sigma", 1.0)
                pm.Normal(f"{base}_obs", eta, sigma, observed=obs)
            elif enc.type == "binary":
                pm.Bernoulli(f"{base}_obs", logit_p=eta, observed=obs)
            else:  # count
                phi = pm.HalfNormal(f"{base}_phi", 10.0)
                pm.NegativeBinomial(f"{base}_obs", mu=pt.exp(eta), alpha=phi, observed=obs)

        mu = pm.Normal("mu", 0.0, pr.intercept_sd)
        beta = pm.Normal("beta", 0.0, pr.coefficient_sd, dims="predictor")
        if n_studies >= 2:
            tau = pm.HalfNormal("tau", pr.between_study_sd)
            z = pm.Normal("study_z", 0.0, 1.0, shape=(n_studies,))
            alpha = mu + tau * z[study_codes]
        else:
            alpha = mu
        eta = alpha + pt.dot(D, beta)
        if outcome.family == "normal":
            sigma = pm.HalfNormal("sigma", 1.0)
            pm.Normal("y_obs", eta, sigma, observed=data("y_obs", outcome.y))
        elif outcome.family == "bernoulli":
            pm.Bernoulli("y_obs", logit_p=eta, observed=data("y_obs", outcome.y.astype(np.int64)))
        elif outcome.family == "poisson":
            pm.Poisson("y_obs", mu=pt.exp(eta), observed=data("y_obs", outcome.y.astype(np.int64)))
        else:  # survival, proportional hazards: log h(t) = eta + log h0(t), H(t) = e^eta H0(t)
            terms = {k: data(k, v) for k, v in outcome_data_values(outcome).items()}
            if outcome.family == "piecewise_exponential":
                m = len(outcome.cuts) + 1
                steps = pm.Normal("baseline_steps", 0.0, 1.0, shape=(m - 1,))
                lam = pm.Deterministic("log_baseline", pt.concatenate(
                    [pt.zeros(1), pt.cumsum(pr.baseline_step_sd * steps)]))
                log_h0 = lam[terms["interval"]]
                cum_h0 = pt.dot(terms["exposure"], pt.exp(lam))
            else:
                log_k = pm.Normal("log_shape", 0.0, 1.0)
                k = pm.Deterministic("shape", pt.exp(log_k))
                log_h0 = log_k + (k - 1) * terms["log_time"]
                cum_h0 = terms["time"] ** k
            log_h, cum_h = eta + log_h0, pt.exp(eta) * cum_h0
            if spec.outcome.frailty:
                # gamma frailty integrated out: S = (1 + theta H)^(-1/theta), h = h_c / (1 + theta H)
                theta = pm.HalfNormal("frailty_var", 1.0)
                log1p = pt.log1p(theta * cum_h)
                pm.Potential("y_obs", pt.sum(terms["event"] * (log_h - log1p)) - pt.sum(log1p / theta))
            else:
                pm.Potential("y_obs", pt.sum(terms["event"] * log_h) - pt.sum(cum_h))
    return model


def outcome_data_values(outcome: OutcomeData) -> dict[str, np.ndarray]:
    """The arrays a survival likelihood reads from the data: event indicators and, for
    weibull, time and log time; for piecewise_exponential, each patient's interval index
    and time spent in every interval."""
    out = {"event": outcome.event}
    if outcome.family == "piecewise_exponential":
        out["interval"] = np.searchsorted(outcome.cuts, outcome.y, side="right")
        out["exposure"] = interval_exposure(outcome.y, outcome.cuts)
    else:
        out["time"] = outcome.y
        out["log_time"] = np.log(outcome.y)
    return out


def interval_exposure(t: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Time each patient spends in each baseline-hazard interval, shape (n, len(cuts) + 1)."""
    bounds = np.concatenate([[0.0], cuts, [np.inf]])
    return np.clip(np.asarray(t, dtype=float)[:, None] - bounds[None, :-1], 0.0, np.diff(bounds)[None, :])


# ---------------------------------------------------------------------- forward simulation
def _observed_containers(model) -> dict[str, str]:
    """Observed RV name -> name of the pm.Data container holding its values."""
    from pytensor.graph.traversal import ancestors

    data = set(model.data_vars)
    out = {}
    for rv in model.observed_RVs:
        found = [v for v in ancestors([model.rvs_to_values[rv]]) if v in data]
        if len(found) != 1:
            raise ValueError(f"observed variable '{rv.name}' is not stored in one pm.Data container; "
                             "build the model with its observed values as pm.Data to refit it per replicate")
        out[rv.name] = found[0].name
    return out


def prior_predictive(model) -> Callable:
    """Forward simulator of a PyMC model, compiled once: rng -> (theta, data).

    ``theta`` holds every free random variable and deterministic at a prior draw;
    ``data`` the matching draw of every observed variable, keyed by its pm.Data container.
    Potentials are not simulated (as in ``pm.sample_prior_predictive``): a likelihood
    written as a Potential needs its own simulator that fills its data containers.
    """
    from pymc.pytensorf import compile, find_rng_nodes, reseed_rngs

    containers = _observed_containers(model)
    params = list(model.free_RVs) + list(model.deterministics)
    outputs = params + list(model.observed_RVs)
    with model:
        fn = compile(inputs=[], outputs=outputs, random_seed=False)
    rngs = find_rng_nodes(fn.maker.fgraph.outputs)

    def simulate(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        reseed_rngs(rngs, rng.integers(0, 2**63, size=4))
        values = fn()
        theta = {v.name: np.asarray(x) for v, x in zip(params, values[: len(params)], strict=True)}
        data = {containers[v.name]: np.asarray(x)
                for v, x in zip(model.observed_RVs, values[len(params):], strict=True)}
        return theta, data

    return simulate
