"""The command line as a user meets it: bad input is a clear message and exit code 2
with nothing fitted or written; a good fit is tracked, registered and reloadable."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from insilico.cli import main
from insilico.virtual_patients.examples import example_data, example_spec_path


@pytest.fixture
def gbsg(tmp_path):
    """The GBSG-2 data and spec as files a user would have."""
    data = example_data("gbsg")
    spec = yaml.safe_load(example_spec_path("gbsg").read_text())
    return tmp_path, data, spec


def _write(tmp: Path, data: pd.DataFrame, spec: dict) -> tuple[str, str]:
    d, s = tmp / "data.csv", tmp / "spec.yaml"
    data.to_csv(d, index=False)
    s.write_text(yaml.safe_dump(spec))
    return str(d), str(s)


def _fit(tmp: Path, data_path: str, spec_path: str, capsys) -> tuple[int, str]:
    code = main(["fit", "--data", data_path, "--spec", spec_path, "--out", str(tmp / "gen"), "--no-progress"])
    return code, capsys.readouterr().err


def _last_run():
    runs = mlflow.search_runs(experiment_names=["insilico-trials"], order_by=["attributes.start_time DESC"])
    return runs.iloc[0]


def _contract_failure(tmp, data, spec, capsys, *expected: str) -> None:
    code, err = _fit(tmp, *_write(tmp, data, spec), capsys)
    assert code == 2
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err
    assert not (tmp / "gen").exists()  # nothing fitted, nothing half-written
    run = _last_run()
    assert run["status"] == "FAILED"
    files = [a.path for a in mlflow.artifacts.list_artifacts(run_id=run["run_id"], artifact_path="data_contract")]
    assert "data_contract/validation_result.json" in files


def test_missing_column(gbsg, capsys):
    tmp, data, spec = gbsg
    _contract_failure(tmp, data.drop(columns="er"), spec, capsys, '"er"', "missing")


def test_wrong_type(gbsg, capsys):
    tmp, data, spec = gbsg
    data = data.astype({"age": object})
    data.loc[data.index[:3], "age"] = "unknown"
    _contract_failure(tmp, data, spec, capsys, '"age"', "numeric")


def test_unknown_category(gbsg, capsys):
    tmp, data, spec = gbsg
    data.loc[data.index[0], "grade"] = 4
    _contract_failure(tmp, data, spec, capsys, '"grade"', "4")


def test_negative_time(gbsg, capsys):
    tmp, data, spec = gbsg
    data.loc[data.index[data.hormon == 0][:2], "rfstime"] = -5
    _contract_failure(tmp, data, spec, capsys, '"rfstime"')


def test_event_coded_two(gbsg, capsys):
    tmp, data, spec = gbsg
    data.loc[data.index[data.hormon == 0][:3], "status"] = 2
    _contract_failure(tmp, data, spec, capsys, '"status"', "2")


def test_header_only_file(gbsg, capsys):
    tmp, data, spec = gbsg
    _contract_failure(tmp, data.iloc[:0], spec, capsys, "row")


def test_empty_file(gbsg, capsys):
    tmp, data, spec = gbsg
    d, s = _write(tmp, data, spec)
    Path(d).write_text("")
    code, err = _fit(tmp, d, s, capsys)
    assert code == 2 and "empty" in err and not (tmp / "gen").exists()


def test_unknown_spec_key(gbsg, capsys):
    tmp, data, spec = gbsg
    spec["outcome"]["familly"] = "weibull"
    code, err = _fit(tmp, *_write(tmp, data, spec), capsys)
    assert code == 2 and "outcome.familly" in err and "unknown key" in err
    assert not (tmp / "gen").exists()


def test_missing_data_file(tmp_path, capsys):
    code, err = _fit(tmp_path, str(tmp_path / "nope.csv"), str(example_spec_path("gbsg")), capsys)
    assert code == 2 and "no such file" in err


def test_sample_from_non_generator(tmp_path, capsys):
    code = main(["sample", str(tmp_path), "--n", "5", "--seed", "1", "--out", str(tmp_path / "x.csv")])
    assert code == 2 and "insilico fit" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_fit_sample_twins_end_to_end(tmp_path, capsys):
    """anorexia control arm (26 patients): small but real; the whole CLI path once."""
    data = example_data("anorexia")
    spec = yaml.safe_load(example_spec_path("anorexia").read_text())
    spec["sampler"] = {"draws": 500, "tune": 500, "chains": 2}
    d, s = _write(tmp_path, data, spec)
    code, err = _fit(tmp_path, d, s, capsys)
    assert code == 0, err
    run = _last_run()
    assert run["status"] == "FINISHED"
    assert run["metrics.contract_success"] == 1.0
    assert run["metrics.max_rhat"] < 1.01 and run["metrics.divergences"] == 0
    from insilico.common.files import sha256_file
    from insilico.virtual_patients.spec import GeneratorSpec

    assert run["tags.spec.sha256"] == GeneratorSpec.from_yaml(tmp_path / "gen" / "spec.yaml").hash()

    assert run["tags.input.training.sha256"] == sha256_file(d)

    out = tmp_path / "arm.csv"
    assert main(["sample", str(tmp_path / "gen"), "--n", "1000", "--seed", "7", "--out", str(out)]) == 0
    arm = pd.read_csv(out)
    assert len(arm) == 1000 and set(arm.columns) == {"rownames", "Prewt", "Postwt"}
    # the same seed from a reloaded generator gives the same cohort, to the last bit
    out2 = tmp_path / "arm2.csv"
    assert main(["sample", str(tmp_path / "gen"), "--n", "1000", "--seed", "7", "--out", str(out2)]) == 0
    assert out.read_bytes() == out2.read_bytes()

    twins = tmp_path / "twins.csv"
    assert main(["twins", str(tmp_path / "gen"), "--data", d, "--out", str(twins), "--shift", "3.0"]) == 0
    tw = pd.read_csv(twins)
    np.testing.assert_allclose(tw["Postwt_treated"] - tw["Postwt_control"], 3.0, atol=1e-9)

    # the registered model answers with the generator's prognostic scores
    model = mlflow.pyfunc.load_model(f"models:/generator-spec/{_latest_version('generator-spec')}")
    scores = np.asarray(model.predict(data[data.Treat == "Cont"]))
    np.testing.assert_allclose(scores, tw.loc[tw.Treat == "Cont", "prognostic_score"].to_numpy(), rtol=1e-9)


def _latest_version(name: str) -> str:
    client = mlflow.MlflowClient()
    return max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)).version


# ---------------------------------------------------------------------- the CLI's own behaviour
def test_version_and_debug_anywhere(capsys):
    with pytest.raises(SystemExit) as ok:
        main(["--version"])
    assert ok.value.code == 0 and capsys.readouterr().out.startswith("insilico-trials ")
    # --debug is accepted after the command too, and shows the traceback of a user error
    assert main(["sample", "/nonexistent-generator", "--n", "5", "--seed", "1", "--out", "x.csv", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "not a saved generator" in err


def test_a_bug_is_exit_1_with_the_traceback_in_a_log(tmp_path, capsys, monkeypatch):
    import insilico.stages.simulate as simulate

    def broken(path, **_):
        raise KeyError("an internal mistake")

    monkeypatch.setattr(simulate, "read_results", broken)
    monkeypatch.setenv("INSILICO_LOG_DIR", str(tmp_path / "logs"))
    assert main(["oc", "results.nc"]) == 1
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "This is a bug in insilico-trials" in err
    assert "Traceback" not in err  # not on the screen without --debug
    (log,) = (tmp_path / "logs").glob("insilico-error-*.log")
    assert str(log) in err and "Traceback" in log.read_text() and "an internal mistake" in log.read_text()


def test_a_closed_pipe_ends_quietly(tmp_path):
    """``insilico oc ... | head`` stops without a BrokenPipeError (the output is larger than a pipe's buffer)."""
    import subprocess
    import sys

    import xarray as xr

    from insilico.trials.design import TrialDesign
    from insilico.trials.engine import run as simulate
    from insilico.trials.oc import operating_characteristics

    design = {"seed": 1, "replicates": 20, "chunk_size": 20,
              "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
              "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 20},
              "scenarios": [{"name": f"s{i}", "effect": i / 100} for i in range(400)],
              "analyses": [{"name": "t", "method": "difference_in_means"}]}
    # the results file as 'insilico simulate' writes it, without its per-chunk checkpoint
    results = simulate(TrialDesign.from_dict(design), executor="serial")
    xr.DataTree.from_dict({"replicates": results, "oc": operating_characteristics(results)}).to_netcdf(
        tmp_path / "many.nc", engine="netcdf4")
    insilico = Path(sys.executable).with_name("insilico")
    run = subprocess.run(["bash", "-c", f"'{insilico}' oc '{tmp_path / 'many.nc'}' --format json | head -c 20; "
                          "echo; echo status=${PIPESTATUS[0]}"], capture_output=True, text=True, timeout=120)
    assert "status=0" in run.stdout, run.stdout + run.stderr
    assert "BrokenPipe" not in run.stderr and "Traceback" not in run.stderr, run.stderr
