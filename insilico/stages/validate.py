"""`insilico validate PLAN.yaml`: verification and validation evidence, graded by the plan.

Order matters and is fixed: the plan is read and frozen (its SHA-256 and a timestamp
logged to MLflow) *before* any comparator data are read; then the historical data pass
their contract, the generator is fitted on the training rows only, and every check the
plan's goals name produces metrics, which become evidence records judged against those
goals. The assessment is built from the records alone. One parent MLflow run holds the
records (metrics + ``evidence/records.json``) and the assessment; the fit and the
simulations are nested runs under it.

Each check is a function of plain inputs in `insilico.checks`; this module only joins them.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from insilico import tracking
from insilico.checks.engine import verify_engine
from insilico.checks.generator import (
    check_applicability,
    check_convergence,
    check_holdout,
    check_privacy,
    check_test_samples,
)
from insilico.checks.metrics import Metrics, metric
from insilico.checks.qualification import qualification_metrics
from insilico.checks.sbc import check_sbc
from insilico.checks.spread import with_spread
from insilico.checks.trial import check_design, check_external_control, check_replication, resolve_generator
from insilico.common.files import write_csv
from insilico.common.tables import Column, Group, Kind
from insilico.sources import complete_cases, frame_sha256, input_schema, load_source
from insilico.stages.evidence import assess_and_report
from insilico.stages.fit import FitOutcome, fit_generator
from insilico.stages.freeze import freeze
from insilico.stages.simulate import LOCAL, Compute
from insilico.validation.contract import ContractResult, DataContractError, check_data, enforce_input
from insilico.validation.fidelity import holdout_split, id_digest
from insilico.validation.plan import PlanError, plan_sha256, read_plan
from insilico.validation.privacy import PrivacyGateError, export_cohort
from insilico.validation.suites import check_cohort
from insilico.virtual_patients.fitting import select_rows
from insilico.virtual_patients.generator import Generator
from insilico.virtual_patients.spec import GeneratorSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationOutcome:
    run_id: str
    assessment: dict
    records: list
    out_dir: Path


@dataclass(frozen=True)
class _Data:
    """The rows the checks use and the record of where they came from."""

    train: pd.DataFrame
    comparator: pd.DataFrame
    contract: ContractResult
    sources: list[dict]
    target: pd.DataFrame | None = None
    replication: pd.DataFrame | None = None


def validate_study(plan_path: str | Path, out_dir: str | Path, *, progress: bool = True,
                   register: bool = True, compute: Compute = LOCAL) -> ValidationOutcome:
    """Freeze the plan, run every check its goals need, grade them, log it all to MLflow."""
    plan_path = Path(plan_path)
    plan, raw = read_plan(plan_path)
    if plan.data is None:
        raise PlanError(f"{plan_path}: `insilico validate` needs a data section (training, spec, comparator)")
    spec_path = plan_path.parent / plan.data.spec
    spec = GeneratorSpec.from_yaml(spec_path)
    out_dir = Path(out_dir)
    tracking.setup()
    with mlflow.start_run(run_name=f"validate {plan.name}", nested=mlflow.active_run() is not None) as run:
        try:
            frozen = freeze(plan.name, raw)  # first: nothing of the comparator has been read yet
            mlflow.set_tags({"stage": "validate", "plan.name": plan.name, "plan.sha256": plan_sha256(raw),
                             "plan.frozen_sha256": frozen.sha256, "plan.frozen_at": frozen.frozen_at,
                             "plan.frozen_run_id": frozen.run_id, "plan.deviations": str(len(frozen.deviations))})
            mlflow.log_text(raw.decode(), "plan/plan.yaml")
            since = f"; {len(frozen.deviations)} deviation(s) since" if frozen.deviations else ""
            logger.info("%s %s (SHA-256 %s…)%s", "froze the plan" if frozen.new else "plan frozen at",
                        frozen.frozen_at, frozen.sha256[:12], since)
            outcome = _run_checks(plan, plan_path.parent, spec_path, spec, frozen, out_dir, run.info.run_id,
                                  progress=progress, register=register, compute=compute)
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    return outcome


def _run_checks(plan, base: Path, spec_path: Path, spec: GeneratorSpec, frozen, out_dir: Path, run_id: str, *,
                progress: bool, register: bool, compute: Compute) -> ValidationOutcome:
    metrics: Metrics = {"plan_deviations": metric("plan_freeze", len(frozen.deviations), detail={
        "deviations": frozen.deviations, "frozen_sha256": frozen.sha256})}
    data = _training_and_comparator(plan, base, spec, metrics)  # every input through its contract first
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    fit = _fit(data.train, plan, spec_path, out_dir, progress=progress, register=register)
    gen = Generator.load(fit.generator_dir)
    metrics.update(_generator_checks(gen, fit, data, plan, figures, progress=progress))
    metrics.update(_population_checks(gen, data, plan, out_dir, figures))
    if plan.verification.qualification:
        metrics.update(qualification_metrics(base / plan.verification.qualification))
    design_sub = plan.sub_models.get("trial_decision_model")
    if design_sub is not None and design_sub.design:
        logger.info("verifying the trial engine against closed forms, rpact and RBesT")
        metrics.update(verify_engine(plan.verification.engine_replicates, plan.seed))
        logger.info("simulating the design %s", design_sub.design)
        design_path = resolve_generator(base / design_sub.design, fit.generator_dir, out_dir)
        metrics.update(check_design(design_path, out_dir, analyses=design_sub.analyses, compute=compute)[0])
    records, assessment = assess_and_report(plan, metrics, frozen, data.sources, out_dir, run_id)
    if register and assessment["overall"]["adequate"]:
        _alias_validated(f"generator-{plan.name}", fit.run_id)
    return ValidationOutcome(run_id, assessment, records, out_dir)


def _training_and_comparator(plan, base: Path, spec: GeneratorSpec, metrics: Metrics) -> _Data:
    """The training rows (through their data contract) and the comparator: held out from
    them (stratified, seeded) or a separate table."""
    source, name, sha = load_source(plan.data.training, base)
    rows = select_rows(source, spec)
    contract = check_data(rows, spec)
    tracking.log_json(contract.gx_result, "evidence/data_contract.json")
    metrics["data_contract_failures"] = metric("data_contract", len(contract.failures),
                                               detail={"failures": contract.failures})
    if not contract.success:
        raise DataContractError(contract)
    rows = complete_cases(rows, spec.columns)
    if plan.data.comparator.holdout is not None:
        h = plan.data.comparator.holdout
        fit_pos, held_pos = holdout_split(rows, 1 - h.fraction, plan.seed, strata=h.strata or None,
                                          time=spec.outcome.time if spec.outcome.survival else None)
        train, comp = rows.iloc[fit_pos].reset_index(drop=True), rows.iloc[held_pos].reset_index(drop=True)
        comp_name, comp_sha = f"{name} (held out: {h.fraction:.0%}, seed {plan.seed})", frame_sha256(comp)
    else:
        train = rows
        comp_df, comp_name, comp_sha = load_source(plan.data.comparator.source, base)
        enforce_input(comp_df, input_schema(spec, Group.covariate, Group.outcome), "comparator", comp_name)
        comp = complete_cases(comp_df, spec.columns)
    ids = spec.id
    sources = [{"role": "training", "name": name, "sha256": sha, "rows": len(train),
                "ids_sha256": id_digest(train[ids]) if ids else None},
               {"role": "comparator", "name": comp_name, "sha256": comp_sha, "rows": len(comp),
                "ids_sha256": id_digest(comp[ids]) if ids else None}]
    logger.info("data: %d training rows, %d comparator rows (%s)", len(train), len(comp), comp_name)
    metrics.update(check_test_samples(train, comp, spec))
    target, replication = _other_inputs(plan, base, spec, sources)
    return _Data(train, comp, contract, sources, target, replication)


def _other_inputs(plan, base: Path, spec: GeneratorSpec, sources: list[dict]):
    """The target population and the replication trial, each through its contract before
    anything is fitted (a bad file stops the run with nothing fitted)."""
    target = replication = None
    if plan.data.target is not None:
        df, tname, tsha = load_source(plan.data.target, base)
        enforce_input(df, input_schema(spec, Group.covariate), "target population", tname)
        target = complete_cases(df, [c.name for c in spec.covariates])
        sources.append({"role": "target", "name": tname, "sha256": tsha, "rows": len(target), "ids_sha256": None})
    if plan.data.replication is not None:
        rep = plan.data.replication
        df, rname, rsha = load_source(rep.source, base)
        arm = Column(rep.arm, "arm column", Kind.key, Group.key)
        enforce_input(df, input_schema(spec, Group.covariate, Group.outcome, extra=(arm,)), "replication trial", rname)
        replication = complete_cases(df, spec.columns)
        ids = spec.id
        sources.append({"role": "replication trial", "name": rname, "sha256": rsha, "rows": len(replication),
                        "ids_sha256": id_digest(replication[ids]) if ids and ids in replication else None})
    return target, replication


def _fit(train: pd.DataFrame, plan, spec_path: Path, out_dir: Path, *, progress: bool, register: bool) -> FitOutcome:
    """The generator fitted on the training rows only (a nested MLflow run)."""
    with tempfile.TemporaryDirectory() as tmp:
        train_path = write_csv(train, Path(tmp) / "training.csv")
        return fit_generator(train_path, spec_path, out_dir / "generator", plan.seed, progress=progress,
                             register=register, overwrite=True, model_name=f"generator-{plan.name}")


def _generator_checks(gen: Generator, fit: FitOutcome, data: _Data, plan, figures: Path, *,
                      progress: bool) -> Metrics:
    """Convergence, virtual-cohort plausibility, SBC (when a goal asks for it), held-out fidelity."""
    spec = gen.spec
    out = check_convergence(fit.diagnostics, gen.meta.get("loo"), gen.posterior, figures)
    cohort = gen.sample_cohort(len(data.train), seed=plan.seed + 1)
    plaus = check_cohort(cohort, spec, source_missingness=data.contract.missingness)
    out["cohort_plausibility_failures"] = metric("cohort_plausibility", len(plaus.failures),
                                                 detail={"failures": plaus.failures})
    if "sbc_min_p_bonferroni" in plan.metrics_wanted():
        out.update(check_sbc(spec, data.train, plan, figures, progress=progress))
    logger.info("held-out validation: balance, distributions, propensity, Mahalanobis, outcomes")
    held = check_holdout(gen, data.train, data.comparator, plan, plan.seed, figures)
    out.update(with_spread(held, lambda s, scratch: check_holdout(gen, data.train, data.comparator, plan, s, scratch),
                           plan.seed))
    return out


def _population_checks(gen: Generator, data: _Data, plan, out_dir: Path, figures: Path) -> Metrics:
    """Applicability to the COU population, privacy (and the release it gates), replication
    of a real trial with synthetic and with external controls."""
    spec = gen.spec
    out: Metrics = {}
    if data.target is not None:
        out.update(check_applicability(data.target, data.train, spec, plan.seed))
    priv, released, priv_all, _ = check_privacy(gen, data.train, data.comparator, spec, plan.seed, plan.privacy)
    out.update(with_spread(priv, lambda s, _: check_privacy(gen, data.train, data.comparator, spec, s, plan.privacy)[0],
                           plan.seed))
    _release(released, out_dir, priv_all, plan)
    if data.replication is not None:
        rep, rep_df, rname = plan.data.replication, data.replication, data.sources[-1]["name"]
        logger.info("trial-level replication on %s: %d synthetic control arms", rname, rep.cohorts)
        out.update(check_replication(gen, rep_df, rep, plan.seed))
        if spec.outcome.survival:
            logger.info("external control from the real-world training patients, ATT-weighted, for %s's treated arm",
                        rname)
            out.update(check_external_control(rep_df, data.train, rep, spec, figures, plan.seed))
    return out


def _release(cohort: pd.DataFrame, out_dir: Path, priv: dict, plan) -> None:
    """Export the virtual cohort only through the privacy gate (nothing written when it fails)."""
    path = out_dir / "synthetic_cohort.csv"
    try:
        export_cohort(cohort, path, priv, plan.privacy)
        logger.info("privacy gate passed: released %d virtual patients -> %s", len(cohort), path)
    except PrivacyGateError as err:
        logger.warning("privacy gate REFUSED the release of the synthetic cohort: %s", err)


def _alias_validated(name: str, fit_run_id: str) -> None:
    client = MlflowClient()
    versions = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == fit_run_id]
    if versions:
        client.set_registered_model_alias(name, "validated", versions[0].version)
        logger.info("model registry: %s version %s now carries the alias 'validated'", name, versions[0].version)
