"""`insilico simulate`: a trial design over its scenarios, one MLflow run, results to NetCDF."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import xarray as xr

from insilico import tracking
from insilico.common.environment import package_versions
from insilico.common.errors import InputError
from insilico.common.files import atomic, load_tree, sha256_file
from insilico.trials.design import TrialDesign, check_runnable
from insilico.trials.engine import run
from insilico.trials.map_priors import resolve_map_priors
from insilico.trials.oc import operating_characteristics
from insilico.virtual_patients.generator import Generator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationOutcome:
    results_path: Path
    run_id: str
    oc: xr.Dataset


def load_design(design_path: str | Path, replicates: int | None = None) -> TrialDesign:
    """A design file, with ``--replicates`` applied and a generator folder resolved
    against the design file's folder; checked to run (`check_runnable`)."""
    design = TrialDesign.from_yaml(design_path)
    if replicates is not None:
        design = TrialDesign.from_dict({**design.model_dump(mode="json"), "replicates": replicates},
                                       source=f"{design_path} with --replicates {replicates}")
    if design.patients is not None:
        gen_dir = Path(design.patients.generator)
        if not gen_dir.is_absolute():  # generator folders are relative to the design file
            design = TrialDesign.from_dict({**design.model_dump(mode="json"), "patients": {
                **design.patients.model_dump(mode="json"),
                "generator": str((Path(design_path).parent / gen_dir).resolve())}}, source=str(design_path))
        Generator.load(design.patients.generator)  # a clear error now, not inside a worker
    try:
        check_runnable(design)
    except ValueError as err:
        raise InputError(f"{design_path}: {err}") from err
    return design


@dataclass(frozen=True)
class Compute:
    """Where simulations run: local Dask workers (None: one per core) or an existing scheduler.
    Results do not depend on it (keyed random streams), so it is never part of a stage key."""

    workers: int | None = None
    scheduler: str | None = None


#: the default: a local Dask cluster, one worker per core
LOCAL = Compute()


def simulate_design(
    design_path: str | Path,
    out: str | Path,
    *,
    replicates: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    executor: str = "dask",
    progress: Callable[[int, int], None] | None = None,
) -> SimulationOutcome:
    """Run a trial design (one MLflow run) and write replicate results and OCs to NetCDF.

    The file holds two groups: ``/replicates`` (dims scenario, analysis, replicate) and
    ``/oc`` (dims scenario, analysis, each OC with its MCSE). Chunks stream into a results
    store ``<out>.store/`` (Zarr; what ``resume`` completes) and the OCs are computed from it
    by reduction, so this process never holds all replicates; the store is removed once the
    file is written.
    """
    design = load_design(design_path, replicates)
    out = Path(out)
    store = out.with_name(out.name + ".store")
    tracking.setup()
    with mlflow.start_run(run_name=f"simulate {Path(design_path).stem}",
                          nested=mlflow.active_run() is not None) as run_:
        design, derived = resolve_map_priors(design)
        if derived:
            tracking.log_json(derived, "map_priors.json")
        mlflow.set_tags({"stage": "simulate", "design.sha256": design.hash()})
        tracking.log_versions(package_versions())
        tracking.log_spec(design.to_yaml(), design.hash(), "design.yaml")
        mlflow.log_params({"seed": design.seed, "replicates": design.replicates, "chunk_size": design.chunk_size,
                           "n_scenarios": len(design.scenarios), "n_analyses": len(design.analyses),
                           "executor": executor if not scheduler else f"dask:{scheduler}"})
        results = run(design, workers=workers, scheduler=scheduler, store=store, resume=resume,
                      progress=progress, executor=executor)
        oc = operating_characteristics(results)  # reductions over the store
        for v in results.variables.values():
            v.encoding = {}  # Zarr's chunking is not the file's
        with atomic(out) as tmp:  # written chunk by chunk from the store
            xr.DataTree.from_dict({"replicates": results, "oc": oc}).to_netcdf(tmp, engine="netcdf4")
        results.close()
        # one batch: a store round-trip per cell made a 400-scenario design spend minutes here
        tracking.log_metrics({tracking.metric_name(f"{s}.{a}.{k}"): float(oc[k].sel(scenario=s, analysis=a))
                              for s in oc.scenario.values for a in oc.analysis.values
                              for k in ("rejection_rate", "rejection_rate_mcse", "bias", "rmse", "coverage")})
        tracking.log_file(out, "results")
        mlflow.set_tag("results.sha256", sha256_file(out))
        shutil.rmtree(store, ignore_errors=True)
        return SimulationOutcome(out, run_.info.run_id, oc)


def read_results(path: str | Path, *, replicates: bool = True) -> tuple[xr.Dataset | None, xr.Dataset]:
    """(replicates, oc) Datasets of a results file written by `simulate_design`, read into
    memory and the file closed. ``replicates=False`` reads the small ``/oc`` group alone
    (replicates None): what a table of operating characteristics needs at any scale."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        tree = load_tree(p, ("oc", "replicates") if replicates else ("oc",))
    except KeyError as err:
        raise InputError(f"{p}: not a results file written by 'insilico simulate' ({err.args[0]})") from err
    except (OSError, ValueError) as err:
        raise InputError(f"{p}: not a results file written by 'insilico simulate' ({err})") from err
    return (tree["replicates"].to_dataset() if replicates else None), tree["oc"].to_dataset()
