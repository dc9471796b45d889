"""MLflow tracking conventions: where runs go, and one small `log_<thing>` per record.

Default store: ``sqlite:///<project>/mlflow/mlflow.db`` with artifacts in
``<project>/mlflow/artifacts`` (the project root when installed from a checkout, else
the working directory). ``MLFLOW_TRACKING_URI`` points at a shared server instead.
Patient rows are never logged: inputs are recorded by path, SHA-256 and a schema.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd

from insilico.common.jsonable import dumps, lenient
from insilico.virtual_patients.generator import Generator

DEFAULT_EXPERIMENT = "insilico-trials"


def project_root() -> Path:
    """The checkout holding this package (its mlflow/ folder), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "mlflow" / "README.md").is_file() else Path.cwd()


def store_paths() -> tuple[str, str]:
    """(tracking URI, default artifact location)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    root = project_root() / "mlflow"
    if uri:
        return uri, os.environ.get("INSILICO_ARTIFACT_ROOT", "")
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store while it is created or migrated.

    MLflow creates and migrates a SQLite database on first use with no lock of its own: two
    processes opening a fresh store at once both run the migrations and one fails. Other
    stores (a server, PostgreSQL) handle their own concurrency.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one process per fresh store)
        fcntl = None
    if fcntl is None or not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def setup(experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Point MLflow at the store and select (creating if needed) the experiment."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri, artifacts = store_paths()
    if mlflow.active_run() is not None:  # a stage inside a parent run stays in its experiment
        return uri
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):  # first use creates the tables; two processes must not both do it
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            mlflow.create_experiment(experiment, artifact_location=artifacts or None)
        mlflow.set_experiment(experiment)
    return uri


def log_versions(versions: dict[str, str]) -> None:
    mlflow.set_tags({f"version.{k}": v for k, v in versions.items()})
    commit = git_commit()
    if commit:
        mlflow.set_tag("code.git_commit", commit)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True,
                             text=True, timeout=5, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def log_input_file(path: str | Path, sha256: str, columns: dict[str, str], context: str = "training") -> None:
    """Record an input file as an MLflow dataset: path, SHA-256 and column types; no rows."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, DataType, Schema

    kinds = {"i": DataType.long, "u": DataType.long, "f": DataType.double, "b": DataType.boolean}
    schema = Schema([ColSpec(kinds.get(k, DataType.string), name) for name, k in columns.items()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the registry warns while it guesses a source type
        source = resolve_dataset_source(str(Path(path).resolve()))
    # the dataset table keeps at most 36 characters of digest; the full hash goes in a tag
    ds = MetaDataset(source, name=Path(path).name, digest=sha256[:36], schema=schema)
    mlflow.log_input(ds, context=context)
    mlflow.set_tag(f"input.{context}.sha256", sha256)


def log_json(obj: Any, artifact_file: str) -> None:
    mlflow.log_text(dumps(obj, strict=False, default=lenient), artifact_file)


def log_dataframe(df, artifact_file: str) -> None:
    mlflow.log_text(df.to_csv(), artifact_file)


def log_file(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def metric_name(name: str) -> str:
    """A name MLflow accepts as a metric key (letters, digits, _ - . space /); others become _."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})


def log_spec(spec_yaml: str, spec_hash: str, artifact_file: str = "spec.yaml") -> None:
    mlflow.log_text(spec_yaml, artifact_file)
    mlflow.set_tag("spec.sha256", spec_hash)


def register_generator(directory: str | Path, registered_name: str, requirements: list[str]) -> str:
    """Log a saved generator folder as a pyfunc model (`GeneratorModel`) and register it;
    returns the model URI."""
    info = mlflow.pyfunc.log_model(
        name="generator",
        python_model=GeneratorModel(),
        artifacts={"generator": str(directory)},
        registered_model_name=registered_name,
        pip_requirements=requirements,
    )
    return info.model_uri


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """The generator as an MLflow pyfunc model, so it can live in the model registry:
    ``mlflow.pyfunc.load_model(uri).predict(df)`` returns each patient's prognostic score
    (`Generator.prognostic_score`); the saved generator folder travels as an artifact."""

    def load_context(self, context) -> None:
        self.generator = Generator.load(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        return self.generator.prognostic_score(model_input).tolist()

