"""`insilico run` -> reports and package -> `insilico reproduce`, on real data (small MCMC)."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from studies import small_indo_plan

from insilico.cli import main


def _study(tmp_path: Path) -> Path:
    goals = [{"metric": "data_contract_failures", "threshold": {"equals": 0}},
             {"metric": "comparator_overlap", "threshold": {"equals": 0}},
             {"metric": "max_abs_smd", "threshold": {"max": 0.25}}]
    design_goals = [{"metric": "type_i_error_drift", "threshold": {"max": 0.05}},
                    {"metric": "chunking_identical", "threshold": {"equals": 1}}]
    small_indo_plan(tmp_path, goals, "pipeline-test", design_goals)
    study = {"name": "pipeline-test", "title": "Hybrid control (test)", "credibility_plan": "plan.yaml",
             "twins": {"source": {"example": "indo_rct", "subset": "rx == '1_indomethacin'"},
                       "effect": {"kind": "link_shift", "value": -0.5}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _flip_byte(src: Path, dst: Path, member: str) -> None:
    """Copy a zip, changing one byte in the middle of one member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == member:
                i = len(data) // 2
                data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
            zout.writestr(item, data)


def _forge_report(src: Path, dst: Path, member: str) -> None:
    """What a forger does: change one digit of a number in a report, recompute its manifest entry."""
    with zipfile.ZipFile(src) as zin:
        html = zin.read(member).decode()
        body = html.index("<body")
        m = re.compile(r"\d\.(\d)\d").search(html, body)
        digit = str((int(m.group(1)) + 1) % 10)
        forged = (html[:m.start(1)] + digit + html[m.end(1):]).encode()
        manifest = json.loads(zin.read("MANIFEST.json"))
        manifest["files"][member] = {"sha256": hashlib.sha256(forged).hexdigest(), "size": len(forged)}
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
            for item in zin.infolist():
                data = {member: forged, "MANIFEST.json": json.dumps(manifest).encode()}.get(
                    item.filename, zin.read(item.filename))
                zout.writestr(item, data)


@pytest.mark.slow
def test_run_reports_package_and_reproduce(tmp_path, capsys, dask_processes):
    import mlflow

    study = _study(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--no-progress", "--no-register", "--workers", "1"]) == 0
    for f in ("reports/credibility.html", "reports/credibility.pdf", "reports/simulation.html",
              "reports/simulation.pdf", "validation/records.json", "twins/twins.csv", "study.zip", "run.json"):
        assert (out / f).is_file(), f
    run = json.loads((out / "run.json").read_text())
    parent = mlflow.get_run(run["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["study.out_dir"] == str(out.resolve())
    stages = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{run['run_id']}'", output_format="list")
    assert {s.data.tags["stage"] for s in stages} == {"validate", "twins", "reports", "package"}
    assessment = json.loads((out / "validation" / "assessment.json").read_text())
    drift = next(r for r in json.loads((out / "validation" / "records.json").read_text())
                 if r["metric"] == "type_i_error_drift")
    assert drift["passed"] is False and assessment["overall"]["adequate"] is False  # the drift goal fails honestly
    with zipfile.ZipFile(out / "study.zip") as z:
        names = set(z.namelist())
    assert {"MANIFEST.json", "results/simulation.nc", "evidence/records.json", "reports/credibility.pdf",
            "environment.lock", "data_dictionary.csv"} <= names
    assert not any(n.endswith(("synthetic_cohort.csv", "twins.csv")) for n in names)  # no patient rows

    # a second run with unchanged inputs reuses every stage
    capsys.readouterr()
    assert main(["run", str(study), "--out", str(out), "--no-progress", "--no-register"]) == 0
    err = capsys.readouterr().err
    assert "validate: inputs unchanged" in err and "twins: inputs unchanged" in err and "reports: inputs unchanged" in err

    # the package, signed by its builder and built on one local worker, re-runs bit-identically
    # in a scratch store on a cluster of two worker processes, its signature checked...
    key = tmp_path / "builder.key"
    assert main(["keygen", str(key)]) == 0
    assert main(["sign-package", str(out / "study.zip"), "--key", str(key), "--by", "Test Builder"]) == 0
    capsys.readouterr()
    verdict = tmp_path / "reproduce.json"
    code = main(["reproduce", str(out / "study.zip"), "--scheduler", dask_processes.address,
                 "--public-key", f"{key}.pub", "--json", str(verdict)])
    text = capsys.readouterr().out
    assert code == 0, [r for r in json.loads(verdict.read_text())["rows"] if r["verdict"] == "FAIL"]
    assert "PASS" in text and "Ed25519 signature" in text and "signed with the expected key" in text
    # ...and one changed byte of the results is named
    bad = tmp_path / "tampered.zip"
    _flip_byte(out / "study.zip", bad, "results/simulation.nc")
    assert main(["reproduce", str(bad)]) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "results/simulation.nc" in text
    # ...and so is a number edited in a report whose manifest entry was recomputed to match
    forged = tmp_path / "forged.zip"
    _forge_report(out / "study.zip", forged, "reports/credibility.html")
    assert main(["reproduce", str(forged), "--json", str(tmp_path / "forged.json")]) == 1
    rows = json.loads((tmp_path / "forged.json").read_text())["rows"]
    fails = [(r["file"], r["check"]) for r in rows if r["verdict"] == "FAIL"]
    assert fails == [("reports/credibility.html", "report text")]  # the manifest itself is satisfied


def test_a_failing_stage_stops_the_study_with_a_failed_run(tmp_path, capsys):
    import mlflow
    import pandas as pd

    study = _study(tmp_path)
    plan = yaml.safe_load((tmp_path / "plan.yaml").read_text())
    pd.DataFrame({"id": [1, 2], "rx": "0_placebo", "age": [30, 300], "outcome": ["0_no", "1_yes"]}).to_csv(
        tmp_path / "bad.csv", index=False)
    plan["data"]["training"] = {"path": "bad.csv"}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--no-progress"]) == 2
    assert "gender" in capsys.readouterr().err  # the contract names what is wrong
    runs = mlflow.search_runs(filter_string="tags.`study.name` = 'pipeline-test'", output_format="list")
    assert runs and all(r.info.status == "FAILED" for r in runs if r.data.tags.get("study.out_dir") == str(out.resolve()))
    assert not (out / "study.zip").exists() and not (out / "reports").exists()
