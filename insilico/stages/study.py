"""`insilico run study.yaml`: one analysis plan in, evidence, reports and a package out.

Stages, each a nested MLflow run under one parent run (``study <name>``):

1. ``validate`` — the credibility plan frozen, the data contract, the generator fit, every
   V&V check and the assessment (:func:`trials.credibility.validate_study`; the fit and
   the design simulation are nested runs below it);
2. ``twins`` — a synthetic control arm (released only through the privacy gate) and
   drug-response twins of the study's real patients under the plan's effect;
3. ``simulate`` — each extra trial design over its scenarios (designs, the plan's too, may
   draw patients from the validated generator: ``patients: {generator: "@validated"}``);
4. ``reports`` — the credibility report and one simulation report per design (HTML + PDF);
5. ``package`` — the submission package (`reports.package`).

A stage is reused when its inputs have not changed: its key is the SHA-256 of everything
it reads (study, plan, spec and design bytes, data hashes, seeds, upstream keys), stored
in ``<out>/run.json``; a reused stage still gets a run, tagged ``reused=true``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from insilico.stages.fit import InputError  # noqa: F401 - raised by the stages, caught by the CLI
from insilico.validation.plan import DataSource

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Twins(_Strict):
    source: DataSource
    effect: dict = Field(..., description="treatment-effect model ('insilico schema effect'), e.g. "
                         "{kind: hazard_ratio, value: 0.7}")


class Simulation(_Strict):
    design: str = Field(..., description="trial design YAML, relative to the study file")
    title: str | None = None
    estimand: dict | None = Field(None, description="ICH E9(R1): population, treatment, variable, "
                                  "intercurrent_events, summary_measure")


class PackageSettings(_Strict):
    include_patient_rows: bool = Field(False, description="put patient-level rows (synthetic cohorts) in the package")
    file: str = Field("study.zip", description="package file name inside the output folder")


class StudySpec(_Strict):
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


@dataclass(frozen=True)
class StudyOutcome:
    run_id: str
    out_dir: Path
    files: dict[str, Path]
    assessment: dict


def read_study(path: str | Path) -> StudySpec:
    from pydantic import ValidationError

    from insilico.validation.plan import PlanError
    from insilico.virtual_patients.spec import format_validation_error, read_yaml

    path = Path(path)
    data = read_yaml(path)
    try:
        study = StudySpec.model_validate(data)
    except ValidationError as err:
        raise PlanError(format_validation_error(err, str(path)).replace("in the spec", "in the study")) from err
    for rel in [study.credibility_plan] + [s.design for s in study.simulations]:
        if not (path.parent / rel).is_file():
            raise PlanError(f"{path}: {rel!r} (relative to the study) does not exist")
    return study


def study_files(study_path: Path, study: StudySpec) -> list[Path]:
    """The study file and every file it references (plan, spec, designs), for hashing and packaging."""
    from insilico.validation.plan import read_plan

    base = study_path.parent
    plan_path = base / study.credibility_plan
    plan, _ = read_plan(plan_path)
    files = [study_path, plan_path, plan_path.parent / plan.data.spec]
    files += [plan_path.parent / s.design for s in plan.sub_models.values() if s.design]
    files += [base / s.design for s in study.simulations]
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


def _key(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def run_study(study_path: str | Path, out_dir: str | Path, *, progress: bool = True, log=print,
              register: bool = True) -> StudyOutcome:
    """Every stage of a study, reusing those whose inputs are unchanged; see the module docstring."""
    import mlflow

    from insilico import tracking
    from insilico.virtual_patients.generator import package_versions

    study_path = Path(study_path)
    study = read_study(study_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = study_files(study_path, study)
    previous = _read_json(out / "run.json")
    keys = previous.get("keys", {})
    inputs = {str(f.relative_to(study_path.parent) if f.is_relative_to(study_path.parent) else f.name):
              tracking.sha256_file(f) for f in files}
    _copy_study(study_path, files, out / "study")
    tracking.setup()
    with mlflow.start_run(run_name=f"study {study.name}") as parent:
        try:
            mlflow.set_tags({"stage": "study", "study.name": study.name, "study.out_dir": str(out.resolve())})
            tracking.log_versions(package_versions())
            tracking.log_json(inputs, "study/inputs_sha256.json")
            stages: dict[str, str] = {}
            new_keys: dict[str, str] = {}

            k = _key("validate", inputs, tracking.git_commit())
            res = _stage("validate", k, keys, out / "validation" / "assessment.json", log,
                         lambda: _validate(study, study_path, out, progress, log, register))
            stages["validate"], new_keys["validate"] = res, k
            assessment = json.loads((out / "validation" / "assessment.json").read_text())

            k2 = _key("twins", k, study.model_dump(mode="json").get("twins"), study.synthetic_control_arm)
            if study.twins is not None:
                stages["twins"] = _stage("twins", k2, keys, out / "twins" / "twins.csv", log,
                                         lambda: _twins(study, study_path, out, log))
                new_keys["twins"] = k2

            sims = {}
            for s in study.simulations:
                name = Path(s.design).stem
                ks = _key("simulate", k, tracking.sha256_file(study_path.parent / s.design))
                stages[f"simulate:{name}"] = _stage(f"simulate:{name}", ks, keys,
                                                    out / "simulations" / f"{name}.nc", log,
                                                    lambda s=s, name=name: _simulate(s, study_path, out, name, log))
                new_keys[f"simulate:{name}"] = ks
                sims[name] = s

            kr = _key("reports", new_keys)
            stages["reports"] = _stage("reports", kr, keys, out / "reports" / "credibility.pdf", log,
                                       lambda: _reports(study, study_path, out, sims, log))
            new_keys["reports"] = kr

            _write_json(out / "run.json", {
                "study": study.name, "run_id": parent.info.run_id, "stages": stages, "keys": new_keys,
                "seeds": {"plan": assessment_seed(study_path, study)},
                "hashes": {"inputs": inputs, "data": {d["name"]: d["sha256"] for d in assessment["data"]}},
                "versions": package_versions(), "git_commit": tracking.git_commit(),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "include_patient_rows": study.package.include_patient_rows})
            with mlflow.start_run(run_name="package", nested=True) as pr:
                mlflow.set_tag("stage", "package")
                from insilico.reports.package import build_package

                zip_path = build_package(out, out / study.package.file,
                                         include_patient_rows=study.package.include_patient_rows, overwrite=True,
                                         log=log)
                tracking.log_file(zip_path, "package")
                mlflow.set_tag("package.sha256", tracking.sha256_file(zip_path))
                stages["package"] = pr.info.run_id
            log(f"package: {zip_path}")
            mlflow.set_tags({"credibility.adequate": str(assessment["overall"]["adequate"])})
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    outputs = {"package": zip_path, **{p.stem + "_" + p.suffix[1:]: p for p in (out / "reports").glob("*.*")
                                       if p.suffix in (".html", ".pdf")}}
    return StudyOutcome(parent.info.run_id, out, outputs, assessment)


def assessment_seed(study_path: Path, study: StudySpec) -> int:
    from insilico.validation.plan import read_plan

    return read_plan(study_path.parent / study.credibility_plan)[0].seed


def _stage(name: str, key: str, previous: dict, output: Path, log, run) -> str:
    """Run a stage as a nested MLflow run, or record that its unchanged output is reused."""
    import mlflow

    with mlflow.start_run(run_name=name, nested=True) as r:
        mlflow.set_tags({"stage": name, "stage.key": key})
        if previous.get(name) == key and output.exists():
            mlflow.set_tag("reused", "true")
            log(f"{name}: inputs unchanged (key {key[:12]}…), reusing {output.parent}")
            return r.info.run_id
        try:
            run()
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        return r.info.run_id


def _validate(study: StudySpec, study_path: Path, out: Path, progress, log, register) -> None:
    from insilico.stages.validate import validate_study

    validate_study(study_path.parent / study.credibility_plan, out / "validation", progress=progress, log=log,
                   register=register)


def _twins(study: StudySpec, study_path: Path, out: Path, log) -> None:
    from insilico.stages.validate import load_source
    from insilico.stages.fit import write_atomically
    from insilico import tracking
    from insilico.virtual_patients.effects import TreatmentEffect
    from insilico.virtual_patients.generator import Generator

    gen = Generator.load(out / "validation" / "generator")
    df, name, sha = load_source(study.twins.source, (study_path.parent / study.credibility_plan).parent)
    df = df.dropna(subset=[c.name for c in gen.spec.covariates]).reset_index(drop=True)
    effect = TreatmentEffect.model_validate(study.twins.effect)
    twins = gen.counterfactual(df, effect, seed=assessment_seed(study_path, study) + 101)
    o = gen.spec.outcome
    keep = [c for c in [gen.spec.id, "prognostic_score", "effect_link"] if c and c in twins] + \
        [c for c in twins.columns if c.endswith(("_control", "_treated"))]
    path = write_atomically(twins[keep], out / "twins" / "twins.csv")
    tracking.log_json({"source": name, "source_sha256": sha, "n": len(twins), "effect": study.twins.effect,
                       "outcome": o.model_dump(mode="json"), "twins_sha256": tracking.sha256_file(path)},
                      "twins/summary.json")
    log(f"drug-response twins of {len(twins)} patients of {name} ({effect.kind.value} {effect.value}) -> {path}")


def _simulate(sim: Simulation, study_path: Path, out: Path, name: str, log) -> None:
    from insilico.stages.validate import resolve_generator
    from insilico.stages.fit import simulate_design

    (out / "simulations").mkdir(parents=True, exist_ok=True)
    design_path = resolve_generator(study_path.parent / sim.design, out / "validation" / "generator",
                                    out / "simulations")
    simulate_design(design_path, out / "simulations" / f"{name}.nc", workers=2, log=log)


def _reports(study: StudySpec, study_path: Path, out: Path, sims: dict, log) -> None:
    from insilico.stages.simreport import simulation_report
    from insilico import tracking

    import mlflow

    from insilico.stages.validate import credibility_report

    paths = credibility_report(out / "validation", out / "reports")
    log(f"credibility report: {paths['html']} and {paths['pdf']}")
    plan_dir = (study_path.parent / study.credibility_plan).parent
    from insilico.validation.plan import read_plan

    plan, _ = read_plan(study_path.parent / study.credibility_plan)
    trial = plan.sub_models.get("trial_decision_model")
    reports = []
    if trial is not None and trial.design and (out / "validation" / "simulation.nc").is_file():
        resolved = out / "validation" / f"{Path(trial.design).stem}.resolved.yaml"
        reports.append(("simulation", resolved if resolved.is_file() else plan_dir / trial.design,
                        out / "validation" / "simulation.nc", None))
    for name, s in sims.items():
        design_path = out / "simulations" / f"{name}.resolved.yaml"
        reports.append((f"simulation_{name}", design_path if design_path.is_file() else study_path.parent / s.design,
                        out / "simulations" / f"{name}.nc", s.estimand))
    for stem, design_path, results, estimand in reports:
        target = out / "reports" / stem
        p = simulation_report(design_path, results, target, estimand=estimand)
        for suffix in ("html", "pdf"):
            shutil.copyfile(p[suffix], out / "reports" / f"{stem}.{suffix}")
        log(f"simulation report: {out / 'reports' / (stem + '.html')}")
    for f in sorted((out / "reports").glob("*.*")):
        if f.suffix in (".html", ".pdf"):
            tracking.log_file(f, "reports")
    mlflow.set_tag("reports", ", ".join(sorted(f.name for f in (out / "reports").glob("*.pdf"))))


def _copy_study(study_path: Path, files: list[Path], dest: Path) -> None:
    """The study and its referenced files, same relative layout, so the copy re-runs as is."""
    base = study_path.parent.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        rel = f.resolve().relative_to(base) if f.resolve().is_relative_to(base) else Path(f.name)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest / rel)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)
