"""Hybrid controls: a randomised trial whose control arm is augmented by external controls
through a weighted power prior (beastt, GSK; psborrow2 for time to event). Each external
patient's likelihood is raised to a0 w_i, giving a conjugate normal, beta or gamma
(exponential hazard) prior with prior effective sample size a0 sum_i w_i; the posterior
probability of benefit decides, and the estimate is on the difference scale (the log hazard
ratio for time to event)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special, stats

from ..analyses import finish
from ..borrowing import BetaMixture, prob_diff_greater
from .propensity import (
    RIDGE,
    as_batch_matrix,
    as_batch_vector,
    att_weights,
    kish,
    per_replicate,
    propensity_scores,
    weights_or_ones,
)

EPSILON = 1e-3
r"""Shape and rate of the vague initial :math:`\text{Gamma}(\varepsilon, \varepsilon)` prior
on each arm's exponential hazard (`hybrid_exponential`).

It adds :math:`10^{-3}` of an event and :math:`10^{-3}` time units of exposure to each arm:
against the tens of events and thousands of patient-days of a trial that moves the
posterior of a log hazard by about :math:`\varepsilon/d` and :math:`\varepsilon/T`
(< 1e-4 for d >= 10 events), while keeping the posterior proper when an arm has no events.
As :math:`\varepsilon \to 0` it tends to the scale-invariant prior
:math:`\pi(\lambda) \propto 1/\lambda`, under which the posterior mean of
:math:`\log\lambda` is :math:`\psi(d) - \log T`, i.e. the MLE :math:`\log(d/T)` less
about :math:`1/(2d)`.
"""


def _check_a0(a0, R: int) -> np.ndarray:
    a0 = per_replicate(a0, R, "a0")
    if np.any(~np.isfinite(a0)) or np.any(a0 < 0):
        raise ValueError(f"a0 must be finite and >= 0; got {a0[(~np.isfinite(a0)) | (a0 < 0)][:3]}")
    return a0


# ---------------------------------------------------------------------- weighted power priors
def weighted_power_prior_normal(y_ext: np.ndarray, w: np.ndarray | None, a0, sigma) -> dict[str, np.ndarray]:
    r"""Weighted power prior for a normal mean with known sd (flat initial prior).

    .. math::
        \pi(\mu \mid y_{\text{ext}}) \propto
            \prod_i N(y_i \mid \mu, \sigma^2)^{a_0 w_i}
        = N\!\left(\mu \;\middle|\; \frac{\sum_i w_i y_i}{\sum_i w_i},\;
                    \frac{\sigma^2}{a_0 \sum_i w_i}\right),
        \qquad \text{ESS} = a_0 \sum_i w_i .

    Parameters
    ----------
    y_ext : (R, n_ext) or (n_ext,) array
        External control outcomes.
    w : (R, n_ext) or (n_ext,) array or None
        Patient weights as given (e.g. `att_weights`, normalised to sum n_ext); None = 1.
    a0 : float or (R,) array
        Power (discount) parameter, >= 0; 0 = no borrowing.
    sigma : float or (R,) array
        Known outcome sd (the same sd is assumed in the current trial).

    Returns
    -------
    dict of (R,) arrays: ``mean``, ``variance`` (inf when the ESS is 0), ``precision``
    (:math:`a_0 \sum w / \sigma^2`, 0 when the ESS is 0) and ``ess``.
    """
    y_ext = as_batch_vector(y_ext, "y_ext")
    R = y_ext.shape[0]
    w = weights_or_ones(w, y_ext.shape)
    a0 = _check_a0(a0, R)
    sigma = per_replicate(sigma, R, "sigma")
    sw = w.sum(axis=1)
    with np.errstate(invalid="ignore"):  # all-zero weights: mean undefined, harmless when ess = 0
        mean = (w * y_ext).sum(axis=1) / sw
    ess = a0 * sw
    with np.errstate(divide="ignore"):
        var = np.where(ess > 0, sigma**2 / np.where(ess > 0, ess, 1.0), np.inf)
    return {"mean": mean, "variance": var, "precision": ess / sigma**2, "ess": ess}


def weighted_power_prior_binary(y_ext: np.ndarray, w: np.ndarray | None, a0) -> dict[str, np.ndarray]:
    r"""Weighted power prior for a response rate (Beta(1, 1) initial prior).

    .. math::
        \pi(p \mid y_{\text{ext}}) \propto \prod_i \{p^{y_i}(1-p)^{1-y_i}\}^{a_0 w_i}
        = \text{Beta}\!\left(1 + a_0 \sum_i w_i y_i,\; 1 + a_0 \sum_i w_i (1 - y_i)\right),
        \qquad \text{ESS} = a_0 \sum_i w_i

    (the ESS counts the borrowed information only, not the initial Beta(1, 1)).

    Parameters
    ----------
    y_ext : (R, n_ext) or (n_ext,) array of 0/1
    w : (R, n_ext) or (n_ext,) array or None (= 1)
    a0 : float or (R,) array, >= 0

    Returns
    -------
    dict of (R,) arrays: ``alpha``, ``beta``, ``mean`` and ``ess``.
    """
    y_ext = as_batch_vector(y_ext, "y_ext")
    if np.any((y_ext != 0) & (y_ext != 1)):
        raise ValueError("y_ext must be 0/1")
    R = y_ext.shape[0]
    w = weights_or_ones(w, y_ext.shape)
    a0 = _check_a0(a0, R)
    a = 1 + a0 * (w * y_ext).sum(axis=1)
    b = 1 + a0 * (w * (1 - y_ext)).sum(axis=1)
    return {"alpha": a, "beta": b, "mean": a / (a + b), "ess": a0 * w.sum(axis=1)}


def weighted_power_prior_exponential(time_ext: np.ndarray, event_ext: np.ndarray, w: np.ndarray | None, a0,
                                     epsilon: float = EPSILON) -> dict[str, np.ndarray]:
    r"""Weighted power prior for an exponential hazard (Gamma(ε, ε) initial prior).

    With external follow-up times :math:`t_i` and event indicators :math:`\delta_i`, the
    exponential likelihood :math:`\lambda^{\delta_i} e^{-\lambda t_i}` raised to
    :math:`a_0 w_i` is conjugate to the gamma:

    .. math::
        \pi(\lambda \mid \text{ext}) \propto \lambda^{\varepsilon - 1} e^{-\varepsilon\lambda}
            \prod_i \{\lambda^{\delta_i} e^{-\lambda t_i}\}^{a_0 w_i}
        = \text{Gamma}\!\left(\varepsilon + a_0 \sum_i w_i \delta_i,\;
                                \varepsilon + a_0 \sum_i w_i t_i\right)

    (shape, rate): the external events and exposure enter as weighted sums discounted by
    :math:`a_0` (psborrow2's power prior for an exponential outcome, made conjugate;
    Ibrahim & Chen 2000). ESS :math:`a_0 \sum_i w_i` patients, as for the other power
    priors; ``events`` :math:`a_0 \sum_i w_i \delta_i` is the information actually borrowed.

    Parameters
    ----------
    time_ext : (R, n_ext) or (n_ext,) array
        External follow-up times (>= 0; 0 = never at risk).
    event_ext : (R, n_ext) or (n_ext,) array of 0/1
    w : (R, n_ext) or (n_ext,) array or None (= 1)
    a0 : float or (R,) array, >= 0
    epsilon : float
        Initial Gamma(ε, ε), see `EPSILON`.

    Returns
    -------
    dict of (R,) arrays: ``shape``, ``rate``, ``events``, ``exposure`` (the borrowed,
    discounted sums) and ``ess``.
    """
    time_ext, event_ext = _survival_arrays(time_ext, event_ext, "time_ext", "event_ext")
    R = time_ext.shape[0]
    w = weights_or_ones(w, time_ext.shape)
    a0 = _check_a0(a0, R)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0; got {epsilon}")
    events = a0 * (w * event_ext).sum(axis=1)
    exposure = a0 * (w * time_ext).sum(axis=1)
    return {"shape": epsilon + events, "rate": epsilon + exposure, "events": events, "exposure": exposure,
            "ess": a0 * w.sum(axis=1)}


def _survival_arrays(time, event, time_name: str, event_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked (R, n) follow-up times (finite, >= 0) and 0/1 event indicators."""
    time = as_batch_vector(time, time_name)
    event = as_batch_vector(event, event_name)
    if event.shape != time.shape:
        raise ValueError(f"{time_name} {time.shape} and {event_name} {event.shape} must have the same shape")
    if np.any(~np.isfinite(time)) or np.any(time < 0):
        raise ValueError(f"{time_name} must be finite and >= 0")
    if np.any((event != 0) & (event != 1)):
        raise ValueError(f"{event_name} must be 0/1")
    return time, event


