"""Real tracking servers, started by the tests on loopback (`tests/servers.py`): a study run
against `mlflow server` backed by PostgreSQL, its package fetched through the server and
reproduced; and two studies logging to one fresh SQLite store at the same time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import mlflow
import pytest
import xarray as xr
from servers import MlflowServer, Postgres

from insilico.bundled import write_bundled
from insilico.common.files import sha256_file

STUDY = "study_qualification"


def _insilico(*args: str, env: dict, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "insilico", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _env(uri: str) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("INSILICO_ARTIFACT_ROOT", None)  # the server decides where artifacts go
    return env


@pytest.fixture
def postgres():
    server = Postgres()
    yield server
    server.close()


@pytest.mark.slow
def test_a_study_on_an_mlflow_server_backed_by_postgres_packages_through_it_and_reproduces(tmp_path, postgres):
    server = MlflowServer(postgres.uri, tmp_path / "server-artifacts", tmp_path / "server.log")
    try:
        write_bundled(STUDY, tmp_path / "study")
        env = _env(server.url)
        start = time.perf_counter()
        code, out = _finish(_insilico("run", f"study/{STUDY}.yaml", "--out", "out", "--no-progress",
                                      "--no-register", env=env, cwd=tmp_path))
        ran = time.perf_counter() - start
        assert code == 0, out[-4000:]
        run_id = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]
        built = sha256_file(tmp_path / "out" / "study.zip")
        # the runs live in PostgreSQL and the artifacts behind the server, not in the client's folder
        assert int(postgres.query(f"select count(*) from runs where run_uuid = '{run_id}'")) == 1
        assert postgres.query(f"select status from runs where run_uuid = '{run_id}'") == "FINISHED"
        stages = postgres.query("select value from tags where key = 'stage' and run_uuid in (select run_uuid "
                                f"from tags where key = 'mlflow.parentRunId' and value = '{run_id}')")
        assert sorted(stages.split()) == ["package", "reports", "validate"]
        assert list((tmp_path / "server-artifacts").rglob("study.zip"))
        shutil.rmtree(tmp_path / "out")  # a reviewer's machine: only the server holds the study

        start = time.perf_counter()
        code, out = _finish(_insilico("package", run_id, "--out", "fetched.zip", env=env, cwd=tmp_path))
        fetched = time.perf_counter() - start
        assert code == 0, out[-3000:]
        assert sha256_file(tmp_path / "fetched.zip") == built and "manifest intact" in out

        start = time.perf_counter()
        code, out = _finish(_insilico("reproduce", "fetched.zip", "--json", "reproduce.json", env=env, cwd=tmp_path))
        rows = json.loads((tmp_path / "reproduce.json").read_text())["rows"]
        assert code == 0, [r for r in rows if r["verdict"] == "FAIL"]
        print(f"\nserver test: run {ran:.0f} s, reproduce {time.perf_counter() - start:.0f} s "
              f"(fetch {fetched:.1f} s), {len(rows)} reproduce checks")
    finally:
        server.close()


@pytest.mark.slow
def test_an_unknown_run_id_through_the_server_is_a_readable_error(tmp_path, postgres):
    server = MlflowServer(postgres.uri, tmp_path / "server-artifacts", tmp_path / "server.log")
    try:
        code, out = _finish(_insilico("package", "0" * 32, "--out", "x.zip", env=_env(server.url), cwd=tmp_path))
        assert code == 2 and "neither a study output folder nor an MLflow run id" in out and "Traceback" not in out
        assert not (tmp_path / "x.zip").exists()
    finally:
        server.close()


@pytest.mark.slow
def test_two_studies_logging_to_one_fresh_sqlite_store_at_once_both_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    env = {**_env(uri), "INSILICO_ARTIFACT_ROOT": (tmp_path / "mlflow" / "artifacts").as_uri()}
    write_bundled(STUDY, tmp_path / "study")
    procs = [_insilico("run", f"study/{STUDY}.yaml", "--out", f"out{k}", "--no-progress", "--no-register",
                       "--workers", "1", env=env, cwd=tmp_path) for k in range(2)]
    outcomes = [_finish(p) for p in procs]
    assert [code for code, _ in outcomes] == [0, 0], "\n".join(out[-3000:] for _, out in outcomes)
    ids = [json.loads((tmp_path / f"out{k}" / "run.json").read_text())["run_id"] for k in range(2)]
    client = mlflow.MlflowClient(tracking_uri=uri)
    for run_id in ids:
        assert client.get_run(run_id).info.status == "FINISHED"
        stages = client.search_runs([client.get_run(run_id).info.experiment_id],
                                    filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
        assert sorted(s.data.tags["stage"] for s in stages) == ["package", "reports", "validate"]
    # the same seeds and inputs: the two concurrent studies drew the same posterior and results
    results = [xr.load_dataset(tmp_path / f"out{k}" / "validation" / "simulation.nc") for k in range(2)]
    xr.testing.assert_equal(*results)
