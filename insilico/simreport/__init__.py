"""The simulation report: from a results file to HTML and PDF (`report.simulation_report`)."""

from .numbers import oc_rows, prior_ess_rows, sample_size_rows, threshold_rows
from .report import simulation_context, simulation_figures, simulation_report, stored_kinds
from .words import DERIVED, classify_scenarios, derived_estimand, success_criterion

__all__ = ["DERIVED", "classify_scenarios", "derived_estimand", "oc_rows", "prior_ess_rows", "sample_size_rows",
           "simulation_context", "simulation_figures", "simulation_report", "stored_kinds", "success_criterion",
           "threshold_rows"]
