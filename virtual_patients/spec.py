"""Generator specification: what a virtual-patient generator models, as data.

A spec is a frozen pydantic model that loads from and dumps to YAML. Unknown keys are
errors, and every error names the file, the key path and what was expected.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

import yaml
from pydantic import Field, model_validator

from insilico.common.specfile import SpecFile, Strict
from insilico.common.tables import Column, Group, Kind, TableSchema, level_key


class CovariateType(str, Enum):
    continuous = "continuous"
    binary = "binary"
    categorical = "categorical"
    count = "count"


class Transform(str, Enum):
    """Monotone transform applied to a continuous covariate before modelling it as normal.

    ``quantile`` is a Gaussian-copula margin: the value's empirical CDF (stored as 199
    interpolated quantiles, never raw rows) mapped to normal scores. Use it for skewed
    values with point masses (lab values with many zeros, counts with long tails); the
    dependence on other covariates stays Bayesian, the margin's shape is the data's.
    """

    none = "none"
    log = "log"
    log1p = "log1p"
    quantile = "quantile"


class OutcomeFamily(str, Enum):
    normal = "normal"
    bernoulli = "bernoulli"
    poisson = "poisson"
    weibull = "weibull"
    piecewise_exponential = "piecewise_exponential"


SURVIVAL_FAMILIES = frozenset({OutcomeFamily.weibull, OutcomeFamily.piecewise_exponential})


Level = str | int | float


class Covariate(Strict):
    name: str = Field(..., description="Column name in the patient-level data.")
    type: CovariateType = Field(..., description="continuous | binary | categorical | count")
    levels: list[Level] | None = Field(
        None,
        description=(
            "Allowed values of a binary (exactly two: reference first) or categorical "
            "covariate. Values outside the list fail the data contract. Learned from the "
            "data when omitted."
        ),
    )
    range: tuple[float, float] | None = Field(
        None, description="Plausible [min, max] of a continuous or count covariate (data contract)."
    )
    transform: Transform = Field(
        Transform.none,
        description="Transform of a continuous (or count) covariate before it is modelled as "
        "normal: none | log | log1p | quantile (empirical margin, for skewed values with many zeros).",
    )

    @model_validator(mode="after")
    def _check(self) -> Covariate:
        if self.type is CovariateType.binary and self.levels is not None and len(self.levels) != 2:
            raise ValueError(f"binary covariate '{self.name}' needs exactly 2 levels, got {self.levels}")
        if self.type is CovariateType.categorical and self.levels is not None and len(self.levels) < 2:
            raise ValueError(f"categorical covariate '{self.name}' needs at least 2 levels")
        if self.levels is not None and len(set(map(str, self.levels))) != len(self.levels):
            raise ValueError(f"covariate '{self.name}' has repeated levels {self.levels}")
        if self.levels is not None and self.type in (CovariateType.continuous, CovariateType.count):
            raise ValueError(f"levels apply to binary/categorical covariates, not '{self.name}' ({self.type.value})")
        numeric = (CovariateType.continuous, CovariateType.count)
        if self.transform is not Transform.none and self.type not in numeric:
            raise ValueError(f"transform applies to continuous/count covariates, not '{self.name}' ({self.type.value})")
        if self.type is CovariateType.count and self.transform not in (Transform.none, Transform.quantile):
            raise ValueError(f"count covariate '{self.name}' takes transform none (negative binomial) or quantile")
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError(f"range of '{self.name}' must be [min, max] with min < max, got {list(self.range)}")
        return self


class Censoring(Strict):
    """How virtual survival times are censored."""

    administrative: float | None = Field(
        None, description="End of follow-up in the data's time unit; later times are censored. "
        "Default: the largest observed time in the fitting data."
    )
    dropout_rate: float = Field(
        0.0, ge=0.0, description="Exponential loss-to-follow-up hazard per time unit (0 = none)."
    )


class Outcome(Strict):
    family: OutcomeFamily = Field(..., description="normal | bernoulli | poisson | weibull | "
                                  "piecewise_exponential (both survival: right-censored, proportional hazards)")
    column: str | None = Field(None, description="Outcome column for normal, bernoulli and poisson outcomes.")
    levels: list[Level] | None = Field(
        None, description="Bernoulli outcome values as [no-event, event] when not coded 0/1."
    )
    range: tuple[float, float] | None = Field(None, description="Plausible [min, max] of the outcome (contract).")
    time: str | None = Field(None, description="Follow-up time column for survival outcomes (must be > 0).")
    event: str | None = Field(None, description="Event indicator column for survival: 1 = event, 0 = censored.")
    censoring: Censoring = Field(default_factory=Censoring, description="Censoring of virtual survival times.")
    frailty: bool = Field(
        False, description="Survival: a gamma frailty (mean 1, variance theta ~ HalfNormal(1)) on each "
        "patient's hazard, for heterogeneity the covariates do not explain (long-term survivors)."
    )
    intervals: int = Field(8, ge=1, le=50, description="piecewise_exponential: number of baseline-hazard "
                           "intervals, cut at quantiles of the observed event times.")

    @model_validator(mode="after")
    def _check(self) -> Outcome:
        survival = self.survival
        if survival and (self.time is None or self.event is None):
            raise ValueError(f"a {self.family.value} outcome needs both 'time' and 'event' columns")
        if survival and self.column is not None:
            raise ValueError(f"a {self.family.value} outcome uses 'time' and 'event', not 'column'")
        if not survival and self.column is None:
            raise ValueError(f"a {self.family.value} outcome needs 'column'")
        if not survival and (self.time is not None or self.event is not None):
            raise ValueError(f"'time'/'event' apply to survival outcomes, not {self.family.value}")
        if self.frailty and not survival:
            raise ValueError("frailty applies to survival outcomes")
        if self.levels is not None and (self.family is not OutcomeFamily.bernoulli or len(self.levels) != 2):
            raise ValueError("outcome 'levels' are [no-event, event] of a bernoulli outcome")
        return self

    @property
    def survival(self) -> bool:
        return self.family in SURVIVAL_FAMILIES

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.column, self.time, self.event) if c is not None]


class Priors(Strict):
    """Priors, stated on the internal standardised scale (see `virtual_patients.model`)."""

    coefficient_sd: float = Field(
        1.0, gt=0, description="Normal(0, sd) on regression coefficients per standard deviation "
        "of a continuous predictor (or per unit of a binary/dummy predictor)."
    )
    intercept_sd: float = Field(2.5, gt=0, description="Normal(0, sd) on intercepts (link scale).")
    baseline_step_sd: float = Field(
        0.5, gt=0, description="piecewise_exponential: sd of the random walk on the log baseline "
        "hazard from one interval to the next (smoothness)."
    )
    between_study_sd: float = Field(
        0.5, gt=0, description="Half-normal scale of the between-study sd tau of the outcome "
        "intercept (link scale; 0.5 allows 'substantial' heterogeneity on the log-odds / "
        "log-hazard scale and about half an outcome sd for normal outcomes)."
    )


class Sampler(Strict):
    draws: int = Field(1000, ge=50, description="Posterior draws per chain kept after tuning.")
    tune: int = Field(1000, ge=50, description="Tuning (warm-up) iterations per chain.")
    chains: int = Field(4, ge=1, description="Independent chains (>= 2 for R-hat).")
    target_accept: float = Field(0.9, gt=0.5, lt=1.0, description="NUTS target acceptance rate.")


class MissingPolicy(str, Enum):
    drop = "drop"
    error = "error"


class GeneratorSpec(SpecFile):
    _kind: ClassVar[str] = "generator spec"
    covariates: list[Covariate] = Field(..., min_length=1, description="Baseline covariates, modelled jointly "
                                        "in this order (each given the ones before it).")
    outcome: Outcome
    study: str | None = Field(None, description="Column naming the study/site (hierarchical intercept).")
    id: str | None = Field(None, description="Patient id column (must be unique).")
    subset: str | None = Field(
        None, description="pandas query selecting the rows to model, e.g. \"hormon == 0\" for a control arm."
    )
    missing: MissingPolicy = Field(
        MissingPolicy.drop, description="Rows with a missing covariate or outcome: 'drop' (reported, "
        "counted and logged) or 'error'."
    )
    max_missing: float = Field(0.2, ge=0, le=1, description="Largest share of missing values a column may "
                               "have before the data contract fails.")
    priors: Priors = Field(default_factory=Priors)
    sampler: Sampler = Field(default_factory=Sampler)

    @model_validator(mode="after")
    def _check(self) -> GeneratorSpec:
        names = [c.name for c in self.covariates]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"covariate names repeated: {dup}")
        taken = set(self.outcome.columns) | {c for c in (self.study, self.id) if c}
        clash = sorted(taken & set(names))
        if clash:
            raise ValueError(f"columns used both as covariate and as outcome/study/id: {clash}")
        return self

    # ------------------------------------------------------------------ I/O
    @property
    def columns(self) -> list[str]:
        """Every data column the spec reads."""
        extra = [c for c in (self.id, self.study) if c is not None]
        return extra + [c.name for c in self.covariates] + self.outcome.columns

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False)

    def table_schema(self) -> TableSchema:
        """The rules data for this spec must satisfy (the data contract of
        `insilico.validation.contract`): every column it reads, its role, its kind of
        values and limits, in reporting order (id, study, covariates, outcome)."""
        cols = []
        if self.id is not None:
            cols.append(Column(self.id, "id column", Kind.key, Group.key, unique=True))
        if self.study is not None and self.study != self.id:
            cols.append(Column(self.study, "study column", Kind.key, Group.key))
        kinds = {CovariateType.continuous: Kind.numeric, CovariateType.count: Kind.count,
                 CovariateType.binary: Kind.levels, CovariateType.categorical: Kind.levels}
        for c in self.covariates:
            numeric = c.type in (CovariateType.continuous, CovariateType.count)
            cols.append(Column(
                c.name, "covariate", kinds[c.type], Group.covariate,
                levels=None if c.levels is None else tuple(level_key(v) for v in c.levels),
                max_levels=2 if c.type is CovariateType.binary and c.levels is None else None,
                range=tuple(c.range) if numeric and c.range is not None else None, max_missing=self.max_missing))
        o = self.outcome
        rng = tuple(o.range) if o.range is not None and o.family is not OutcomeFamily.bernoulli else None
        if o.survival:
            cols += [Column(o.time, "time column", Kind.time, Group.outcome, range=rng),
                     Column(o.event, "event column", Kind.event, Group.outcome)]
        elif o.family is OutcomeFamily.bernoulli:
            cols.append(Column(o.column, "outcome column", Kind.levels, Group.outcome,
                               levels=tuple(level_key(v) for v in (o.levels or [0, 1]))))
        else:
            kind = Kind.count if o.family is OutcomeFamily.poisson else Kind.numeric
            cols.append(Column(o.column, "outcome column", kind, Group.outcome, range=rng))
        return TableSchema(tuple(cols))
