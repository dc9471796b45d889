r"""Treatment-effect models that turn a control-outcome generator into drug-response twins.

The individual treatment effect acts on the outcome model's link scale (identity in
outcome units for normal, log-odds for bernoulli, log-rate for poisson, log-hazard for
weibull):

.. math::

    \eta_i^{(1)} = \eta_i^{(0)} + \delta_i,\qquad
    \delta_i = \delta_0(d_i) + \sum_c m_c\,(x_{ic} - \bar x_c)

with :math:`\delta_0` one of

* ``link_shift``: a constant ``value`` (mean difference, log odds ratio, log rate ratio);
* ``hazard_ratio``: :math:`\log(\text{value})` (weibull outcomes);
* ``emax``: :math:`E_0 + E_{max} d^h / (ED_{50}^h + d^h)` of the patient's dose d.

``modifiers`` are effect modifiers: link-scale change of the effect per unit of a
continuous/count covariate (centred at its fitting-data mean) or for the second level of
a binary covariate.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from insilico.common.errors import InputError
from insilico.common.specfile import SpecFile


class EffectKind(str, Enum):
    link_shift = "link_shift"
    hazard_ratio = "hazard_ratio"
    emax = "emax"


class TreatmentEffect(SpecFile):
    _kind: ClassVar[str] = "treatment effect"

    kind: EffectKind = Field(..., description="link_shift | hazard_ratio | emax")
    value: float | None = Field(None, description="link_shift: link-scale effect; hazard_ratio: HR > 0.")
    e0: float = Field(0.0, description="Emax: effect at dose 0 (link scale).")
    emax: float | None = Field(None, description="Emax: maximal effect (link scale).")
    ed50: float | None = Field(None, gt=0, description="Emax: dose giving half the maximal effect.")
    hill: float = Field(1.0, gt=0, description="Emax: Hill coefficient.")
    dose: str = Field("dose", description="Emax: column holding each patient's dose.")
    modifiers: dict[str, float] = Field(default_factory=dict, description="Effect modifiers per covariate.")

    @model_validator(mode="after")
    def _check(self) -> TreatmentEffect:
        if self.kind is EffectKind.emax:
            if self.emax is None or self.ed50 is None:
                raise ValueError("an emax effect needs 'emax' and 'ed50'")
        elif self.value is None:
            raise ValueError(f"a {self.kind.value} effect needs 'value'")
        if self.kind is EffectKind.hazard_ratio and self.value is not None and self.value <= 0:
            raise ValueError(f"hazard_ratio must be > 0, got {self.value}")
        return self

    def base(self, df: pd.DataFrame) -> np.ndarray:
        """delta_0 for each patient (before modifiers)."""
        n = len(df)
        if self.kind is EffectKind.link_shift:
            return np.full(n, float(self.value))
        if self.kind is EffectKind.hazard_ratio:
            return np.full(n, float(np.log(self.value)))
        if self.dose not in df.columns:
            raise InputError(f"the emax effect reads doses from column '{self.dose}', which the data lack")
        d = df[self.dose].to_numpy(dtype=float)
        if (d < 0).any() or not np.isfinite(d).all():
            raise InputError(f"dose column '{self.dose}' must hold finite doses >= 0")
        dh = d**self.hill
        return self.e0 + self.emax * dh / (self.ed50**self.hill + dh)
