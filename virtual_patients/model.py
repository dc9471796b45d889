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
  :math:`\log k \sim N(0, 1)`; PyMC's Weibull(alpha=k, beta=e^{-\eta/k}) with censoring.

A new study draws :math:`\alpha_{new} = \mu + \tau \epsilon` — the meta-analytic-
predictive (MAP) idea behind synthetic control arms. With fewer than two studies
:math:`\tau` is not identified and is left out (all patients share :math:`\mu`).

Coefficients have Normal(0, priors.coefficient_sd) priors and intercepts
Normal(0, priors.intercept_sd) — weakly informative on the standardised scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encoding import Encoder, design_offsets
from .spec import GeneratorSpec


@dataclass(frozen=True)
class OutcomeData:
    """The outcome on the model's internal scale."""

    family: str
    y: np.ndarray  # standardised y (normal), 0/1 (bernoulli), counts (poisson), time/unit (weibull)
    event: np.ndarray | None = None  # weibull only


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
):
    """Build the joint PyMC model of covariates and control outcome.

    ``observed[name]`` holds each covariate in model form: standardised z (continuous),
    0/1 (binary), level codes 0..K-1 (categorical), raw counts (count).
    """
    import pymc as pm
    import pytensor.tensor as pt

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
                pm.Categorical(f"{base}_obs", logit_p=logits, observed=observed[enc.name])
                continue
            a = pm.Normal(f"{base}_intercept", 0.0, pr.intercept_sd)
            b = pm.Normal(f"{base}_coef", 0.0, pr.coefficient_sd, shape=(p,))
            eta = a + pt.dot(X, b) if p else a
            if enc.type == "continuous":
                sigma = pm.HalfNormal(f"{base}_sigma", 1.0)
                pm.Normal(f"{base}_obs", eta, sigma, observed=observed[enc.name])
            elif enc.type == "binary":
                pm.Bernoulli(f"{base}_obs", logit_p=eta, observed=observed[enc.name])
            else:  # count
                phi = pm.HalfNormal(f"{base}_phi", 10.0)
                pm.NegativeBinomial(f"{base}_obs", mu=pt.exp(eta), alpha=phi, observed=observed[enc.name])

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
            pm.Normal("y_obs", eta, sigma, observed=outcome.y)
        elif outcome.family == "bernoulli":
            pm.Bernoulli("y_obs", logit_p=eta, observed=outcome.y.astype(np.int64))
        elif outcome.family == "poisson":
            pm.Poisson("y_obs", mu=pt.exp(eta), observed=outcome.y.astype(np.int64))
        else:  # weibull, proportional hazards
            log_k = pm.Normal("log_shape", 0.0, 1.0)
            k = pm.Deterministic("shape", pt.exp(log_k))
            scale = pt.exp(-eta / k)
            upper = np.where(outcome.event == 1, np.inf, outcome.y)
            pm.Censored("y_obs", pm.Weibull.dist(alpha=k, beta=scale), lower=None, upper=upper,
                        observed=outcome.y)
    return model
