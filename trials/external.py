r"""External and synthetic control arms, vectorised over the replicates of a chunk.

The kernels follow `trials.analyses`: arrays carry a leading replicate axis R, patients
sit in columns (covariates as (R, n, p)), and every analysis returns a dict of (R,)
arrays with ``estimate``, ``std_error``, ``lower``, ``upper``, ``p_value`` and
``decision`` (plus a few keys of its own). Plain numpy/scipy; no fitting library.

Pipeline (FDA externally controlled trials draft, 2023; REGULATORY.md §2):

1. **Propensity score** of *current-trial membership*: per replicate, the logistic
   regression of :math:`z_i` (1 = current trial, 0 = external) on :math:`[1, x_i]`,
   fitted for all replicates at once by Newton-Raphson (IRLS), see `logistic_irls`.
2. **ATT odds weights** for the external patients,
   :math:`w_i = e(x_i) / (1 - e(x_i))`, which reweight the external population to the
   covariate distribution of the current trial (the estimand's population); trial
   patients keep weight 1. See `att_weights`; diagnostics in `balance` (standardised
   mean differences and variance ratios, |SMD| < 0.1 and VR in 0.5-2 as targets).
3. **Borrowing**:

   * `hybrid_normal` / `hybrid_binary` / `hybrid_exponential`: a randomised trial
     whose control arm is augmented by the external controls through a *weighted power
     prior* (beastt, GSK; psborrow2 for time to event): each external patient's
     likelihood is raised to :math:`a_0 w_i`, giving a conjugate normal, beta or gamma
     (exponential hazard) prior with prior effective sample size
     :math:`a_0 \sum_i w_i`;
   * `external_normal`: a single-arm trial compared with the weighted external controls
     only (weighted difference in means, M-estimation sandwich or Hajek standard
     error).

Estimates are reported on the difference scale (treatment - control; the log hazard ratio
for time to event); ``direction`` and ``sided`` have the meaning they have in
`trials.analyses`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special, stats

from .analyses import finish

RIDGE = 1e-8
r"""Default ridge added to the logistic Hessian's slope block (separation safety).

A penalty :math:`\tfrac{\lambda}{2}\lVert\beta_{\text{slopes}}\rVert^2` with
:math:`\lambda = 10^{-8}` keeps the Newton system positive definite and the slopes finite
under complete separation, while moving a well-posed fit by about
:math:`\lambda \lVert H^{-1}\beta\rVert`, far below 1e-6 for any realistic sample size.
The intercept is not penalised.
"""

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



# ---------------------------------------------------------------------- input helpers
def _as_batch_matrix(X: np.ndarray, name: str) -> np.ndarray:
    """(R, n, p) float array; a (n, p) matrix is one replicate."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3:
        raise ValueError(f"{name} must be (R, n, p) or (n, p); got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains non-finite values")
    return X


def _as_batch_vector(y: np.ndarray, name: str, dtype=float) -> np.ndarray:
    """(R, n) array; a (n,) vector is one replicate."""
    y = np.asarray(y, dtype=dtype)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2:
        raise ValueError(f"{name} must be (R, n) or (n,); got shape {y.shape}")
    return y


def _per_replicate(value, R: int, name: str) -> np.ndarray:
    """A scalar or (R,) parameter as an (R,) float array."""
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        return np.full(R, float(v))
    if v.shape != (R,):
        raise ValueError(f"{name} must be a scalar or have shape ({R},); got shape {v.shape}")
    return v


def _check_a0(a0, R: int) -> np.ndarray:
    a0 = _per_replicate(a0, R, "a0")
    if np.any(~np.isfinite(a0)) or np.any(a0 < 0):
        raise ValueError(f"a0 must be finite and >= 0; got {a0[(~np.isfinite(a0)) | (a0 < 0)][:3]}")
    return a0


def _weights_or_ones(w, shape: tuple[int, int], name: str = "w") -> np.ndarray:
    if w is None:
        return np.ones(shape)
    w = np.broadcast_to(np.asarray(w, dtype=float), shape) if np.ndim(w) == 1 else np.asarray(w, dtype=float)
    if w.shape != shape:
        raise ValueError(f"{name} must have the shape of the external outcomes {shape}; got {w.shape}")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return w


