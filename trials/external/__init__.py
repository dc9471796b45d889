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

The subpackage: `propensity` (scores, weights, balance), `hybrid` (weighted power priors and
the hybrid analyses) and `single_arm` (comparison with external controls only).
"""

from .hybrid import (
    EPSILON,
    gamma_ratio_tails,
    hybrid_binary,
    hybrid_exponential,
    hybrid_normal,
    log_gamma_ratio_quantile,
    prob_beta_greater,
    weighted_power_prior_binary,
    weighted_power_prior_exponential,
    weighted_power_prior_normal,
)
from .propensity import (
    RIDGE,
    att_weights,
    balance,
    logistic_irls,
    propensity_scores,
)
from .single_arm import external_normal

__all__ = ["EPSILON", "RIDGE", "att_weights", "balance", "external_normal", "gamma_ratio_tails", "hybrid_binary", "hybrid_exponential", "hybrid_normal", "log_gamma_ratio_quantile", "logistic_irls", "prob_beta_greater", "propensity_scores", "weighted_power_prior_binary", "weighted_power_prior_exponential", "weighted_power_prior_normal"]
