"""`insilico run study.yaml`: one analysis plan in, evidence, reports and a package out.

Stages, each a nested MLflow run under one parent run (``study <name>``):

1. ``validate`` — the credibility plan frozen, the data contract, the generator fit, every
   V&V check and the assessment (`insilico.stages.validate`; the fit and the design
   simulation are nested runs below it);
2. ``twins`` — drug-response twins of the study's real patients under the plan's effect;
3. ``simulate:<design>`` — each extra trial design over its scenarios (designs, the plan's
   too, may draw patients from the validated generator: ``patients: {generator: "@validated"}``);
4. ``reports`` — the credibility report and one simulation report per design (HTML + PDF);
5. ``package`` — the submission package (`insilico.stages.package`).

A stage is reused when its inputs have not changed: its key is the SHA-256 of everything
it reads (study, plan, spec and design bytes, data hashes, seeds, upstream keys), stored
in ``<out>/run.json``; a reused stage still gets a run, tagged ``reused=true``. The output
folder's layout is `insilico.layout`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow

from insilico import tracking
from insilico.checks.trial import resolve_generator
from insilico.common.environment import package_versions
from insilico.common.files import sha256_bytes, sha256_file, write_csv, write_text
from insilico.common.jsonable import dumps, lenient
from insilico.common.tables import Group
from insilico.layout import StudyFolder
from insilico.simreport import simulation_report
from insilico.sources import complete_cases, input_schema, load_source
from insilico.stages.evidence import credibility_report
from insilico.stages.package import build_package
from insilico.stages.simulate import LOCAL, Compute, simulate_design
from insilico.stages.studyspec import Simulation, StudySpec, read_study, study_files
from insilico.stages.validate import validate_study
from insilico.validation.contract import enforce_input
from insilico.validation.plan import read_plan
from insilico.virtual_patients.effects import TreatmentEffect
from insilico.virtual_patients.generator import Generator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyOutcome:
    run_id: str
    out_dir: Path
    files: dict[str, Path]
    assessment: dict


def stage_key(*parts) -> str:
    """SHA-256 of a stage's inputs (bytes as they are, anything else as canonical JSON)."""
    return sha256_bytes(b"".join(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode()
                                 for p in parts))


@dataclass
class _Stages:
    """The stages of one run: each a nested MLflow run, skipped when its key is unchanged."""

    previous: dict[str, str]
    runs: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def run(self, name: str, key: str, output: Path, work: Callable[[], object]) -> None:
        with mlflow.start_run(run_name=name, nested=True) as r:
            mlflow.set_tags({"stage": name, "stage.key": key})
            self.runs[name], self.keys[name] = r.info.run_id, key
            if self.previous.get(name) == key and output.exists():
                mlflow.set_tag("reused", "true")
                logger.info("%s: inputs unchanged (key %s…), reusing %s", name, key[:12], output.parent)
                return
            try:
                work()
            except BaseException:
                mlflow.end_run(status="FAILED")
                raise


def run_study(study_path: str | Path, out_dir: str | Path, *, progress: bool = True,
              register: bool = True, compute: Compute = LOCAL) -> StudyOutcome:
    """Every stage of a study, reusing those whose inputs are unchanged; see the module docstring."""
    study_path = Path(study_path)
    study = read_study(study_path)
    folder = StudyFolder(Path(out_dir))
    folder.root.mkdir(parents=True, exist_ok=True)
    files = study_files(study_path, study)
    previous = json.loads(folder.run_json.read_text()) if folder.run_json.is_file() else {}
    inputs = {str(f.relative_to(study_path.parent) if f.is_relative_to(study_path.parent) else f.name):
              sha256_file(f) for f in files}
    _copy_study(study_path, files, folder.study)
    tracking.setup()
    with mlflow.start_run(run_name=f"study {study.name}") as parent:
        try:
            mlflow.set_tags({"stage": "study", "study.name": study.name, "study.out_dir": str(folder.root.resolve())})
            tracking.log_versions(package_versions())
            tracking.log_json(inputs, "study/inputs_sha256.json")
            stages = _Stages(previous.get("keys", {}))
            assessment = _run_stages(stages, study, study_path, folder, inputs, progress=progress, register=register,
                                     compute=compute)
            write_text(folder.run_json, dumps({
                "study": study.name, "run_id": parent.info.run_id, "stages": stages.runs, "keys": stages.keys,
                "seeds": {"plan": plan_seed(study_path, study)},
                "hashes": {"inputs": inputs, "data": {d["name"]: d["sha256"] for d in assessment["data"]}},
                "versions": package_versions(), "git_commit": tracking.git_commit(),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "include_patient_rows": study.package.include_patient_rows}, strict=False, default=lenient))
            zip_path = _package(study, folder, stages)
            mlflow.set_tags({"credibility.adequate": str(assessment["overall"]["adequate"])})
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    outputs = {"package": zip_path, **{p.stem + "_" + p.suffix[1:]: p for p in folder.reports.glob("*.*")
                                       if p.suffix in (".html", ".pdf")}}
    return StudyOutcome(parent.info.run_id, folder.root, outputs, assessment)


