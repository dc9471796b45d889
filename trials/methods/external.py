"""Analyses with external controls: hybrid (weighted power prior) and purely external (`trials.external`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import external
from .base import AnalysisMethod, fmt, patient_counts, register


class _External(AnalysisMethod):
    external = True
    parameters = frozenset({"weighting"})

    def details(self, analysis: Any, design: Any, family: str) -> list[str]:
        out = [f"a0 = {fmt(analysis.a0)}"] if analysis.a0 is not None else []
        return [*out, f"weighting: {analysis.weighting}"]

    @staticmethod
    def weights(analysis: Any, data: dict) -> tuple:
        """(X, X_ext, w): covariates of trial and external patients for ATT propensity
        weights, or none and every external patient weighing 1 (parametric patients, or
        ``weighting: none``)."""
        X, X_ext = (data.get("X"), data.get("X_ext")) if analysis.weighting == "propensity" else (None, None)
        w = None if X is not None else np.ones((data["time_ext"] if "time_ext" in data else data["y_ext"]).shape)
        return X, X_ext, w


@register
class HybridPowerPrior(_External):
    name = "hybrid_power_prior"
    title = "hybrid power prior"
    families = frozenset({"normal", "binary", "time_to_event"})
    parameters = frozenset({"weighting", "a0"})
    required = {"a0": "a0 in [0, 1]"}
    decides_by_probability = True
    borrows = True

    def analyse(self, analysis, data, common, R, seed=None):
        X, X_ext, w = self.weights(analysis, data)
        family = data["family"]
        if family == "time_to_event":
            res = external.hybrid_exponential(data["time"], data["event"], data["arm"], data["time_ext"],
                                              data["event_ext"], X, X_ext, a0=analysis.a0, weights=w, **common)
        elif family == "binary":
            res = external.hybrid_binary(data["y"], data["arm"], data["y_ext"], X, X_ext, a0=analysis.a0,
                                         weights=w, **common)
        else:
            res = external.hybrid_normal(data["y"], data["arm"], data["y_ext"], X, X_ext, a0=analysis.a0,
                                         sigma=data["sigma"], weights=w, **common)
        if common["sided"] == "one":
            # success when Pr(benefit | data) > the decision threshold (default 1 - alpha)
            res["decision"] = (res["posterior_prob"] > data["threshold"]).astype(np.int8)
        return patient_counts(res, data, R)

    def prior_ess(self, analysis, design, family):
        return None, None, "a0 · Σ w (power prior on external controls; mean over replicates)"

    def prior_text(self, analysis, design, family):
        return f"power prior on external controls, a0 = {fmt(analysis.a0)}"

    def prior_source(self, analysis, design):
        ext = design.external_control
        return f"{ext.n} external controls per trial ({ext.source}), weighting: {analysis.weighting}"


@register
class ExternalComparison(_External):
    name = "external_comparison"
    title = "external comparison"
    families = frozenset({"normal"})

    def analyse(self, analysis, data, common, R, seed=None):
        X, X_ext, w = self.weights(analysis, data)
        treated = data["arm"] == 1
        res = external.external_normal(data["y"][:, treated], data["y_ext"],
                                       X[:, treated] if X is not None else None, X_ext, weights=w, **common)
        return patient_counts(res, data, R)