# ---------------------------------------------------------------------- propensity score
def logistic_irls(design: np.ndarray, z: np.ndarray, *, max_iter: int = 25, tol: float = 1e-10,
                  ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Batched logistic regression by Newton-Raphson (IRLS) with step halving.

    For every replicate r, maximises the penalised log-likelihood

    .. math::
        \ell_r(\beta) = \sum_i \{z_{ri}\,\eta_{ri} - \log(1 + e^{\eta_{ri}})\}
                        - \tfrac{\lambda}{2} \sum_{j \ge 1} \beta_j^2,
        \qquad \eta_{ri} = d_{ri}^\top \beta,

    with Newton steps :math:`\beta \leftarrow \beta + t\,H^{-1} g`, where
    :math:`g = D^\top(z - \mu) - \lambda \tilde\beta`,
    :math:`H = D^\top \operatorname{diag}\{\mu(1-\mu)\} D + \lambda \tilde I`
    (:math:`\tilde I` is the identity without the intercept entry), all R systems solved
    at once by `np.linalg.solve` on (R, q, q). The step length t starts at 1 and is
    halved (up to 30 times) while the objective decreases, so a replicate never moves
    downhill. A replicate stops updating once
    :math:`\max_j |t\,\Delta\beta_j| \le \mathrm{tol}\,(1 + \max_j |\beta_j|)`.

    Parameters
    ----------
    design : (R, n, q) array
        Design matrices; column 0 must be the intercept (it is not penalised).
    z : (R, n) or (n,) array of 0/1
        Responses.
    max_iter : int
        Newton iterations at most.
    tol : float
        Relative step tolerance for convergence.
    ridge : float
        :math:`\lambda`, see `RIDGE`.

    Returns
    -------
    coef : (R, q) array
        Estimates (from the last iteration for replicates that did not converge).
    converged : (R,) bool array
        False where the step criterion was not met within ``max_iter`` (typically
        complete or quasi-complete separation, where only the ridge keeps slopes finite)
        or the iterates became non-finite.
    n_iter : (R,) int array
        Newton iterations used.
    """
    design = np.asarray(design, dtype=float)
    R, n, q = design.shape
    z = np.broadcast_to(np.asarray(z, dtype=float), (R, n))
    pen = np.full(q, float(ridge))
    pen[0] = 0.0

    def objective(X, zz, b):
        eta = np.matmul(X, b[..., None])[..., 0]
        log1pexp = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))  # stable log(1 + e^eta)
        return (zz * eta - log1pexp).sum(axis=1) - 0.5 * (pen * b**2).sum(axis=1), eta

    coef = np.zeros((R, q))
    converged = np.zeros(R, dtype=bool)
    failed = np.zeros(R, dtype=bool)
    n_iter = np.zeros(R, dtype=int)
    ll, eta = objective(design, z, coef)
    for _ in range(max_iter):
        active = ~converged & ~failed
        if not active.any():
            break
        every = active.all()  # views instead of copies while no replicate has stopped
        X, zz, b, e0 = ((design, z, coef, eta) if every else
                        (design[active], z[active], coef[active], eta[active]))
        mu = special.expit(e0)
        hess = np.matmul(X.transpose(0, 2, 1) * (mu * (1 - mu))[:, None, :], X) + np.diag(pen)
        grad = np.matmul(X.transpose(0, 2, 1), (zz - mu)[..., None])[..., 0] - pen * b
        try:
            step = np.linalg.solve(hess, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:  # only possible with ridge = 0 and a singular design
            failed[active] = True
            break
        t = np.ones(len(b))
        ll_old = ll[active]
        new = b + step
        ll_new, eta_new = objective(X, zz, new)
        for _h in range(30):
            # accept equal-up-to-rounding values: near the optimum the change is ~1e-16 |ll|
            worse = ~(ll_new >= ll_old - 1e-12 * (1 + np.abs(ll_old)))
            if not worse.any():
                break
            t[worse] /= 2
            new[worse] = b[worse] + t[worse, None] * step[worse]
            ll_new[worse], eta_new[worse] = objective(X[worse], zz[worse], new[worse])
        moved = np.abs(t[:, None] * step).max(axis=1)
        coef[active], ll[active], eta[active] = new, ll_new, eta_new
        n_iter[active] += 1
        bad = ~np.all(np.isfinite(new), axis=1) | ~np.isfinite(ll_new)
        done = ~bad & (moved <= tol * (1 + np.abs(new).max(axis=1)))
        idx = np.flatnonzero(active)
        failed[idx[bad]] = True
        converged[idx[done]] = True
    return coef, converged & ~failed, n_iter


def propensity_scores(X_trial: np.ndarray, X_external: np.ndarray, max_iter: int = 25, tol: float = 1e-10,
                      *, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    r"""Propensity of current-trial membership for each external patient.

    Per replicate, the logistic model
    :math:`\Pr(z = 1 \mid x) = e(x) = \operatorname{expit}(\beta_0 + x^\top\beta)`
    is fitted to the stacked current-trial (z = 1) and external (z = 0) patients by
    `logistic_irls` (batched Newton-Raphson with a :math:`10^{-8}` ridge on the slopes,
    see `RIDGE`).

    Parameters
    ----------
    X_trial : (R, n_trial, p) or (n_trial, p) array
        Covariates of the current-trial patients (all arms: randomisation makes them one
        sample of the trial population).
    X_external : (R, n_ext, p) or (n_ext, p) array
        Covariates of the external patients, same columns.
    max_iter, tol : int, float
        Passed to `logistic_irls`.
    ridge : float
        Slope penalty, see `RIDGE`.

    Returns
    -------
    ps : (R, n_ext) array
        Fitted :math:`e(x_i)` of the external patients.
    converged : (R,) bool array
        Newton convergence per replicate (False flags separation or non-finite fits).
    """
    Xt, Xe = _as_batch_matrix(X_trial, "X_trial"), _as_batch_matrix(X_external, "X_external")
    if Xt.shape[0] != Xe.shape[0] or Xt.shape[2] != Xe.shape[2]:
        raise ValueError(f"X_trial {Xt.shape} and X_external {Xe.shape} must share R and p")
    fit = _fit_ps(Xt, Xe, max_iter, tol, ridge)
    return fit["ps"][:, Xt.shape[1]:], fit["converged"]


def _fit_ps(Xt: np.ndarray, Xe: np.ndarray, max_iter: int, tol: float, ridge: float) -> dict[str, np.ndarray]:
    """The stacked design [1, X] (trial rows first), z, coefficients, fitted ps of all rows."""
    R, n_t, _ = Xt.shape
    n_e = Xe.shape[1]
    if n_t == 0 or n_e == 0:
        raise ValueError(f"both groups need patients; got n_trial={n_t}, n_ext={n_e}")
    design = np.concatenate([np.ones((R, n_t + n_e, 1)), np.concatenate([Xt, Xe], axis=1)], axis=2)
    z = np.concatenate([np.ones(n_t), np.zeros(n_e)])
    coef, converged, _ = logistic_irls(design, z, max_iter=max_iter, tol=tol, ridge=ridge)
    ps = special.expit(np.matmul(design, coef[..., None])[..., 0])
    return {"design": design, "z": z, "coef": coef, "converged": converged, "ps": ps}


def att_weights(ps: np.ndarray, truncate: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""ATT odds weights of the external patients and their Kish effective sample size.

    .. math::
        \tilde w_i = \frac{e_i}{1 - e_i}, \qquad
        w_i = n_{\text{ext}} \frac{\tilde w_i}{\sum_k \tilde w_k}, \qquad
        \text{ESS} = \frac{(\sum_i w_i)^2}{\sum_i w_i^2} \le n_{\text{ext}}.

    The odds weights reweight the external sample to the covariate distribution of the
    current trial (the ATT population); current-trial patients have weight 1 and are not
    returned. Normalising to sum :math:`n_{\text{ext}}` makes a power prior with
    :math:`a_0 = 1` worth exactly the external sample size. Note that the weighted
    external mean has sampling variance :math:`\sigma^2 / \text{ESS}` (Kish), not
    :math:`\sigma^2 / n_{\text{ext}}`: with unequal weights a power prior on these
    weights claims more information than the reweighted data carry. To borrow no more
    than the Kish ESS, pass ``w * ess[:, None] / n_ext`` as the weights (or lower
    :math:`a_0`), and report both ESS values.

    Parameters
    ----------
    ps : (R, n_ext) or (n_ext,) array
        Propensity of current-trial membership of each external patient, in [0, 1).
        Values within 1e-15 of 1 are clipped there (odds at most about 1e15).
    truncate : float in (0, 1], optional
        Truncation (capping, not trimming): the odds above their per-replicate
        ``truncate`` quantile (e.g. 0.99) are set to that quantile before normalising;
        no patient is dropped. None (default) keeps the weights as they are.

    Returns
    -------
    w : (R, n_ext) array
        Normalised weights, each row summing to n_ext.
    ess : (R,) array
        Kish effective sample size of each row.
    """
    w, _ = _att_weights_capped(ps, truncate)
    return w, _kish(w)


def _kish(w: np.ndarray) -> np.ndarray:
    return w.sum(axis=1) ** 2 / (w**2).sum(axis=1)


def _att_weights_capped(ps, truncate: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ATT weights and the mask of patients whose odds were capped."""
    ps = _as_batch_vector(ps, "ps")
    if np.any(~np.isfinite(ps)) or np.any((ps < 0) | (ps > 1)):
        raise ValueError("ps must be finite probabilities in [0, 1]")
    odds = (p := np.minimum(ps, 1 - 1e-15)) / (1 - p)
    capped = np.zeros(odds.shape, dtype=bool)
    if truncate is not None:
        if not 0 < truncate <= 1:
            raise ValueError(f"truncate must be a quantile in (0, 1]; got {truncate}")
        cap = np.quantile(odds, truncate, axis=1, keepdims=True)
        capped = odds > cap
        odds = np.minimum(odds, cap)
    total = odds.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("every replicate needs at least one external patient with ps > 0")
    return ps.shape[1] * odds / total, capped


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and reliability-weighted (unbiased for equal weights) variance over axis 1.

    x (R, n, p), w (R, n): var = sum w (x - m)^2 / (V1 - V2 / V1), V1 = sum w, V2 = sum w^2.
    """
    v1 = w.sum(axis=1)
    v2 = (w**2).sum(axis=1)
    m = np.einsum("rn,rnp->rp", w, x) / v1[:, None]
    var = np.einsum("rn,rnp->rp", w, (x - m[:, None, :]) ** 2) / (v1 - v2 / v1)[:, None]
    return m, var


def balance(X_trial: np.ndarray, X_external: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    r"""Covariate balance of the (weighted) external patients against the current trial.

    .. math::
        \text{SMD}_j = \frac{\bar x^{\text{trial}}_j - \bar x^{\text{ext}, w}_j}
                            {\sqrt{(s^2_{\text{trial}, j} + s^2_{\text{ext}, j}) / 2}},
        \qquad
        \text{VR}_j = \frac{s^{2}_{\text{ext}, w, j}}{s^2_{\text{trial}, j}},

    where :math:`\bar x^{\text{ext}, w}` and :math:`s^2_{\text{ext}, w}` are the
    weighted mean and the reliability-weighted variance
    :math:`\sum w (x - \bar x^w)^2 / (V_1 - V_2 / V_1)`. The SMD denominator is the
    pooled **unweighted** standard deviation (ddof = 1) of the two groups, the love-plot
    convention: it is the same before and after weighting, so a change in SMD reflects a
    change in the weighted mean only. Targets (REGULATORY.md §1): |SMD| < 0.1 (0.25
    tolerated), VR in [0.5, 2].

    Parameters
    ----------
    X_trial : (R, n_trial, p) or (n_trial, p) array
    X_external : (R, n_ext, p) or (n_ext, p) array
    w : (R, n_ext) or (n_ext,) array, optional
        External weights (e.g. from `att_weights`); None gives the raw balance.

    Returns
    -------
    dict with ``smd`` and ``variance_ratio``, each (R, p).
    """
    Xt, Xe = _as_batch_matrix(X_trial, "X_trial"), _as_batch_matrix(X_external, "X_external")
    if Xt.shape[0] != Xe.shape[0] or Xt.shape[2] != Xe.shape[2]:
        raise ValueError(f"X_trial {Xt.shape} and X_external {Xe.shape} must share R and p")
    R, n_e, _ = Xe.shape
    w = _weights_or_ones(w, (R, n_e))
    m_t, v_t = Xt.mean(axis=1), Xt.var(axis=1, ddof=1)
    v_e = Xe.var(axis=1, ddof=1)
    m_w, v_w = _weighted_mean_var(Xe, w)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant covariates give inf/nan, as they should
        smd = (m_t - m_w) / np.sqrt((v_t + v_e) / 2)
        vr = v_w / v_t
    return {"smd": smd, "variance_ratio": vr}


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
    y_ext = _as_batch_vector(y_ext, "y_ext")
    R = y_ext.shape[0]
    w = _weights_or_ones(w, y_ext.shape)
    a0 = _check_a0(a0, R)
    sigma = _per_replicate(sigma, R, "sigma")
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
    y_ext = _as_batch_vector(y_ext, "y_ext")
    if np.any((y_ext != 0) & (y_ext != 1)):
        raise ValueError("y_ext must be 0/1")
    R = y_ext.shape[0]
    w = _weights_or_ones(w, y_ext.shape)
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
    w = _weights_or_ones(w, time_ext.shape)
    a0 = _check_a0(a0, R)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0; got {epsilon}")
    events = a0 * (w * event_ext).sum(axis=1)
    exposure = a0 * (w * time_ext).sum(axis=1)
    return {"shape": epsilon + events, "rate": epsilon + exposure, "events": events, "exposure": exposure,
            "ess": a0 * w.sum(axis=1)}


def _survival_arrays(time, event, time_name: str, event_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked (R, n) follow-up times (finite, >= 0) and 0/1 event indicators."""
    time = _as_batch_vector(time, time_name)
    event = _as_batch_vector(event, event_name)
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
    from .borrowing import BetaMixture, prob_diff_greater

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
        w = _weights_or_ones(weights, (R, n_ext), "weights")
        return w, _kish(w), np.ones(R, dtype=bool)
    if X is None or X_ext is None:
        raise ValueError("give the covariates X and X_ext (for propensity-score weights) or weights")
    X = _as_batch_matrix(X, "X")
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
    y = _as_batch_vector(y, "y")
    arm = np.asarray(arm)
    y_ext = _as_batch_vector(y_ext, "y_ext")
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
    sigma = _per_replicate(sigma, R, "sigma")
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


# ---------------------------------------------------------------------- purely external comparison
def external_normal(y: np.ndarray, y_ext: np.ndarray, X: np.ndarray | None = None,
                    X_ext: np.ndarray | None = None, *, alpha: float = 0.025,
                    sided: Literal["one", "two"] = "one", direction: Literal["greater", "less"] = "greater",
                    level: float = 0.95, weights: np.ndarray | None = None, truncate: float | None = None,
                    se: Literal["sandwich", "hajek"] = "sandwich", max_iter: int = 25, tol: float = 1e-10,
                    ridge: float = RIDGE) -> dict[str, np.ndarray]:
    r"""Single-arm trial against weighted external controls: weighted difference in means.

    .. math::
        \hat\delta = \hat\mu_1 - \hat\mu_0, \qquad \hat\mu_1 = \bar y, \qquad
        \hat\mu_0 = \frac{\sum_i w_i y_i}{\sum_i w_i},

    with :math:`w` the ATT odds weights (`att_weights`), so that :math:`\hat\mu_0`
    estimates the external-control mean in the trial's covariate distribution and
    :math:`\hat\delta` the effect in the treated (ATT). Reference distribution: standard
    normal. Two robust standard errors:

    ``se="hajek"``: the Hajek (ratio-estimator) sandwich with the weights held fixed,

    .. math::
        \widehat{\operatorname{se}}^2 = \frac{s^2}{n}
            + \frac{\sum_i w_i^2 (y_i - \hat\mu_0)^2}{(\sum_i w_i)^2};

    it ignores the estimation of the propensity score, which for the ATT can err either
    way (Reifeis & Hudgens 2022, Am J Epidemiol 191:1092); in the tests' confounded
    scenario it is conservative (coverage 0.99 for a nominal 0.95).

    ``se="sandwich"`` (default): the M-estimation sandwich
    :math:`A^{-1} B A^{-\top}` of the stacked estimating equations
    :math:`\theta = (\beta, \mu_1, \mu_0)`, summed over the N = n + n_ext patients
    (:math:`z_i = 1` in the trial, :math:`d_i = [1, x_i]`,
    :math:`e_i = \operatorname{expit}(d_i^\top\beta)`),

    .. math::
        \psi_\beta = (z_i - e_i)\, d_i, \qquad
        \psi_{\mu_1} = z_i (y_i - \mu_1), \qquad
        \psi_{\mu_0} = (1 - z_i)\, w_i(\beta) (y_i - \mu_0),

    with :math:`B = \sum_i \psi_i\psi_i^\top`,
    :math:`A = -\sum_i \partial\psi_i / \partial\theta^\top`
    (:math:`\partial w_i / \partial\beta = w_i d_i`, the odds being
    :math:`e^{d_i^\top\beta}` up to a constant that cancels), and
    :math:`\widehat{\operatorname{se}}^2 = c^\top A^{-1} B A^{-\top} c`,
    :math:`c = e_{\mu_1} - e_{\mu_0}`. It accounts for the propensity-score estimation.
    Patients whose odds were capped by ``truncate`` are given
    :math:`\partial w_i / \partial\beta = 0` (the cap treated as fixed, an
    approximation). With ``weights`` given there is nothing estimated in the weights and
    both choices give the Hajek formula.

    Parameters
    ----------
    y : (R, n) array
        Outcomes of the single-arm (treated) current trial.
    y_ext : (R, n_ext) array
        External control outcomes.
    X, X_ext : (R, n, p) and (R, n_ext, p) arrays, optional
        Covariates for the propensity score; not needed when ``weights`` is given.
    alpha, sided, direction, level
        As in `trials.analyses`.
    weights, truncate, max_iter, tol, ridge
        As in `hybrid_normal`.
    se : {"sandwich", "hajek"}
        Standard error, see above.

    Returns
    -------
    dict of (R,) arrays: the keys of `trials.analyses` plus ``weights_ess`` and
    ``ps_converged``.
    """
    y = _as_batch_vector(y, "y")
    y_ext = _as_batch_vector(y_ext, "y_ext")
    R, n = y.shape
    n_ext = y_ext.shape[1]
    if y_ext.shape[0] != R:
        raise ValueError(f"y {y.shape} and y_ext {y_ext.shape} must share R")
    if se not in ("sandwich", "hajek"):
        raise ValueError(f"se must be 'sandwich' or 'hajek'; got {se!r}")
    if weights is not None:
        w = _weights_or_ones(weights, (R, n_ext), "weights")
        ok, fit, capped = np.ones(R, dtype=bool), None, None
    else:
        if X is None or X_ext is None:
            raise ValueError("give the covariates X and X_ext (for propensity-score weights) or weights")
        Xt, Xe = _as_batch_matrix(X, "X"), _as_batch_matrix(X_ext, "X_ext")
        if Xt.shape[:2] != (R, n) or Xe.shape[:2] != (R, n_ext) or Xt.shape[2] != Xe.shape[2]:
            raise ValueError(f"X {Xt.shape} and X_ext {Xe.shape} do not match y {y.shape} and y_ext {y_ext.shape}")
        fit = _fit_ps(Xt, Xe, max_iter, tol, ridge)
        ok = fit["converged"]
        w, capped = _att_weights_capped(fit["ps"][:, n:], truncate)
    sw = w.sum(axis=1)
    mu1 = y.mean(axis=1)
    mu0 = (w * y_ext).sum(axis=1) / sw
    est = mu1 - mu0
    if fit is None or se == "hajek":
        var0 = (w**2 * (y_ext - mu0[:, None]) ** 2).sum(axis=1) / sw**2
        std_error = np.sqrt(y.var(axis=1, ddof=1) / n + var0)
    else:
        std_error = np.sqrt(_att_sandwich_var(fit, y, y_ext, w, capped, mu1, mu0, ridge))
    out = finish(est, std_error, None, alpha, sided, direction, level)
    out.update(weights_ess=_kish(w), ps_converged=ok)
    return out


def _att_sandwich_var(fit, y, y_ext, w, capped, mu1, mu0, ridge) -> np.ndarray:
    """c' A^{-1} B A^{-T} c for theta = (beta, mu1, mu0); see `external_normal`."""
    D, z, e = fit["design"], fit["z"], fit["ps"]
    R, N, q = D.shape
    n = y.shape[1]
    y_all = np.concatenate([y, y_ext], axis=1)
    w_all = np.concatenate([np.zeros((R, n)), w], axis=1)
    dw_all = np.concatenate([np.zeros((R, n)), np.where(capped, 0.0, w)], axis=1)  # d w_i / d eta_i
    r1 = z * (y_all - mu1[:, None])
    r0 = w_all * (y_all - mu0[:, None])
    psi = np.concatenate([(z - e)[..., None] * D, r1[..., None], r0[..., None]], axis=2)
    B = np.matmul(psi.transpose(0, 2, 1), psi)
    pen = np.full(q, float(ridge))
    pen[0] = 0.0
    A = np.zeros((R, q + 2, q + 2))
    A[:, :q, :q] = np.matmul(D.transpose(0, 2, 1) * (e * (1 - e))[:, None, :], D) + np.diag(pen)
    A[:, q, q] = z.sum()
    A[:, q + 1, :q] = -np.einsum("rn,rnq->rq", dw_all * (y_all - mu0[:, None]), D)
    A[:, q + 1, q + 1] = w_all.sum(axis=1)
    c = np.zeros(q + 2)
    c[q], c[q + 1] = 1.0, -1.0
    u = np.linalg.solve(A.transpose(0, 2, 1), np.broadcast_to(c, (R, q + 2))[..., None])[..., 0]
    return np.einsum("rp,rpq,rq->r", u, B, u)
