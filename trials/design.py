"""Trial design specification: arms, endpoint, sample size, scenarios, analyses, decision.

A design is a frozen pydantic model that loads from and dumps to YAML; unknown keys are
errors, and every error names the file, the key path and what was expected. Effects are
stated on each family's natural scale and analysed on the analysis scale, with the null
effect and the side of benefit, as `insilico.trials.scales` decides; ``control_shift``
(drift of the current controls from history) is added to the control mean or rate
(normal, binary, count) or is the log hazard ratio of current vs historical controls
(time to event; for generator patients, a shift of the linear predictor).

Which analyses exist, what they need and what they take is declared by the method
registry (`insilico.trials.methods`); the design validates each analysis through its
method. Checks that need a generator's outcome family run in `check_runnable`.

The parts of a design (arms, endpoint, sample size, scenarios, priors) are in
`insilico.trials.components`.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, ClassVar, Literal

import yaml
from pydantic import Field, model_validator

from insilico.common.specfile import SpecFile, Strict

from . import scales
from .components import (
    BETA_SPENDING,
    SPENDING,
    Arm,
    Endpoint,
    ExternalControl,
    Family,
    FutilitySpending,
    GeneratorPatients,
    Historical,
    PriorSpec,
    SampleSize,
    Scenario,
)
from .methods import METHODS, method_of

if TYPE_CHECKING:
    import numpy as np


#: the analysis methods a design may name: every method of the registry (`trials.methods`)
Method = Enum("Method", {name: name for name in METHODS}, type=str)


class Analysis(Strict):
    name: str
    method: Method
    covariates: list[str] = Field(default_factory=list, description="ancova: covariate columns (generator patients).")
    a0: float | None = Field(None, ge=0, le=1, description="hybrid_power_prior: power-prior discount of the "
                             "external controls (0 = ignore them, 1 = pool).")
    weighting: str = Field("propensity", pattern="^(propensity|none)$", description="external methods: ATT "
                           "propensity-score weights of external patients (generator patients) or none.")
    prior: PriorSpec | None = Field(None, description="bayesian / robust_map: the control arm's prior (e.g. a MAP "
                                    "prior from historical studies).")
    robust_weight: float | None = Field(None, ge=0, lt=1, description="robust_map: weight of the vague "
                                        "component added to the prior (RBesT robustify).")
    treatment_prior: PriorSpec | None = Field(None, description="Bayesian methods: the treatment arm's prior "
                                              "(default: Beta(1, 1), N(0, 100 sd), Gamma(0.001, 0.001)).")
    historical: Historical | None = Field(None, description="power_prior / commensurate: historical controls.")
    kappa: float | None = Field(None, gt=0, description="commensurate: commensurability (precision of the "
                                "current-vs-historical difference).")
    sampler: Literal["conjugate", "mcmc"] = Field(
        "conjugate", description="Bayesian methods: 'conjugate' (exact posteriors, all replicates at once) or "
        "'mcmc' (PyMC/nutpie, one model for the replicates of a chunk, 2 chains x 1000 draws; needed for the "
        "non-conjugate logit_normal_mixture and log_normal_mixture priors; slower by orders of magnitude).")


#: multiplicity procedures; those that work on the comparisons' p-values (`trials.multiplicity`)
MULTIPLICITY = ("bonferroni", "none", "dunnett", "holm", "hochberg", "closed_simes", "graph")
STEPWISE = ("holm", "hochberg", "closed_simes", "graph")


class MultiplicityGraph(Strict):
    """A graphical multiple-testing procedure (Bretz et al. 2009), in treatment-arm order."""

    weights: list[float] = Field(..., description="Initial share of alpha of each comparison (>= 0, summing to 1).")
    transitions: list[list[float]] = Field(..., description="g_jl: the share of j's weight passed to l once j is "
                                           "rejected (zero diagonal, rows summing to at most 1).")


class Decision(Strict):
    alpha: float = Field(0.025, gt=0, lt=0.5, description="One-sided (or two-sided) significance level.")
    sided: str = Field("one", pattern="^(one|two)$", description="one: a one-sided test in `direction`; two: either side.")
    direction: str | None = Field(None, pattern="^(greater|less)$", description="Which side is benefit: "
                                  "'greater' (effect > 0, rate/hazard ratio > 1) or 'less'; default by endpoint "
                                  "(see module docs).")
    interval: float = Field(0.95, gt=0, lt=1, description="Confidence/credible interval level reported.")
    threshold: float | None = Field(None, gt=0, lt=1, description="Bayesian analyses: success when "
                                    "Pr(benefit | data) > threshold (default 1 - alpha).")
    calibrate_to_alpha: float | None = Field(None, gt=0, lt=0.5, description="Bayesian analyses: calibrate the "
                                             "threshold by simulation to this one-sided type I error.")
    calibrate_on: str | None = Field(None, description="Scenario whose replicates calibrate the threshold "
                                     "(default: the first with no effect and no drift).")
    multiplicity: str = Field(
        "bonferroni", pattern=f"^({'|'.join(MULTIPLICITY)})$",
        description="Several treatment arms, family-wise error alpha: bonferroni (each comparison at alpha / (arms - "
        "1)), dunnett (single step, the equicorrelated critical value; equal treatment allocations, one-sided), "
        "holm, hochberg, closed_simes (closed testing with Simes tests: Hommel) or graph (Bretz et al.: "
        "decision.graph) on the comparisons' p-values of fixed designs, or none (each at alpha).")
    graph: MultiplicityGraph | None = Field(None, description="multiplicity: graph — initial weights and "
                                            "transition matrix over the treatment-vs-control comparisons.")

    @model_validator(mode="after")
    def _check(self) -> Decision:
        if self.threshold is not None and self.calibrate_to_alpha is not None:
            raise ValueError("give threshold or calibrate_to_alpha, not both")
        if (self.multiplicity == "graph") != (self.graph is not None):
            raise ValueError("decision.multiplicity: graph and decision.graph go together")
        return self


class TrialDesign(SpecFile):
    _kind: ClassVar[str] = "trial design"

    seed: int = Field(..., ge=0, description="Root of every random stream (SeedSequence).")
    replicates: int = Field(..., ge=1, description="Simulated trials per scenario.")
    chunk_size: int = Field(1000, ge=1, description="Replicates per task; part of the design because streams "
                            "are keyed by (scenario, chunk).")
    arms: list[Arm] = Field(..., min_length=2, description="Control first, then one or more treatment arms "
                            "(each compared with control).")
    endpoint: Endpoint | None = None
    patients: GeneratorPatients | None = None
    sample_size: SampleSize
    external_control: ExternalControl | None = None
    scenarios: list[Scenario] = Field(..., min_length=1)
    analyses: list[Analysis] = Field(..., min_length=1)
    decision: Decision = Field(default_factory=Decision)

    @model_validator(mode="after")
    def _check(self) -> TrialDesign:
        if (self.endpoint is None) == (self.patients is None):
            raise ValueError("give exactly one of 'endpoint' (parametric patients) or 'patients' (a generator)")
        treatments = {a.name for a in self.arms[1:]}
        for sc in self.scenarios:
            unknown = sorted(set(sc.arm_effects or {}) - treatments)
            if unknown:
                raise ValueError(f"scenario '{sc.name}': arm_effects names {unknown}, not treatment arms "
                                 f"{sorted(treatments)}")
        for key, items in (("arms", self.arms), ("scenarios", self.scenarios), ("analyses", self.analyses)):
            names = [i.name for i in items]
            if len(set(names)) != len(names):
                raise ValueError(f"{key}: names must be unique, got {names}")
        family = self.endpoint.family.value if self.endpoint is not None else None
        for a in self.analyses:
            method_of(a).check(a, self, family)
        if self.decision.calibrate_to_alpha is not None:
            if not any(method_of(a).decides_by_probability for a in self.analyses):
                raise ValueError("decision.calibrate_to_alpha applies to Bayesian analyses; the design has none")
            if self.endpoint is not None or self.decision.calibrate_on is not None:  # else check_runnable
                name = self.calibration_scenario
                if name is None or name not in [s.name for s in self.scenarios]:
                    raise ValueError("decision.calibrate_to_alpha needs a null scenario (no effect, no drift) or "
                                     "decision.calibrate_on naming one")
        self._check_multiplicity()
        ss = self.sample_size
        if ss.stages is not None:
            bad = [a.name for a in self.analyses if not method_of(a).sequential]
            if bad:
                raise ValueError(f"analyses {bad} cannot be used at group-sequential looks")
            if self.decision.sided == "two" and (ss.futility is not None or ss.binding_futility):
                raise ValueError("two-sided group-sequential designs stop for efficacy on either side; "
                                 "futility bounds apply to one-sided designs")
            if ss.user_alpha_spending is not None and abs(ss.user_alpha_spending[-1] - self.comparison_alpha) > 1e-12:
                raise ValueError(f"user_alpha_spending must end at the comparison's alpha {self.comparison_alpha:g}, "
                                 f"got {ss.user_alpha_spending[-1]:g}")
            tte = (self.endpoint is not None and self.endpoint.family is Family.time_to_event) or (
                self.patients is not None and self.patients.cutoff is not None)
            if tte and ss.total is None:
                raise ValueError("a time-to-event design with stages (events) needs sample_size.total (patients)")
            if tte and self.endpoint is not None and self.endpoint.cutoff is not None:
                raise ValueError("with stages, a time-to-event design's looks are the stages' event counts: "
                                 "remove endpoint.cutoff")
            if not tte and self.endpoint is not None and ss.total is not None and ss.total != ss.stages[-1]:
                raise ValueError(f"sample_size.total ({ss.total}) must equal the last stage ({ss.stages[-1]})")
        if self.external_control is not None and self.external_control.source == "generator" and self.patients is None:
            raise ValueError("external_control.source 'generator' needs patients from a generator")
        if (self.external_control is not None and self.external_control.follow_up is not None
                and self.endpoint is not None and self.endpoint.family is not Family.time_to_event):
            raise ValueError("external_control.follow_up applies to time-to-event endpoints")
        if self.endpoint is not None:
            if self.endpoint.family is Family.binary:
                for s in self.scenarios:
                    p_c = self.endpoint.control_rate + s.control_shift
                    if not 0 < p_c < 1 or not 0 < p_c + s.effect < 1:
                        raise ValueError(f"scenario '{s.name}': rates {p_c:.3g} (control) and {p_c + s.effect:.3g} "
                                         "(treatment) must be in (0, 1): binary effects are risk differences")
            if self.endpoint.family is Family.time_to_event:
                for s in self.scenarios:
                    if s.effect <= 0:
                        raise ValueError(f"scenario '{s.name}': time-to-event effects are hazard ratios (> 0)")
                if self.endpoint.cutoff is None and self.sample_size.stages is None:
                    raise ValueError("a time_to_event endpoint needs a cutoff ({events: N} or {calendar: T}) "
                                     "or group-sequential stages (events)")
                ev = self.endpoint.cutoff.events if self.endpoint.cutoff is not None else self.sample_size.stages[-1]
                if ev is not None and ev > self.n_total:
                    raise ValueError(f"{ev} events exceed the {self.n_total} patients")
            if self.endpoint.family is Family.count:
                for s in self.scenarios:
                    if s.effect <= 0 or self.endpoint.control_rate + s.control_shift <= 0:
                        raise ValueError(f"scenario '{s.name}': count effects are rate ratios (> 0) and the "
                                         "shifted control rate must stay > 0")
        return self

    @property
    def calibration_scenario(self) -> str | None:
        """Scenario calibrating Bayesian thresholds (None when not calibrating): the given
        ``decision.calibrate_on``, else the first null scenario (`scales.scenario_kind`)."""
        if self.decision.calibrate_to_alpha is None:
            return None
        if self.decision.calibrate_on is not None:
            return self.decision.calibrate_on
        nulls = scales.scenarios_of_kind(self, scales.ScenarioKind.null)
        return nulls[0] if nulls else None

    @property
    def scale(self) -> scales.EffectScale:
        """How the design's effects are stated and estimated (`trials.scales`)."""
        return scales.effect_scale(self)

    @property
    def null_effect(self) -> float:
        """The ``effect`` of a scenario without treatment effect (1 for ratios, else 0)."""
        return self.scale.null

    # ------------------------------------------------------------------ I/O
    def to_yaml(self) -> str:
        # libyaml's emitter when PyYAML has it: the same text, 4x faster (written into every result)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return yaml.dump(self.model_dump(mode="json", exclude_none=True), Dumper=dumper, sort_keys=False)

    @property
    def direction(self) -> str:
        """Which side of the effect is benefit: explicit, or the scale's default."""
        return self.decision.direction if self.decision.direction is not None else self.scale.benefit

    @property
    def n_chunks(self) -> int:
        return -(-self.replicates // self.chunk_size)

    @property
    def n_total(self) -> int:
        ss = self.sample_size
        return ss.total if ss.total is not None else ss.stages[-1]

    @property
    def treated_share(self) -> float:
        w = [a.allocation for a in self.arms]
        return w[1] / sum(w)

    def arm_sizes(self) -> tuple[int, ...]:
        """Patients per arm of the whole trial (control first)."""
        v = self.arm_vector()
        return tuple(int((v == j).sum()) for j in range(len(self.arms)))

    def arm_vector(self) -> np.ndarray:
        """Each patient's arm (0 = control, 1.. = treatments) in randomisation order: a
        deterministic interleaving, so that every interim look's patients are allocated
        as planned (each new patient goes to the arm furthest below its share)."""
        import numpy as np

        if len(self.arms) == 2:
            i = np.arange(self.n_total + 1)
            cum = np.floor(i * self.treated_share + 1e-9)
            return np.diff(cum).astype(np.int8)
        w = np.array([a.allocation for a in self.arms], dtype=float)
        share = w / w.sum()
        counts = np.zeros(len(w))
        out = np.empty(self.n_total, dtype=np.int8)
        for i in range(self.n_total):
            j = int(np.argmax((i + 1) * share - counts))
            out[i] = j
            counts[j] += 1
        return out

    @property
    def comparisons(self) -> list[str]:
        """Treatment arms, each compared with control."""
        return [a.name for a in self.arms[1:]]

    def _check_multiplicity(self) -> None:
        dec, k = self.decision, len(self.arms) - 1
        if dec.multiplicity in ("bonferroni", "none"):
            return
        if k < 2:
            raise ValueError(f"decision.multiplicity: {dec.multiplicity} needs several treatment arms")
        if dec.multiplicity == "dunnett":
            if len({a.allocation for a in self.arms[1:]}) > 1 or dec.sided != "one":
                raise ValueError("decision.multiplicity: dunnett needs equal treatment-arm allocations and a "
                                 "one-sided test (its equicorrelated critical value)")
            return
        if self.sample_size.stages is not None:
            raise ValueError(f"decision.multiplicity: {dec.multiplicity} decides on p-values of fixed designs; "
                             "group-sequential multi-arm designs use bonferroni or dunnett")
        bayes = [a.name for a in self.analyses if method_of(a).decides_by_probability]
        if bayes:
            raise ValueError(f"decision.multiplicity: {dec.multiplicity} works on p-values; analyses {bayes} decide "
                             "by a posterior probability")
        if dec.graph is not None:
            from .multiplicity import check_graph

            check_graph(dec.graph.weights, dec.graph.transitions, k)

    def analysis_labels(self) -> list[tuple[str, object, int]]:
        """(label, analysis, treatment arm index) for every comparison: the analysis name
        with two arms, '<analysis>:<arm>' with several."""
        if len(self.arms) == 2:
            return [(a.name, a, 1) for a in self.analyses]
        return [(f"{a.name}:{arm.name}", a, j) for a in self.analyses for j, arm in enumerate(self.arms) if j]

    def per_comparison(self, alpha: float) -> float:
        """A design-wide error rate split over the treatment-vs-control comparisons: the level
        of each comparison's own test and interval (Bonferroni's for the p-value procedures,
        which then decide on the p-values together; Dunnett's 1 - Phi(c))."""
        k = len(self.arms) - 1
        rule = self.decision.multiplicity
        if rule == "none" or k == 1:
            return alpha
        if rule == "dunnett":
            from scipy.special import ndtr

            from insilico.trials.gsd import dunnett_critical_value

            a_t, a_c = self.arms[1].allocation, self.arms[0].allocation
            return float(ndtr(-dunnett_critical_value(k, alpha, a_t / (a_t + a_c))))
        return alpha / k

    @property
    def comparison_alpha(self) -> float:
        """Significance level of each treatment-vs-control comparison."""
        return self.per_comparison(self.decision.alpha)

    @property
    def calibration_alpha(self) -> float | None:
        """The one-sided type I error each comparison's threshold is calibrated to (or None)."""
        a = self.decision.calibrate_to_alpha
        return None if a is None else self.per_comparison(a)

    @property
    def looks(self) -> list[int]:
        """Cumulative patients (or events) at each analysis; one entry for a fixed design."""
        if self.sample_size.stages is not None:
            return list(self.sample_size.stages)
        if (self.endpoint is not None and self.endpoint.family is Family.time_to_event) or (
                self.patients is not None and self.patients.cutoff is not None):
            return [0]  # the cutoff decides
        return [self.n_total]

    def boundaries(self):
        """The group-sequential design (efficacy and futility z bounds), or None if fixed."""
        ss = self.sample_size
        if ss.stages is None:
            return None
        from insilico.trials.gsd import group_sequential_design

        rates = ss.information_rates or [s / ss.stages[-1] for s in ss.stages]
        beta_spending = ss.futility if isinstance(ss.futility, FutilitySpending) else None
        return group_sequential_design(
            rates, alpha=self.comparison_alpha, type_of_design=SPENDING[ss.spending], gamma=ss.spending_gamma,
            user_alpha_spending=ss.user_alpha_spending, binding_futility=ss.binding_futility,
            futility=BETA_SPENDING[beta_spending.spending] if beta_spending else ss.futility,
            futility_gamma=beta_spending.gamma if beta_spending else None,
            beta=beta_spending.beta if beta_spending else 0.2, sided=2 if self.decision.sided == "two" else 1)


def check_runnable(design: TrialDesign) -> None:
    """Checks that need the design's generator (resolved and saved): every analysis applies
    to its outcome family, and a calibrated design has a null scenario. `engine.run` calls
    it, so every design that passes validation runs."""
    if not scales.known(design):
        raise ValueError(f"patients.generator is still {scales.UNRESOLVED!r}: the study pipeline replaces it "
                         "with the validated generator; give a fitted generator's folder to simulate alone")
    family = design.scale.family
    for a in design.analyses:
        method_of(a).check(a, design, family)
    if design.decision.calibrate_to_alpha is not None and design.calibration_scenario is None:
        raise ValueError("decision.calibrate_to_alpha needs a null scenario (no effect, no drift) or "
                         "decision.calibrate_on naming one")