def _run_stages(stages: _Stages, study: StudySpec, study_path: Path, folder: StudyFolder, inputs: dict, *,
                progress: bool, register: bool, compute: Compute) -> dict:
    """validate, twins, simulate:<design>, reports; returns the assessment."""
    plan_path = study_path.parent / study.credibility_plan
    k = stage_key("validate", inputs, tracking.git_commit())
    stages.run("validate", k, folder.assessment,
               lambda: validate_study(plan_path, folder.validation, progress=progress, register=register,
                                      compute=compute))
    assessment = json.loads(folder.assessment.read_text())
    if study.twins is not None:
        stages.run("twins", stage_key("twins", k, study.model_dump(mode="json").get("twins"),
                                      study.synthetic_control_arm),
                   folder.twins, lambda: _twins(study, study_path, folder))
    sims = {}
    for s in study.simulations:
        name = Path(s.design).stem
        stages.run(f"simulate:{name}", stage_key("simulate", k, sha256_file(study_path.parent / s.design)),
                   folder.simulations / f"{name}.nc",
                   lambda s=s, name=name: _simulate(s, study_path, folder, name, compute))
        sims[name] = s
    stages.run("reports", stage_key("reports", dict(stages.keys)), folder.reports / "credibility.pdf",
               lambda: _reports(study, study_path, folder, sims))
    return assessment


def plan_seed(study_path: Path, study: StudySpec) -> int:
    """The credibility plan's seed (the root of every seed of the study)."""
    return read_plan(study_path.parent / study.credibility_plan)[0].seed


def _twins(study: StudySpec, study_path: Path, folder: StudyFolder) -> None:
    gen = Generator.load(folder.generator)
    df, name, sha = load_source(study.twins.source, (study_path.parent / study.credibility_plan).parent)
    enforce_input(df, input_schema(gen.spec, Group.covariate), "twins source", name)
    df = complete_cases(df, [c.name for c in gen.spec.covariates])
    effect = TreatmentEffect.model_validate(study.twins.effect)
    twins = gen.counterfactual(df, effect, seed=plan_seed(study_path, study) + 101)
    keep = [c for c in [gen.spec.id, "prognostic_score", "effect_link"] if c and c in twins] + \
        [c for c in twins.columns if c.endswith(("_control", "_treated"))]
    path = write_csv(twins[keep], folder.twins)
    tracking.log_json({"source": name, "source_sha256": sha, "n": len(twins), "effect": study.twins.effect,
                       "outcome": gen.spec.outcome.model_dump(mode="json"), "twins_sha256": sha256_file(path)},
                      "twins/summary.json")
    logger.info("drug-response twins of %d patients of %s (%s %s) -> %s", len(twins), name, effect.kind.value,
                effect.value, path)


def _simulate(sim: Simulation, study_path: Path, folder: StudyFolder, name: str, compute: Compute) -> None:
    folder.simulations.mkdir(parents=True, exist_ok=True)
    design_path = resolve_generator(study_path.parent / sim.design, folder.generator, folder.simulations)
    simulate_design(design_path, folder.simulations / f"{name}.nc", workers=compute.workers,
                    scheduler=compute.scheduler)


def _reports(study: StudySpec, study_path: Path, folder: StudyFolder, sims: dict[str, Simulation]) -> None:
    paths = credibility_report(folder.validation, folder.reports)
    logger.info("credibility report: %s and %s", paths["html"], paths["pdf"])
    plan_path = study_path.parent / study.credibility_plan
    plan, _ = read_plan(plan_path)
    trial = plan.sub_models.get("trial_decision_model")
    reports = []
    if trial is not None and trial.design and folder.simulation.is_file():
        resolved = folder.validation / f"{Path(trial.design).stem}.resolved.yaml"
        reports.append(("simulation", resolved if resolved.is_file() else plan_path.parent / trial.design,
                        folder.simulation, None))
    for name, s in sims.items():
        design_path = folder.simulations / f"{name}.resolved.yaml"
        reports.append((f"simulation_{name}", design_path if design_path.is_file() else study_path.parent / s.design,
                        folder.simulations / f"{name}.nc", s.estimand))
    for stem, design_path, results, estimand in reports:
        p = simulation_report(design_path, results, folder.reports / stem, estimand=estimand)
        for suffix in ("html", "pdf"):
            shutil.copyfile(p[suffix], folder.reports / f"{stem}.{suffix}")
        logger.info("simulation report: %s", folder.reports / f"{stem}.html")
    for f in sorted(folder.reports.glob("*.*")):
        if f.suffix in (".html", ".pdf"):
            tracking.log_file(f, "reports")
    mlflow.set_tag("reports", ", ".join(sorted(f.name for f in folder.reports.glob("*.pdf"))))


def _package(study: StudySpec, folder: StudyFolder, stages: _Stages) -> Path:
    with mlflow.start_run(run_name="package", nested=True) as pr:
        mlflow.set_tag("stage", "package")
        zip_path = build_package(folder.root, folder.root / study.package.file,
                                 include_patient_rows=study.package.include_patient_rows, overwrite=True)
        tracking.log_file(zip_path, "package")
        mlflow.set_tag("package.sha256", sha256_file(zip_path))
        stages.runs["package"] = pr.info.run_id
    logger.info("package: %s", zip_path)
    return zip_path


def _copy_study(study_path: Path, files: list[Path], dest: Path) -> None:
    """The study and its referenced files, same relative layout, so the copy re-runs as is."""
    base = study_path.parent.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        rel = f.resolve().relative_to(base) if f.resolve().is_relative_to(base) else Path(f.name)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest / rel)
