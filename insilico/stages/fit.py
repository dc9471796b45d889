"""Pipeline stages that join the packages: each stage is one MLflow run.

`fit_generator` is the tracked fit behind ``insilico fit``: data contract first (a
failing contract ends the run FAILED with the validation result attached, and fits
nothing), then the PyMC fit, convergence diagnostics, the saved generator, and its
registration in the MLflow model registry.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class InputError(ValueError):
    """An input file cannot be used (missing, unreadable, empty, wrong format)."""


@dataclass(frozen=True)
class FitOutcome:
    generator_dir: Path
    run_id: str
    model_uri: str | None
    diagnostics: dict
    missing: str


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet patient table with a clear error for the usual mistakes."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty (no header, no rows)")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise InputError(f"{p}: cannot be read as {'Parquet' if p.suffix.lower() in ('.parquet', '.pq') else 'CSV'} ({err})") from err


def write_atomically(df: pd.DataFrame, out: str | Path) -> Path:
    """Write a CSV through a temporary file, so a failure never leaves half a file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, suffix=".tmp", delete=False) as tmp:
        df.to_csv(tmp.name, index=False)
    Path(tmp.name).replace(out)
    return out


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
    log=print,
) -> FitOutcome:
    """Contract-check, fit, diagnose, save and register a generator; one MLflow run."""
    import mlflow

    from insilico import tracking
    from insilico.validation.contract import DataContractError, check_data
    from insilico.validation.diagnostics import converged, mcmc_diagnostics, posterior_summary
    from insilico.virtual_patients.generator import drop_missing, fit, select_rows
    from insilico.registry import GeneratorModel
    from insilico.virtual_patients.spec import GeneratorSpec

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir}: exists and is not empty; choose a new --out or pass --overwrite")
    spec = GeneratorSpec.from_yaml(spec_path)
    df = read_table(data_path)
    sha = tracking.sha256_file(data_path)
    rows = select_rows(df, spec)

    tracking.setup()
    name = model_name or f"generator-{Path(spec_path).stem}"
    with mlflow.start_run(run_name=f"fit {Path(spec_path).stem}", nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags({"stage": "fit_generator", "seed": str(seed)})
        tracking.log_versions(_versions())
        tracking.log_spec(spec.to_yaml(), spec.hash())
        tracking.log_input_file(data_path, sha, {c: df[c].dtype.kind for c in df.columns})
        mlflow.log_params({"seed": seed, "n_rows_file": len(df), "n_rows_selected": len(rows),
                           "family": spec.outcome.family.value, "n_covariates": len(spec.covariates)})

        log(f"checking the data contract ({len(spec.columns)} columns, {len(rows)} rows)")
        result = check_data(rows, spec)
        tracking.log_json(result.gx_result, "data_contract/validation_result.json")
        tracking.log_json({"success": result.success, "failures": result.failures,
                           "missingness": result.missingness}, "data_contract/summary.json")
        tracking.log_metrics({"contract_success": float(result.success)})
        if not result.success:
            mlflow.end_run(status="FAILED")
            raise DataContractError(result)
        _, missing = drop_missing(rows, spec)
        log(missing.describe())
        tracking.log_metrics({"n_patients": missing.n_used, "n_dropped_missing": missing.n_dropped})

        log(f"fitting the generator: {spec.sampler.chains} chains x {spec.sampler.draws} draws (nutpie)")
        gen = fit(df, spec, seed, progress=progress, data_sha256=sha, check_contract=False)  # fit selects the rows
        diag = mcmc_diagnostics(gen.posterior)
        gen.meta["diagnostics"] = diag
        gen.meta["mlflow_run_id"] = run.info.run_id
        tracking.log_metrics({**{k: v for k, v in diag.items()}, "sampling_seconds": gen.meta["sampling_seconds"]})
        tracking.log_dataframe(posterior_summary(gen.posterior), "posterior/summary.csv")

        with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
            staged = gen.save(Path(tmp) / "generator")
            tracking.log_file(staged / "posterior.nc", "posterior")
            tracking.log_file(staged / "generator.json", "posterior")
            model_uri = None
            if register:
                log(f"registering '{name}' in the MLflow model registry")
                model_uri = tracking.register_directory_model(staged, GeneratorModel(), name, _requirements())
            if out_dir.exists():
                shutil.rmtree(out_dir)
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), str(out_dir))
        mlflow.set_tag("converged", str(converged(diag)))
        return FitOutcome(out_dir, run.info.run_id, model_uri, diag, missing.describe())


