r"""Conjugate Bayesian borrowing kernels, vectorised over replicates.

Plain numpy/scipy kernels for designs that borrow historical control information
through conjugate mixture priors (the RBesT toolbox, Novartis): mixture priors and their
conjugate updates, the meta-analytic-predictive (MAP) prior and its robust version,
prior effective sample size (ESS), two-arm posterior-probability decisions, exact
operating characteristics of binary two-arm designs, power and commensurate priors, and
threshold calibration.  Formulas and conventions follow RBesT 1.9 and the papers cited;
the code is our own.

Shapes
------
A mixture holds parameter arrays of shape ``batch_shape + (K,)``: ``(K,)`` for a single
prior, ``(R, K)`` for the posteriors of ``R`` replicates (one row per replicate).  Data
arrays given to ``posterior`` broadcast against ``batch_shape``, so a whole chunk of
replicates is one call.  Component weights of a posterior are the prior weights times
each component's marginal likelihood, renormalised per replicate:

.. math:: \tilde w_{rk} = \frac{w_k\, m_k(y_r)}{\sum_j w_j\, m_j(y_r)}.

References
----------
Schmidli H. et al. (2014) Robust meta-analytic-predictive priors in clinical trials with
historical control information. Biometrics 70(4):1023-1032.
Neuenschwander B., Weber S., Schmidli H., O'Hagan A. (2020) Predictively consistent prior
effective sample sizes. Biometrics 76(2):578-587.
Morita S., Thall P.F., Mueller P. (2008) Determining the effective sample size of a
parametric prior. Biometrics 64(2):595-602.
Ibrahim J.G., Chen M.-H. (2000) Power prior distributions for regression models.
Statistical Science 15(1):46-60.
Hobbs B.P., Carlin B.P., Mandrekar S.J., Sargent D.J. (2011) Hierarchical commensurate and
power prior models for adaptive incorporation of historical information in clinical
trials. Biometrics 67(3):1047-1056.

The subpackage: `mixtures` (beta, normal, gamma mixtures on `base`), `difference`
(posterior probabilities of a difference, on `quadrature`), `information` (prior ESS), `decisions`,
`historical` (power and commensurate priors), `fitting` (EM mixture fits) and `map`.
"""

from .base import MixtureBase
from .decisions import (
    ExactThresholdCalibration,
    ThresholdCalibration,
    calibrate_threshold,
    calibrate_threshold_exact,
    decision_boundary_binary,
    decision_table_binary,
    effect_for_power,
    oc2s_binary,
)
from .difference import prob_diff_greater
from .fitting import MixtureFit, auto_fit_mixture, fit_beta_mixture, fit_normal_mixture
from .historical import (
    commensurate_prior_binary,
    commensurate_prior_normal,
    power_prior_binary,
    power_prior_count,
    power_prior_ess,
    power_prior_normal,
)
from .information import ess
from .map import MapPrior, map_prior_binary, map_prior_normal
from .mixtures import BetaMixture, GammaMixture, NormalMixture

__all__ = ["MixtureBase", "BetaMixture", "NormalMixture", "GammaMixture", "ess", "prob_diff_greater", "decision_boundary_binary", "decision_table_binary", "oc2s_binary", "effect_for_power", "calibrate_threshold", "calibrate_threshold_exact", "ThresholdCalibration", "ExactThresholdCalibration", "power_prior_binary", "power_prior_count", "power_prior_normal", "power_prior_ess", "commensurate_prior_normal", "commensurate_prior_binary", "MixtureFit", "fit_beta_mixture", "fit_normal_mixture", "auto_fit_mixture", "MapPrior", "map_prior_binary", "map_prior_normal"]
