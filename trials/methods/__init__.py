"""Analysis methods, one class each, found by name in `METHODS` (see `base`)."""

from . import frequentist, survival, external, bayesian  # noqa: I001 - registration order is the documented order
from .base import METHODS, AnalysisMethod, method_of, register

__all__ = ["METHODS", "AnalysisMethod", "bayesian", "external", "frequentist", "method_of", "register", "survival"]
