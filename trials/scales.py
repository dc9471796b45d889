"""Effect scales and scenario kinds: decided here, once, for every part of the package.

**Effect scale.** A design states effects on its endpoint family's natural scale; the
analyses estimate them on their own (analysis) scale:

============== ============================= ============================= =========== ========
family         natural scale (``effect``)    analysis scale                null effect benefit
============== ============================= ============================= =========== ========
normal         mean difference               mean difference               0           greater
binary         risk difference               risk difference               0           greater
count          rate ratio                    log rate ratio                1           less
time to event  hazard ratio                  log hazard ratio              1           less
============== ============================= ============================= =========== ========

For patients drawn from a fitted generator the effect shifts each patient's linear
predictor: a mean difference (normal outcome), an odds ratio (bernoulli), a rate ratio
(poisson) or a hazard ratio (survival), the last two conditional on the covariates. An
odds or a conditional hazard ratio is not what an unadjusted analysis estimates (the
effect is not *collapsible*): such replicates carry no true effect (NaN), so bias and
coverage are not reported.

**Scenario kind.** A scenario is *null* when every treatment arm has the null effect
(``arm_effects`` included) and no design prior, *drift* when it is null apart from a
``control_shift`` of the current controls, and an *alternative* otherwise (a design
prior on the effect, assurance, is an alternative). The engine stores the kind on the
results (coordinate ``scenario_kind``); calibration, the results suite, the V&V checks
and the reports read it from there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from insilico.virtual_patients.generator import saved_spec

#: a generator's outcome family -> the endpoint family its trials are analysed as
GENERATOR_FAMILY = {"normal": "normal", "bernoulli": "binary", "poisson": "count",
                    "weibull": "time_to_event", "piecewise_exponential": "time_to_event"}

#: where a design's generator is not known yet (the study pipeline replaces it)
UNRESOLVED = "@validated"


@dataclass(frozen=True)
class EffectScale:
    """How one design's effects are stated, estimated and judged."""

    family: str        # endpoint family: normal | binary | count | time_to_event
    ratio: bool        # natural-scale effects are ratios (analysed on the log scale)
    natural: str       # the natural scale in words, e.g. "hazard ratio"
    estimand: str      # what the analyses estimate, e.g. "log hazard ratio"
    benefit: str       # the side of benefit by default: "greater" or "less"
    collapsible: bool  # the simulated effect is what the analyses estimate

    @property
    def null(self) -> float:
        """The natural-scale effect of no treatment effect (1 for ratios, else 0)."""
        return 1.0 if self.ratio else 0.0

    def to_analysis(self, effect):
        """Natural-scale effect(s) on the analysis scale (log of a ratio)."""
        return np.log(effect) if self.ratio else effect

    def to_natural(self, effect):
        return np.exp(effect) if self.ratio else effect


_ESTIMAND = {"normal": "mean difference", "binary": "risk difference", "count": "log rate ratio",
             "time_to_event": "log hazard ratio"}
_PARAMETRIC = {"normal": "mean difference", "binary": "risk difference", "count": "rate ratio",
               "time_to_event": "hazard ratio"}
_GENERATOR = {"normal": "mean difference", "binary": "odds ratio (conditional on covariates)",
              "count": "rate ratio", "time_to_event": "hazard ratio (conditional on covariates)"}


def parametric_scale(family: str) -> EffectScale:
    """The scale of a parametric endpoint family."""
    ratio = family in ("count", "time_to_event")
    return EffectScale(family, ratio, _PARAMETRIC[family], _ESTIMAND[family], "less" if ratio else "greater", True)


def generator_scale(family: str) -> EffectScale:
    """The scale of generator patients whose outcome is analysed as `family`."""
    return EffectScale(family, family != "normal", _GENERATOR[family], _ESTIMAND[family],
                       "less" if family in ("count", "time_to_event") else "greater",
                       family in ("normal", "count"))


@functools.lru_cache(maxsize=16)
def _generator_family(path: str, _mtime: float) -> str:
    return GENERATOR_FAMILY[saved_spec(path).outcome.family.value]


def generator_family(path: str | Path) -> str:
    """The endpoint family of a saved generator's patients (read from its spec, cached)."""
    spec = Path(path) / "spec.yaml"
    return _generator_family(str(Path(path).resolve()), spec.stat().st_mtime if spec.exists() else 0.0)


def known(design: Any) -> bool:
    """Whether the design's family is known (its generator, if any, is resolved)."""
    return design.endpoint is not None or design.patients.generator != UNRESOLVED


def effect_scale(design: Any) -> EffectScale:
    """The effect scale of a design (a `insilico.trials.design.TrialDesign`)."""
    if design.endpoint is not None:
        return parametric_scale(design.endpoint.family.value)
    if design.patients.cutoff is not None:  # only survival generators take a cut-off
        return generator_scale("time_to_event")
    return generator_scale(generator_family(design.patients.generator))


class ScenarioKind(str, Enum):
    null = "null"
    drift = "drift"
    alternative = "alternative"


def arm_effect(scenario: Any, arm: str) -> float:
    """A treatment arm's natural-scale effect in a scenario (its ``arm_effects`` entry or ``effect``)."""
    return float((scenario.arm_effects or {}).get(arm, scenario.effect))


def scenario_kind(design: Any, scenario: Any, null: float | None = None) -> ScenarioKind:
    """Null, drift or alternative (module docs); `null` defaults to the design's null effect."""
    null = effect_scale(design).null if null is None else null
    effects = [arm_effect(scenario, arm.name) for arm in design.arms[1:]]
    if scenario.effect_prior is None and all(e == null for e in effects):
        return ScenarioKind.drift if scenario.control_shift != 0 else ScenarioKind.null
    return ScenarioKind.alternative


def scenario_kinds(design: Any) -> list[ScenarioKind]:
    """Every scenario's kind, in design order."""
    null = effect_scale(design).null
    return [scenario_kind(design, s, null) for s in design.scenarios]


def scenarios_of_kind(design: Any, kind: ScenarioKind | str) -> list[str]:
    return [s.name for s, k in zip(design.scenarios, scenario_kinds(design), strict=True) if k == kind]
