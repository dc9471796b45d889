"""Shared fixtures: a throw-away MLflow store per test session, small samplers."""

from __future__ import annotations

import os

import pytest

from insilico.virtual_patients.spec import GeneratorSpec


@pytest.fixture(scope="session", autouse=True)
def isolated_tracking_store(tmp_path_factory):
    """Every test logs to its own SQLite store, never to the repository's mlflow/."""
    root = tmp_path_factory.mktemp("mlflow")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["INSILICO_ARTIFACT_ROOT"] = (root / "artifacts").as_uri()
    yield root
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def with_sampler(spec: GeneratorSpec, draws: int = 500, tune: int = 500, chains: int = 2) -> GeneratorSpec:
    """The same spec with a smaller MCMC run (tests keep MCMC small; ESS still >= 400)."""
    return spec.model_copy(update={"sampler": spec.sampler.model_copy(
        update={"draws": draws, "tune": tune, "chains": chains})})
