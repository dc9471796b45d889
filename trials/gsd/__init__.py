r"""Group-sequential designs: error-spending boundaries and exact crossing probabilities
(plain numpy/scipy). Trials are simulated by the engine (`trials.engine`).

Canonical joint distribution
----------------------------
With information fractions :math:`0 < t_1 < \dots < t_K = 1` and drift :math:`\theta`
(the mean of the final z statistic), the sequential z statistics satisfy

.. math::

    Z_k \sim N(\theta\sqrt{t_k}, 1), \qquad
    \operatorname{Cov}(Z_j, Z_k) = \sqrt{t_j / t_k}\ (j \le k),

i.e. :math:`S_k = Z_k\sqrt{t_k}` has independent increments
:math:`S_k - S_{k-1} \sim N(\theta\Delta_k, \Delta_k)`, :math:`\Delta_k = t_k - t_{k-1}`.
Stage-wise crossing probabilities are computed by recursive numerical integration of the
sub-density of :math:`Z_k` on the continuation region (Armitage, McPherson & Rowe 1969;
Jennison & Turnbull 2000, ch. 19): the J&T grid of :math:`6r - 1` points per stage
(default ``r = 32``), Simpson's rule between grid points. Accuracy is far below 1e-8
for the designs here (checked against ``r = 128`` in the tests).

Error spending (one-sided level :math:`\alpha`, as rpact's ``typeOfDesign``)
-------------------------------------------------------------------------
* ``"asOF"`` Lan-DeMets O'Brien-Fleming type: :math:`\alpha(t) = 2 - 2\Phi(z_{1-\alpha/2}/\sqrt{t})`
* ``"asP"`` Lan-DeMets Pocock type: :math:`\alpha(t) = \alpha \log(1 + (e - 1)t)`
* ``"asHSD"`` Hwang-Shih-DeCani: :math:`\alpha(1 - e^{-\gamma t})/(1 - e^{-\gamma})`
  (:math:`\alpha t` at :math:`\gamma = 0`)
* ``"asKD"`` Kim-DeMets power family: :math:`\alpha t^{\gamma}`
* ``"P"`` / ``"OF"``: the classical constant Pocock and O'Brien-Fleming boundaries
  :math:`c_k = C` and :math:`c_k = C/\sqrt{t_k}` with :math:`C` solving total crossing
  probability :math:`= \alpha`.

Efficacy boundary :math:`u_k` solves
:math:`P_0(Z_j < u_j, j < k;\ Z_k \ge u_k) = \alpha(t_k) - \alpha(t_{k-1})`.

Futility (always *non-binding* for the efficacy boundaries unless ``binding_futility``)
--------------------------------------------------------------------------------------
* fixed z bounds: ``futility=[l_1, ..., l_{K-1}]`` (``-inf`` = none at that look);
* beta spending ``futility="bsOF" | "bsP" | "bsHSD" | "bsKD"`` (same families with
  :math:`\beta` in place of :math:`\alpha`): for a drift :math:`\theta`, :math:`l_k` solves
  :math:`P_\theta(l_j < Z_j < u_j, j<k;\ Z_k < l_k) = \beta(t_k) - \beta(t_{k-1})` (capped at
  :math:`u_k`), and :math:`\theta` is solved so that :math:`l_K = u_K`, i.e. power is exactly
  :math:`1-\beta` when futility stops are obeyed. This is rpact's construction for
  ``typeBetaSpending`` with ``bindingFutility = FALSE`` and reproduces its futility bounds
  and shift.

Simulation
----------
Trials are simulated by the engine (`trials.engine`, ``insilico simulate``): a design's
``sample_size.stages`` with ``spending`` give these boundaries, and each look's statistic is
compared with them (a trial stops at the first look with :math:`Z_k \ge u_k`, or for
:math:`k < K` with :math:`Z_k < l_k`; the last look always ends it).

References: Jennison C, Turnbull BW (2000) *Group Sequential Methods with Applications to
Clinical Trials*, ch. 2, 7, 19; Lan KKG, DeMets DL (1983) Biometrika 70:659-663;
Hwang IK, Shih WJ, DeCani JS (1990) Stat Med 9:1439-1445; Schoenfeld D (1981) Biometrika
68:316-319; Dunnett CW (1955) JASA 50:1096-1121.

The subpackage: `boundaries` (spending, boundaries, crossing probabilities) and
`characteristics` (exact operating characteristics and sample-size helpers).
"""

from .boundaries import (
    GroupSequentialDesign,
    crossing_probabilities,
    fixed_sample_design,
    group_sequential_design,
    spending_function,
)
from .characteristics import (
    ExactCharacteristics,
    analysis_time_exponential,
    drift_for_power,
    dunnett_critical_value,
    exact_characteristics,
    expected_events_exponential,
    logrank_drift,
    means_drift,
    power_t_test,
    power_z_test,
)

__all__ = ["GroupSequentialDesign", "ExactCharacteristics", "spending_function", "crossing_probabilities", "group_sequential_design", "fixed_sample_design", "exact_characteristics", "drift_for_power", "means_drift", "logrank_drift", "power_z_test", "power_t_test", "expected_events_exponential", "analysis_time_exponential", "dunnett_critical_value"]
