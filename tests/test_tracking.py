"""The MLflow store under concurrent use: processes that open a fresh SQLite store at the same
time all finish (MLflow creates and migrates the tables on first use with no lock; without
`tracking._store_lock` two of three such processes fail in alembic migrations)."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow

WRITER = """
import sys
import mlflow
from insilico import tracking
tracking.setup()
with mlflow.start_run(run_name=sys.argv[1]):
    for i in range(10):
        mlflow.log_metric("m", i, step=i)
    mlflow.log_dict({"who": sys.argv[1]}, "who.json")
"""


def test_processes_opening_a_fresh_sqlite_store_at_once_all_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "INSILICO_ARTIFACT_ROOT": (tmp_path / "art").as_uri()}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{k}"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in outcomes] == [0, 0, 0, 0], "\n".join(err[-1500:] for _, err in outcomes)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("insilico-trials")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["w0", "w1", "w2", "w3"]
    assert all(r.data.metrics["m"] == 9 for r in runs)
