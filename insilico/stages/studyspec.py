"""The study file of ``insilico run``: the credibility plan plus what to simulate, twin and package."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from insilico.common.specfile import Strict, format_validation_error, read_yaml
from insilico.validation.plan import DataSource, PlanError, read_plan


class Twins(Strict):
    source: DataSource
    effect: dict = Field(..., description="treatment-effect model ('insilico schema effect'), e.g. "
                         "{kind: hazard_ratio, value: 0.7}")


class Simulation(Strict):
    design: str = Field(..., description="trial design YAML, relative to the study file")
    title: str | None = None
    estimand: dict | None = Field(None, description="ICH E9(R1): population, treatment, variable, "
                                  "intercurrent_events, summary_measure")


class PackageSettings(Strict):
    include_patient_rows: bool = Field(False, description="put patient-level rows (synthetic cohorts) in the package")
    file: str = Field("study.zip", description="package file name inside the output folder")


class StudySpec(Strict):
    """A study: the credibility plan plus what to simulate, report and package."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    title: str
    credibility_plan: str = Field(..., description="credibility plan YAML (`insilico schema plan`), relative "
                                  "to the study file")
    simulations: list[Simulation] = Field(default_factory=list, description="designs simulated beyond the plan's "
                                          "trial model (the plan's design is always reported)")
    twins: Twins | None = None
    synthetic_control_arm: int | None = Field(None, gt=0, description="virtual patients in the released arm "
                                              "(default: as many as the training rows)")
    package: PackageSettings = PackageSettings()


def read_study(path: str | Path) -> StudySpec:
    """A study file, checked: its keys, and that the files it names exist."""
    path = Path(path)
    data = read_yaml(path, PlanError)
    try:
        study = StudySpec.model_validate(data)
    except ValidationError as err:
        raise PlanError(format_validation_error(err, str(path), "study")) from err
    for rel in [study.credibility_plan] + [s.design for s in study.simulations]:
        if not (path.parent / rel).is_file():
            raise PlanError(f"{path}: {rel!r} (relative to the study) does not exist")
    return study


def study_files(study_path: Path, study: StudySpec) -> list[Path]:
    """The study file and every file it references (plan, spec, designs, data files), for
    hashing and packaging."""
    base = study_path.parent
    plan_path = base / study.credibility_plan
    plan, _ = read_plan(plan_path)
    files = [study_path, plan_path, plan_path.parent / plan.data.spec]
    files += [plan_path.parent / s.design for s in plan.sub_models.values() if s.design]
    files += [base / s.design for s in study.simulations]
    if plan.verification.qualification:
        files.append(plan_path.parent / plan.verification.qualification)
    for src in [plan.data.training, getattr(plan.data.comparator, "source", None), plan.data.target,
                plan.data.replication.source if plan.data.replication else None]:
        if src is not None and src.path:
            files.append(plan_path.parent / src.path)
    seen, out = set(), []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            out.append(f)
    return out