def _versions() -> dict[str, str]:
    from insilico.virtual_patients.generator import package_versions

    return package_versions()


def _requirements() -> list[str]:
    v = _versions()
    return [f"{pkg}=={v[pkg]}" for pkg in ("pymc", "nutpie", "arviz", "numpy", "scipy", "pandas", "xarray")
            if v.get(pkg, "not installed") != "not installed"]


# ---------------------------------------------------------------------- simulation
@dataclass(frozen=True)
class SimulationOutcome:
    results_path: Path
    run_id: str
    oc: object  # xarray.Dataset


def simulate_design(
    design_path: str | Path,
    out: str | Path,
    *,
    replicates: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    executor: str = "dask",
    progress=None,
    log=print,
) -> SimulationOutcome:
    """Run a trial design (one MLflow run) and write replicate results and OCs to NetCDF.

    The file holds two groups: ``/replicates`` (dims scenario, analysis, replicate) and
    ``/oc`` (dims scenario, analysis, each OC with its MCSE). Chunks are checkpointed to
    ``<out>.chunks/`` (Zarr) and removed once the file is written.
    """
    import shutil

    import mlflow
    import xarray as xr

    from insilico.trials.design import TrialDesign
    from insilico.trials.engine import run
    from insilico.trials.oc import operating_characteristics
    from insilico import tracking

    design = TrialDesign.from_yaml(design_path)
    if replicates is not None:
        design = TrialDesign.from_dict({**design.model_dump(mode="json"), "replicates": replicates},
                                       source=f"{design_path} with --replicates {replicates}")
    if design.patients is not None:
        gen_dir = Path(design.patients.generator)
        if not gen_dir.is_absolute():  # generator folders are relative to the design file
            design = TrialDesign.from_dict({**design.model_dump(mode="json"), "patients": {
                **design.patients.model_dump(mode="json"),
                "generator": str((Path(design_path).parent / gen_dir).resolve())}})
        from insilico.virtual_patients.generator import Generator

        Generator.load(design.patients.generator)  # a clear error now, not inside a worker
    out = Path(out)
    checkpoint = out.with_name(out.name + ".chunks")
    tracking.setup()
    with mlflow.start_run(run_name=f"simulate {Path(design_path).stem}",
                          nested=mlflow.active_run() is not None) as run_:
        from insilico.trials.bayesian import resolve_map_priors

        design, derived = resolve_map_priors(design, log=log)
        if derived:
            tracking.log_json(derived, "map_priors.json")
        mlflow.set_tags({"stage": "simulate", "design.sha256": design.hash()})
        tracking.log_versions(_versions())
        tracking.log_spec(design.to_yaml(), design.hash(), "design.yaml")
        mlflow.log_params({"seed": design.seed, "replicates": design.replicates, "chunk_size": design.chunk_size,
                           "n_scenarios": len(design.scenarios), "n_analyses": len(design.analyses),
                           "executor": executor if not scheduler else f"dask:{scheduler}"})
        results = run(design, workers=workers, scheduler=scheduler, checkpoint=checkpoint, resume=resume,
                      progress=progress, executor=executor)
        oc = operating_characteristics(results)
        tree = xr.DataTree.from_dict({"replicates": results, "oc": oc})
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tree.to_netcdf(tmp, engine="netcdf4")
        tmp.replace(out)
        for s in oc.scenario.values:
            for a in oc.analysis.values:
                cell = oc.sel(scenario=s, analysis=a)
                tracking.log_metrics({tracking.metric_name(f"{s}.{a}.{k}"): float(cell[k]) for k in
                                      ("rejection_rate", "rejection_rate_mcse", "bias", "rmse", "coverage")})
        tracking.log_file(out, "results")
        mlflow.set_tag("results.sha256", tracking.sha256_file(out))
        shutil.rmtree(checkpoint, ignore_errors=True)
        return SimulationOutcome(out, run_.info.run_id, oc)


def read_results(path: str | Path):
    """(replicates, oc) Datasets of a results file written by `simulate_design`."""
    from insilico.virtual_patients.generator import load_tree

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        tree = load_tree(p)
    except (OSError, ValueError) as err:
        raise InputError(f"{p}: not a results file written by 'insilico simulate' ({err})") from err
    if "oc" not in tree.children or "replicates" not in tree.children:
        raise InputError(f"{p}: not a results file written by 'insilico simulate' (no /oc group)")
    return tree["replicates"].to_dataset(), tree["oc"].to_dataset()
