"""`insilico fit`: the tracked generator fit, one MLflow run.

Data contract first (a failing contract ends the run FAILED with the validation result
attached, and fits nothing), then the PyMC fit, convergence diagnostics, the saved
generator, and its registration in the MLflow model registry.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from insilico import tracking
from insilico.common.environment import package_versions
from insilico.common.errors import InputError
from insilico.common.files import read_table, sha256_file
from insilico.validation.contract import DataContractError, check_data
from insilico.validation.diagnostics import converged, mcmc_diagnostics, posterior_summary
from insilico.virtual_patients.fitting import drop_missing, fit, select_rows
from insilico.virtual_patients.spec import GeneratorSpec

logger = logging.getLogger(__name__)

#: what a registered generator's pyfunc model needs to load and score
MODEL_REQUIREMENTS = ("pymc", "nutpie", "arviz", "numpy", "scipy", "pandas", "xarray")


@dataclass(frozen=True)
class FitOutcome:
    generator_dir: Path
    run_id: str
    model_uri: str | None
    diagnostics: dict
    missing: str


def fit_generator(
    data_path: str | Path,
    spec_path: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    *,
    progress: bool = True,
    register: bool = True,
    overwrite: bool = False,
    model_name: str | None = None,
) -> FitOutcome:
    """Contract-check, fit, diagnose, save and register a generator; one MLflow run."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir}: exists and is not empty; choose a new --out or pass --overwrite")
    spec = GeneratorSpec.from_yaml(spec_path)
    df = read_table(data_path)
    sha = sha256_file(data_path)
    rows = select_rows(df, spec)

    tracking.setup()
    name = model_name or f"generator-{Path(spec_path).stem}"
    with mlflow.start_run(run_name=f"fit {Path(spec_path).stem}", nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags({"stage": "fit_generator", "seed": str(seed)})
        tracking.log_versions(package_versions())
        tracking.log_spec(spec.to_yaml(), spec.hash())
        tracking.log_input_file(data_path, sha, {c: df[c].dtype.kind for c in df.columns})
        mlflow.log_params({"seed": seed, "n_rows_file": len(df), "n_rows_selected": len(rows),
                           "family": spec.outcome.family.value, "n_covariates": len(spec.covariates)})

        logger.info("checking the data contract (%d columns, %d rows)", len(spec.columns), len(rows))
        result = check_data(rows, spec)
        tracking.log_json(result.gx_result, "data_contract/validation_result.json")
        tracking.log_json({"success": result.success, "failures": result.failures,
                           "missingness": result.missingness}, "data_contract/summary.json")
        tracking.log_metrics({"contract_success": float(result.success)})
        if not result.success:
            mlflow.end_run(status="FAILED")
            raise DataContractError(result)
        _, missing = drop_missing(rows, spec)
        logger.info(missing.describe())
        tracking.log_metrics({"n_patients": missing.n_used, "n_dropped_missing": missing.n_dropped})

        logger.info("fitting the generator: %d chains x %d draws (nutpie)", spec.sampler.chains, spec.sampler.draws)
        gen = fit(df, spec, seed, progress=progress, data_sha256=sha)  # fit selects the rows
        diag = mcmc_diagnostics(gen.posterior)
        gen.meta["diagnostics"] = diag
        gen.meta["mlflow_run_id"] = run.info.run_id
        tracking.log_metrics({**diag, "sampling_seconds": gen.meta["sampling_seconds"]})
        tracking.log_dataframe(posterior_summary(gen.posterior), "posterior/summary.csv")

        with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
            staged = gen.save(Path(tmp) / "generator")
            tracking.log_file(staged / "posterior.nc", "posterior")
            tracking.log_file(staged / "generator.json", "posterior")
            model_uri = None
            if register:
                logger.info("registering '%s' in the MLflow model registry", name)
                model_uri = tracking.register_generator(staged, name, _requirements())
            if out_dir.exists():
                shutil.rmtree(out_dir)
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), str(out_dir))
        mlflow.set_tag("converged", str(converged(diag)))
        return FitOutcome(out_dir, run.info.run_id, model_uri, diag, missing.describe())


def _requirements() -> list[str]:
    v = package_versions()
    return [f"{pkg}=={v[pkg]}" for pkg in MODEL_REQUIREMENTS if v.get(pkg, "not installed") != "not installed"]
