"""Evidence records: the one currency of verification and validation.

Every check yields one :class:`EvidenceRecord` per metric. The credibility assessment and
the reports are built from these records alone, never recomputed (DESIGN.md), so a
record carries everything a reviewer needs to trace a number: the factor and sub-model it
serves, the value, the pre-set threshold, the verdict, the artifact behind it (with its
SHA-256) and the MLflow run that produced it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import model_validator

from insilico.common.files import write_text
from insilico.common.jsonable import jsonable
from insilico.common.specfile import Strict

# ASME V&V 40-2018 credibility factors (exact names), by group; plus the calibration
# factor that practice adds (REGULATORY.md §1).
FACTORS: dict[str, str] = {
    "Software quality assurance": "Verification — code",
    "Numerical code verification": "Verification — code",
    "Discretization error": "Verification — calculation",
    "Numerical solver error": "Verification — calculation",
    "Use error": "Verification — calculation",
    "Model form": "Validation — model",
    "Model inputs": "Validation — model",
    "Test samples": "Validation — comparator",
    "Test conditions": "Validation — comparator",
    "Equivalency of input parameters": "Validation — assessment",
    "Output comparison": "Validation — assessment",
    "Relevance of the quantities of interest": "Applicability",
    "Relevance of the validation activities to the COU": "Applicability",
    "Model calibration": "Calibration",
    # not a V&V 40 factor: the release gate for synthetic cohorts leaving the analysis
    "Privacy of released cohorts": "Release",
}

# FDA 2023 CM&S guidance: the eight evidence categories (plus data protection).
CATEGORIES = (
    "code verification",
    "model calibration",
    "bench validation",
    "in vivo validation",
    "population-based validation",
    "emergent model behaviour",
    "model plausibility",
    "calculation verification",
    "data protection",  # not an FDA category: privacy of released synthetic cohorts
)

SUB_MODELS = ("virtual_patient_generation", "treatment_effect_model", "trial_decision_model")


class Threshold(Strict):
    """A pre-set acceptance rule: ``min <= value <= max`` (either bound optional).

    ``equals`` is for counts that must be exact (zero divergences, zero exact copies).
    """

    min: float | None = None
    max: float | None = None
    equals: float | None = None

    @model_validator(mode="after")
    def _one_rule(self):
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError("a threshold needs min, max or equals")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("equals cannot be combined with min/max")
        return self

    def admits(self, value: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.equals is not None:
            return value == self.equals
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        if self.equals is not None:
            return f"= {_num(self.equals)}"
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)} – {_num(self.max)}"
        return f"≤ {_num(self.max)}" if self.max is not None else f"≥ {_num(self.min)}"


def _num(x: float) -> str:
    return f"{x:g}"


#: fields `EvidenceRecord.to_dict` derives from the others
DERIVED = ("key", "threshold_text")


@dataclass
class EvidenceRecord:
    """One metric of one check, with its verdict against a pre-set threshold.

    ``passed`` is None when the record is informative only (no threshold in the plan).
    ``artifact`` is the artifact path inside the MLflow run (e.g. ``evidence/km.png``);
    ``artifact_sha256`` its checksum, so a report can prove which file it cites.
    """

    factor: str
    sub_model: str
    metric: str
    value: float | None
    threshold: dict | None
    passed: bool | None
    category: str
    check: str
    description: str = ""
    artifact: str | None = None
    artifact_sha256: str | None = None
    run_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.factor not in FACTORS:
            raise ValueError(f"unknown credibility factor {self.factor!r}; expected one of {sorted(FACTORS)}")
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown evidence category {self.category!r}; expected one of {CATEGORIES}")
        if self.value is not None:
            self.value = float(self.value)

    @property
    def key(self) -> str:
        """Stable identifier within a study: sub-model / check / metric."""
        return f"{self.sub_model}/{self.check}/{self.metric}"

    @property
    def threshold_text(self) -> str:
        return Threshold(**self.threshold).describe() if self.threshold else "—"

    def to_dict(self) -> dict:
        """The record as JSON data, with its ``key`` and ``threshold_text`` written out, so
        that readers (reports, the package check) need no code of this module."""
        d = asdict(self)
        if d["value"] is not None and not math.isfinite(d["value"]):
            d["value"] = None  # JSON has no NaN: a missing value is a failed or absent check
        return {**d, "key": self.key, "threshold_text": self.threshold_text}

    @classmethod
    def from_dict(cls, d: dict) -> EvidenceRecord:
        """A record from `to_dict` output (the derived ``key`` and ``threshold_text`` dropped)."""
        return cls(**{k: v for k, v in d.items() if k not in DERIVED})


def record(*, factor: str, sub_model: str, check: str, metric: str, value: float | None,
           threshold: Threshold | dict | None, category: str, description: str = "",
           detail: dict | None = None) -> EvidenceRecord:
    """Build a record, judging ``value`` against ``threshold`` (None: informative only)."""
    th = Threshold(**threshold) if isinstance(threshold, dict) else threshold
    passed = None if th is None else th.admits(None if value is None else float(value))
    return EvidenceRecord(factor=factor, sub_model=sub_model, check=check, metric=metric,
                          value=None if value is None else float(value),
                          threshold=None if th is None else th.model_dump(exclude_none=True),
                          passed=passed, category=category, description=description,
                          detail=detail or {})


def write_records(records: list[EvidenceRecord], path: str | Path) -> Path:
    return write_text(path, json.dumps([r.to_dict() for r in records], indent=2, default=jsonable))


def read_records(path: str | Path) -> list[EvidenceRecord]:
    return [EvidenceRecord.from_dict(d) for d in json.loads(Path(path).read_text())]
