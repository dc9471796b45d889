"""Frequentist two-arm analyses on patient-level data or per-arm summaries (`trials.analyses`)."""

from __future__ import annotations

from typing import Any

from .. import analyses as kernels
from .base import AnalysisMethod, patient_counts, register, summary_counts


def _summaries_or(data: dict, patient_kernel, summary_kernel, common: dict, R: int) -> dict:
    """A test run on the look's per-arm summaries when the engine kept only those (parametric
    normal/binary designs), else on the patients."""
    if "summaries" in data:
        # group-sequential one-sided looks: p-values only at the stopping look (`looks.sequential`)
        res = summary_kernel(data["summaries"], **common, p_value=not data["statistic_looks"])
        return summary_counts(res, data["summaries"], R)
    return patient_counts(patient_kernel(data["y"], data["arm"], **common), data, R)


@register
class DifferenceInMeans(AnalysisMethod):
    name = "difference_in_means"
    title = "difference in means (pooled t test)"
    families = frozenset({"normal"})
    sequential = True
    runs_on_summaries = True

    def analyse(self, analysis, data, common, R, seed=None):
        return _summaries_or(data, kernels.difference_in_means, kernels.difference_in_means_summary, common, R)


class _Adjusted(AnalysisMethod):
    """Covariate-adjusted analyses of generator patients."""

    families = frozenset({"normal"})
    sequential = True
    needs_covariates = True

    def n_covariates(self, analysis: Any) -> int:
        """Covariates the adjusted analysis estimates a coefficient for."""
        return max(len(analysis.covariates), 1)


@register
class Ancova(_Adjusted):
    name = "ancova"
    title = "ANCOVA"
    parameters = frozenset({"covariates"})

    def analyse(self, analysis, data, common, R, seed=None):
        res = kernels.ancova(data["y"], data["arm"], data["covariates"](analysis.covariates), **common)
        return patient_counts(res, data, R)

    def details(self, analysis: Any, design: Any, family: str) -> list[str]:
        return ["covariates " + ", ".join(analysis.covariates)] if analysis.covariates else []


@register
class Procova(_Adjusted):
    name = "procova"
    title = "PROCOVA"

    def n_covariates(self, analysis: Any) -> int:
        return 1  # the prognostic score

    def analyse(self, analysis, data, common, R, seed=None):
        return patient_counts(kernels.procova(data["y"], data["arm"], data["score"], **common), data, R)


@register
class TwoProportions(AnalysisMethod):
    name = "two_proportions"
    title = "two proportions (pooled z test)"
    families = frozenset({"binary"})
    sequential = True
    runs_on_summaries = True

    def analyse(self, analysis, data, common, R, seed=None):
        return _summaries_or(data, kernels.two_proportions, kernels.two_proportions_summary, common, R)


@register
class PoissonRateRatio(AnalysisMethod):
    name = "poisson_rate_ratio"
    title = "Poisson rate ratio (Wald)"
    families = frozenset({"count"})
    sequential = True

    def analyse(self, analysis, data, common, R, seed=None):
        res = kernels.poisson_rate_ratio(data["y"], data["arm"], data["exposure"], **common)
        return patient_counts(res, data, R)
