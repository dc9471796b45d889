"""Time-to-event analyses at every look from one risk-set computation (`trials.survival`)."""

from __future__ import annotations

from .. import survival
from .base import AnalysisMethod, patient_counts, register


class _RiskSetTest(AnalysisMethod):
    families = frozenset({"time_to_event"})
    sequential = True
    uses_follow_up = False
    kernel = staticmethod(survival.logrank_at)

    def analyse(self, analysis, data, common, R, seed=None):
        risk = survival.comparison_risk_sets(data)
        k = data["look"]
        res = self.kernel(risk, k, **common)
        res["n_patients"] = risk["entered"][:, k].astype(float)
        res["n_events"] = risk["events"][:, k].astype(float)
        return patient_counts(res, data, R)


@register
class Logrank(_RiskSetTest):
    name = "logrank"
    title = "log-rank test"
    kernel = staticmethod(survival.logrank_at)
    stops_in_risk_sets = True


@register
class CoxScore(_RiskSetTest):
    name = "cox_score"
    title = "Cox score test"
    kernel = staticmethod(survival.cox_at)
    keeps_risk_sets = True