# ---------------------------------------------------------------------- Gamma ratio
def gamma_ratio_tails(a1, b1, a2, b2, c=1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Pr(X1/X2 < c) and Pr(X1/X2 > c) for independent X1 ~ Gamma(a1, rate b1),
    X2 ~ Gamma(a2, rate b2), elementwise and exact.

    :math:`b_1X_1` and :math:`b_2X_2` are standard gammas, so
    :math:`B = b_1X_1 / (b_1X_1 + b_2X_2) \sim \text{Beta}(a_1, a_2)` and
    :math:`X_1/X_2 = (b_2/b_1)\, B/(1-B)` is a scaled beta-prime (equivalently
    :math:`(a_2 b_1 / a_1 b_2)\, X_1/X_2 \sim F(2a_1, 2a_2)`). Hence

    .. math::
        \Pr(X_1/X_2 < c) = I_{x}(a_1, a_2), \qquad x = \frac{c\,b_1}{c\,b_1 + b_2},

    the regularised incomplete beta function (`scipy.special.betainc`); the upper tail is
    :math:`I_{1-x}(a_2, a_1)`, computed directly so that neither tail loses digits to
    cancellation.
    """
    a1, b1, a2, b2, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a1, b1, a2, b2, c)))
    if np.any(~(a1 > 0)) or np.any(~(a2 > 0)) or np.any(~(b1 > 0)) or np.any(~(b2 > 0)) or np.any(~(c > 0)):
        raise ValueError("gamma shapes, rates and the ratio c must be > 0")
    return special.betainc(a1, a2, c * b1 / (c * b1 + b2)), special.betainc(a2, a1, b2 / (c * b1 + b2))


def log_gamma_ratio_quantile(q, a1, b1, a2, b2) -> np.ndarray:
    r"""Quantile q of log(X1/X2) for the gammas of `gamma_ratio_tails`:
    :math:`\log(b_2/b_1) + \log B_q - \log(1 - B)_{q}`, with :math:`B_q` the Beta(a1, a2)
    quantile and :math:`(1-B)_q` = the Beta(a2, a1) quantile 1 - q (both by
    `scipy.special.betaincinv`, so that neither end loses digits)."""
    q, a1, b1, a2, b2 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q, a1, b1, a2, b2)))
    return (np.log(b2) - np.log(b1) + np.log(special.betaincinv(a1, a2, q))
            - np.log(special.betaincinv(a2, a1, 1.0 - q)))


# ---------------------------------------------------------------------- Beta comparison
def prob_beta_greater(a1, b1, a2, b2) -> np.ndarray:
    r"""Pr(X1 > X2) for independent X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2), elementwise.

    The one-component case of `trials.borrowing.prob_diff_greater` (its checked
    quadrature; error < 1e-10 against `scipy.integrate.quad` on the tested cases).
    """
    a1, b1, a2, b2 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a1, b1, a2, b2)))
    shape = a1.shape
    one = np.ones((int(np.prod(shape)), 1))
    x1 = BetaMixture(one, a1.reshape(-1, 1), b1.reshape(-1, 1))
    x2 = BetaMixture(one, a2.reshape(-1, 1), b2.reshape(-1, 1))
    return prob_diff_greater(x1, x2).reshape(shape)


# ---------------------------------------------------------------------- hybrid control analyses
def _external_weights(X, X_ext, arm, weights, R, n_ext, truncate, ps_reference, max_iter, tol, ridge):
    """Weights (R, n_ext), Kish ESS (R,) and PS convergence (R,) for a hybrid analysis."""
    if weights is not None:
        w = weights_or_ones(weights, (R, n_ext), "weights")
        return w, kish(w), np.ones(R, dtype=bool)
    if X is None or X_ext is None:
        raise ValueError("give the covariates X and X_ext (for propensity-score weights) or weights")
    X = as_batch_matrix(X, "X")
    if ps_reference == "control":
        X = X[:, arm == 0]
    elif ps_reference != "trial":
        raise ValueError(f"ps_reference must be 'trial' or 'control'; got {ps_reference!r}")
    ps, ok = propensity_scores(X, X_ext, max_iter=max_iter, tol=tol, ridge=ridge)
    if ps.shape != (R, n_ext):
        raise ValueError(f"covariates give propensity scores of shape {ps.shape}; outcomes need {(R, n_ext)}")
    w, ess = att_weights(ps, truncate=truncate)
    return w, ess, ok


def _posterior_tail(prob_greater, alpha, sided, direction):
    """p_value (posterior tail) and decision from Pr(delta > 0 | data)."""
    post = prob_greater if direction == "greater" else 1 - prob_greater
    p = 2 * np.minimum(post, 1 - post) if sided == "two" else 1 - post
    return post, p, (p < alpha).astype(np.int8)


def _hybrid_inputs(y, arm, y_ext):
    """Checked (R, n) trial outcomes, (n,) arms and (R, n_ext) external outcomes."""
    y = as_batch_vector(y, "y")
    arm = np.asarray(arm)
    y_ext = as_batch_vector(y_ext, "y_ext")
    R, n_ext = y.shape[0], y_ext.shape[1]
    if y_ext.shape[0] != R or arm.shape != (y.shape[1],):
        raise ValueError(f"y {y.shape}, arm {arm.shape} and y_ext {y_ext.shape} disagree")
    return y, arm, y_ext, R, n_ext


def hybrid_normal(y: np.ndarray, arm: np.ndarray, y_ext: np.ndarray, X: np.ndarray | None = None,
                  X_ext: np.ndarray | None = None, *, a0, sigma, alpha: float = 0.025,
                  sided: Literal["one", "two"] = "one", direction: Literal["greater", "less"] = "greater",
                  level: float = 0.95, weights: np.ndarray | None = None, truncate: float | None = None,
                  ps_reference: Literal["trial", "control"] = "trial", max_iter: int = 25, tol: float = 1e-10,
                  ridge: float = RIDGE) -> dict[str, np.ndarray]:
    r"""Randomised trial with a control arm augmented by weighted external controls (normal).

    Model (known sd :math:`\sigma`, common to trial and external data):
    :math:`y_i \sim N(\mu_t, \sigma^2)` on treatment, :math:`N(\mu_c, \sigma^2)` on
    control. The control mean gets the weighted power prior of
    `weighted_power_prior_normal` (mean :math:`m_0`, ESS :math:`E = a_0 \sum w`), the
    treatment mean a flat prior, so with :math:`n_c` current controls of mean
    :math:`\bar y_c`

    .. math::
        \mu_c \mid \text{data} \sim N\!\left(\bar y_c + \frac{E}{n_c + E}(m_0 - \bar y_c),\;
                                             \frac{\sigma^2}{n_c + E}\right), \qquad
        \mu_t \mid \text{data} \sim N(\bar y_t, \sigma^2 / n_t),

    and :math:`\delta = \mu_t - \mu_c` is normal with the difference of the means and the
    sum of the variances. ``posterior_prob`` is :math:`\Pr(\delta > 0 \mid \text{data})`
    (:math:`\Pr(\delta < 0)` for ``direction="less"``); ``p_value`` is the posterior tail
    :math:`1 -` ``posterior_prob`` (twice the smaller tail if two-sided), so
    ``decision`` = 1 exactly when ``posterior_prob`` > 1 - ``alpha``: the success
    threshold is :math:`c = 1 - \alpha`, to be calibrated by simulation to a one-sided
    type I error of 0.025 under no drift *and* under plausible drift
    (REGULATORY.md §2). ``lower``/``upper`` are the equal-tailed ``level`` credible
    interval of :math:`\delta`. With :math:`a_0 = 0` the result is the flat-prior
    analysis of the current trial alone, exactly.

    Parameters
    ----------
    y : (R, n) array
        Current-trial outcomes.
    arm : (n,) array of 0/1
        1 = treatment, shared by all replicates.
    y_ext : (R, n_ext) array
        External control outcomes.
    X, X_ext : (R, n, p) and (R, n_ext, p) arrays, optional
        Covariates for the propensity score (`propensity_scores`, `att_weights`); not
        needed when ``weights`` is given.
    a0 : float or (R,) array
        Power-prior discount, >= 0.
    sigma : float or (R,) array
        Known outcome sd (pass a per-replicate estimate to plug one in).
    alpha, sided, direction, level
        As in `trials.analyses`.
    weights : (R, n_ext) or (n_ext,) array, optional
        External weights to use instead of estimated ATT weights.
    truncate : float, optional
        Quantile truncation of the ATT odds (`att_weights`).
    ps_reference : {"trial", "control"}
        Which current patients define the target population in the propensity model:
        the whole randomised trial (default: the same population, twice the sample) or
        the current controls only (beastt's vignette choice).
    max_iter, tol, ridge
        Propensity-score fit settings (`logistic_irls`).

    Returns
    -------
    dict of (R,) arrays: ``estimate`` (posterior mean of :math:`\delta`), ``std_error``
    (posterior sd), ``lower``, ``upper``, ``p_value``, ``decision``, ``posterior_prob``,
    ``prior_ess`` (:math:`a_0 \sum w`), ``weights_ess`` (Kish ESS of the weights) and
    ``ps_converged``.
    """
    y, arm, y_ext, R, n_ext = _hybrid_inputs(y, arm, y_ext)
    w, kish, ok = _external_weights(X, X_ext, arm, weights, R, n_ext, truncate, ps_reference,
                                    max_iter, tol, ridge)
    sigma = per_replicate(sigma, R, "sigma")
    prior = weighted_power_prior_normal(y_ext, w, a0, sigma)
    t, c = y[:, arm == 1], y[:, arm == 0]
    n_t, n_c = t.shape[1], c.shape[1]
    ybar_c = c.mean(axis=1)
    E = prior["ess"]
    # shrinkage form: with E = 0 the posterior is (ybar_c, sigma^2 / n_c) bit for bit
    shrink = E / (n_c + E)
    mu_c = ybar_c + shrink * np.where(E > 0, prior["mean"] - ybar_c, 0.0)
    var_c = sigma**2 / (n_c + E)
    est = t.mean(axis=1) - mu_c
    sd = np.sqrt(sigma**2 / n_t + var_c)
    out = finish(est, sd, None, alpha, sided, direction, level)
    post, p, decision = _posterior_tail(stats.norm.cdf(est / sd), alpha, sided, direction)
    out.update(p_value=p, decision=decision, posterior_prob=post, prior_ess=E, weights_ess=kish,
               ps_converged=ok)
    return out


def hybrid_binary(y: np.ndarray, arm: np.ndarray, y_ext: np.ndarray, X: np.ndarray | None = None,
                  X_ext: np.ndarray | None = None, *, a0, alpha: float = 0.025,
                  sided: Literal["one", "two"] = "one", direction: Literal["greater", "less"] = "greater",
                  level: float = 0.95, weights: np.ndarray | None = None, truncate: float | None = None,
                  ps_reference: Literal["trial", "control"] = "trial", max_iter: int = 25, tol: float = 1e-10,
                  ridge: float = RIDGE) -> dict[str, np.ndarray]:
    r"""Randomised trial with a control arm augmented by weighted external controls (binary).

    The control rate gets the weighted power prior of `weighted_power_prior_binary`,
    :math:`\text{Beta}(a_0', b_0')`, the treatment rate a Beta(1, 1) prior:

    .. math::
        p_c \mid \text{data} \sim \text{Beta}(a_0' + s_c,\; b_0' + n_c - s_c), \qquad
        p_t \mid \text{data} \sim \text{Beta}(1 + s_t,\; 1 + n_t - s_t),

    with :math:`s` the responder counts. ``posterior_prob`` is
    :math:`\Pr(p_t - p_c > 0 \mid \text{data})` (``< 0`` for ``direction="less"``),
    computed by `prob_beta_greater` (vectorised quadrature);
    ``p_value`` and ``decision`` as in `hybrid_normal`. ``estimate`` and ``std_error``
    are the exact posterior mean and sd of :math:`p_t - p_c`; ``lower``/``upper`` are
    the normal approximation mean :math:`\pm z_{(1+\text{level})/2}` sd (the decision
    does not use them).

    Parameters and the remaining returned keys are those of `hybrid_normal` (no
    ``sigma``); ``y`` and ``y_ext`` are 0/1.
    """
    y, arm, y_ext, R, n_ext = _hybrid_inputs(y, arm, y_ext)
    if np.any((y != 0) & (y != 1)):
        raise ValueError("y must be 0/1")
    w, kish, ok = _external_weights(X, X_ext, arm, weights, R, n_ext, truncate, ps_reference,
                                    max_iter, tol, ridge)
    prior = weighted_power_prior_binary(y_ext, w, a0)
    t, c = y[:, arm == 1], y[:, arm == 0]
    s_t, s_c = t.sum(axis=1), c.sum(axis=1)
    a_t, b_t = 1.0 + s_t, 1.0 + t.shape[1] - s_t
    a_c, b_c = prior["alpha"] + s_c, prior["beta"] + c.shape[1] - s_c

    def mean_var(a, b):
        return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))

    (m_t, v_t), (m_c, v_c) = mean_var(a_t, b_t), mean_var(a_c, b_c)
    est, sd = m_t - m_c, np.sqrt(v_t + v_c)
    out = finish(est, sd, None, alpha, sided, direction, level)
    post, p, decision = _posterior_tail(prob_beta_greater(a_t, b_t, a_c, b_c), alpha, sided, direction)
    out.update(p_value=p, decision=decision, posterior_prob=post, prior_ess=prior["ess"], weights_ess=kish,
               ps_converged=ok)
    return out


def hybrid_exponential(time: np.ndarray, event: np.ndarray, arm: np.ndarray, time_ext: np.ndarray,
                       event_ext: np.ndarray, X: np.ndarray | None = None, X_ext: np.ndarray | None = None, *,
                       a0, alpha: float = 0.025, sided: Literal["one", "two"] = "one",
                       direction: Literal["greater", "less"] = "less", level: float = 0.95,
                       weights: np.ndarray | None = None, truncate: float | None = None,
                       ps_reference: Literal["trial", "control"] = "trial", max_iter: int = 25, tol: float = 1e-10,
                       ridge: float = RIDGE, epsilon: float = EPSILON) -> dict[str, np.ndarray]:
    r"""Randomised time-to-event trial with a control arm augmented by weighted external controls.

    psborrow2's hybrid control with an exponential outcome and a power prior, made
    conjugate so that it is exact and runs for all replicates at once (no MCMC). Per arm,
    events :math:`d` and exposure :math:`T` (sum of observed follow-up) are sufficient for
    the exponential hazard. The control hazard gets the weighted power prior of
    `weighted_power_prior_exponential`, the treatment hazard the vague Gamma(ε, ε):

    .. math::
        \lambda_c \mid \text{data} \sim \text{Gamma}\big(\varepsilon + d_c + a_0 d_e^w,\;
                                                     \varepsilon + T_c + a_0 T_e^w\big), \qquad
        \lambda_t \mid \text{data} \sim \text{Gamma}(\varepsilon + d_t,\; \varepsilon + T_t),

    with :math:`d_e^w = \sum_i w_i\delta_i` and :math:`T_e^w = \sum_i w_i t_i` the
    (ATT-weighted, `att_weights`) external events and exposure, independent a posteriori.
    The estimand is the log hazard ratio :math:`\theta = \log\lambda_t - \log\lambda_c`:

    * ``estimate`` = :math:`E[\theta] = \psi(a_t) - \log b_t - \psi(a_c) + \log b_c`
      and ``std_error`` = :math:`\sqrt{\psi_1(a_t) + \psi_1(a_c)}` (digamma / trigamma:
      the mean and variance of the log of a gamma variable);
    * ``lower``/``upper``: the equal-tailed ``level`` credible interval of :math:`\theta`
      (`log_gamma_ratio_quantile`);
    * ``posterior_prob`` = :math:`\Pr(\lambda_t/\lambda_c < 1 \mid \text{data})` for
      ``direction="less"`` (benefit = fewer events, the default) or
      :math:`\Pr(\lambda_t/\lambda_c > 1)` for ``"greater"``, exact by the incomplete beta
      function (`gamma_ratio_tails`); ``p_value`` is the other tail (twice the smaller
      tail if two-sided), so ``decision`` = 1 exactly when ``posterior_prob`` > 1 - ``alpha``
      (the engine may calibrate that threshold, `trials.engine.calibrate`).

    With :math:`a_0 = 0` the external data are ignored exactly (the prior is the initial
    Gamma(ε, ε)). Under a piecewise or Weibull truth the exponential model estimates
    the ratio of the arms' average hazards over the observed follow-up, not the
    proportional-hazards HR; external controls followed up differently from the trial's
    then carry that difference into the borrowed information.

    Parameters
    ----------
    time, event : (R, n) arrays
        Current-trial follow-up times (>= 0) and 0/1 event indicators.
    arm : (n,) array of 0/1
        1 = treatment, shared by all replicates.
    time_ext, event_ext : (R, n_ext) arrays
        External controls' follow-up and events.
    X, X_ext, a0, alpha, sided, level, weights, truncate, ps_reference, max_iter, tol, ridge
        As in `hybrid_normal`.
    direction : {"less", "greater"}
        Which side of the hazard ratio is benefit (default "less": HR < 1).
    epsilon : float
        The initial Gamma(ε, ε) of both hazards, see `EPSILON`.

    Returns
    -------
    dict of (R,) arrays: the keys of `hybrid_normal` (``prior_ess`` = :math:`a_0 \sum w`
    patients) plus ``prior_events`` (:math:`a_0 d_e^w`, the borrowed events).
    """
    time, event = _survival_arrays(time, event, "time", "event")
    time_ext, event_ext = _survival_arrays(time_ext, event_ext, "time_ext", "event_ext")
    arm = np.asarray(arm)
    R, n_ext = time.shape[0], time_ext.shape[1]
    if time_ext.shape[0] != R or arm.shape != (time.shape[1],):
        raise ValueError(f"time {time.shape}, arm {arm.shape} and time_ext {time_ext.shape} disagree")
    if direction not in ("less", "greater"):
        raise ValueError(f"direction must be 'less' or 'greater'; got {direction!r}")
    w, kish, ok = _external_weights(X, X_ext, arm, weights, R, n_ext, truncate, ps_reference,
                                    max_iter, tol, ridge)
    prior = weighted_power_prior_exponential(time_ext, event_ext, w, a0, epsilon)
    treated = arm == 1
    a_t = epsilon + event[:, treated].sum(axis=1)
    b_t = epsilon + time[:, treated].sum(axis=1)
    a_c = prior["shape"] + event[:, ~treated].sum(axis=1)
    b_c = prior["rate"] + time[:, ~treated].sum(axis=1)
    est = special.digamma(a_t) - np.log(b_t) - special.digamma(a_c) + np.log(b_c)
    sd = np.sqrt(special.polygamma(1, a_t) + special.polygamma(1, a_c))
    tail = (1.0 - level) / 2
    lower = log_gamma_ratio_quantile(tail, a_t, b_t, a_c, b_c)
    upper = log_gamma_ratio_quantile(1.0 - tail, a_t, b_t, a_c, b_c)
    less, greater = gamma_ratio_tails(a_t, b_t, a_c, b_c)
    post, other = (less, greater) if direction == "less" else (greater, less)
    p = np.minimum(2 * np.minimum(post, other), 1.0) if sided == "two" else other
    return {"estimate": est, "std_error": sd, "lower": lower, "upper": upper, "p_value": p,
            "decision": (p < alpha).astype(np.int8), "posterior_prob": post, "prior_ess": prior["ess"],
            "prior_events": prior["events"], "weights_ess": kish, "ps_converged": ok}
