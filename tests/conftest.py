"""Shared fixtures: a throw-away MLflow store per test session, small samplers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.fixture(scope="session")
def pinned_generators(tmp_path_factory) -> Path:
    """Every spec of tests/data/generators fitted on its example data (seed 1), once per session:
    small generators whose fits are bit-reproducible, so their posteriors are not kept in git."""
    from insilico.virtual_patients.examples import example_data
    from insilico.virtual_patients.fitting import fit

    root = tmp_path_factory.mktemp("pinned_generators")
    for spec_file in sorted((Path(__file__).parent / "data" / "generators").glob("*/spec.yaml")):
        name = spec_file.parent.name
        fit(example_data(name), GeneratorSpec.from_yaml(spec_file), seed=1, progress=False).save(root / name)
    return root


def assert_simulate_refuses(spec: dict, tmp_path, capsys, message: str) -> None:
    """`insilico simulate` of this design: one readable message holding ``message``, exit 2,
    no traceback, nothing written."""
    import yaml

    from insilico.cli import main

    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "r.nc"
    assert main(["simulate", "--design", str(path), "--out", str(out), "--serial", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


def with_sampler(spec: GeneratorSpec, draws: int = 500, tune: int = 500, chains: int = 2) -> GeneratorSpec:
    """The same spec with a smaller MCMC run (tests keep MCMC small; ESS still >= 400)."""
    return spec.model_copy(update={"sampler": spec.sampler.model_copy(
        update={"draws": draws, "tune": tune, "chains": chains})})


class DaskProcesses:
    """A real Dask cluster of separate processes on loopback: `dask scheduler` and two
    `dask worker` processes (one thread each), started and stopped by the tests."""

    def __init__(self, folder):

        bin_dir = Path(sys.executable).parent
        self.file = folder / "scheduler.json"
        self.procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                        "--no-dashboard", "--scheduler-file", str(self.file)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        deadline = time.time() + 60
        while not self.file.is_file() and time.time() < deadline:
            time.sleep(0.2)
        assert self.file.is_file(), "the dask scheduler did not start in 60 s"
        self.workers = [subprocess.Popen([str(bin_dir / "dask"), "worker", "--scheduler-file", str(self.file),
                                          "--nthreads", "1", "--no-dashboard", "--no-nanny"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        self.procs += self.workers
        from dask.distributed import Client

        self.address = json.loads(self.file.read_text())["address"]
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)

    def close(self):
        # workers first: a worker whose scheduler is gone waits to reconnect instead of exiting
        for group in (self.workers, self.procs[:1]):
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)


@pytest.fixture
def dask_processes(tmp_path):
    cluster = DaskProcesses(tmp_path)
    yield cluster
    cluster.close()
