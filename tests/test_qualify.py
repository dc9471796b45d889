"""`insilico qualify` (IQ/OQ/PQ) and the compile-cache independence it certifies.

The slow test is also the cold/warm compile-cache test of a package: a reviewer's first run
compiles every model from scratch, the builder's machine loads most from PyTensor's cache.
With numba fast-math on (PyTensor's default) the two gave different NUTS draws for the very
generator the qualification study fits (indo_rct, 2 x 300 draws: posterior hash 313bbfc6...
from an empty cache, a08d9aea... from a warm one), and a reproduce failed on MCMC-derived
records; `insilico.common.compilation` compiles without it. Each command runs in its own
process with its own ``base_compiledir``, so the cache state is the one named.

Its last step stands in for another platform: the package re-run with fast-math forced back
on, so the NUTS draws differ as another compiler's would. Measured: 151 checks, 22 evidence
records moved (e.g. min tail ESS 211 -> 85, judged by verdict; pMSE ratio 1.056 -> 0.990
within its re-run spread 1.02), none outside its tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from insilico.checks.qualification import FORMAT, qualification_metrics
from insilico.cli import main
from insilico.common.environment import package_versions
from insilico.validation.plan import PlanError

# `insilico ARGS...` as another build would run it: the models compiled with fast-math on
OTHER_BUILD = ("import sys; from insilico.common import compilation; "
               "compilation.REPRODUCIBLE_FLAGS['numba__fastmath'] = True; "
               "from insilico.cli import main; sys.exit(main(sys.argv[1:]))")


def _cli(args: list[str], compiledir: Path, tracking: Path, module: bool = True) -> subprocess.CompletedProcess:
    compiledir.mkdir(exist_ok=True)
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}", "MLFLOW_TRACKING_URI": f"sqlite:///{tracking}"}
    return subprocess.run([sys.executable, *(["-m", "insilico"] if module else []), *args], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"]


def _check(rows: list[dict], check: str) -> list[str]:
    return [r["verdict"] for r in rows if r["check"] == check]


@pytest.mark.slow
def test_qualify_builds_cold_reproduces_warm_and_the_package_reproduces_cold_on_two_workers(tmp_path):
    tracking, out = tmp_path / "mlflow.db", tmp_path / "qualification"
    done = _cli(["qualify", "--out", str(out), "--replicates", "1000"], tmp_path / "cache_build", tracking)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    doc = json.loads((out / "qualification.json").read_text())
    assert doc["passed"] and doc["failures"] == 0 and doc["performance_qualified"]
    assert [p["name"] for p in doc["phases"]] == ["IQ", "OQ", "PQ"] and all(p["total"] for p in doc["phases"])
    assert (out / "qualification.pdf").read_bytes().startswith(b"%PDF")
    # PQ: built from an empty cache, re-run from its package with the cache the build filled
    assert any((tmp_path / "cache_build").rglob("*.nbi")), "the build left no numba cache: the re-run was not warm"
    rows = _rows(out / "pq_study" / "reproduce.json")
    assert not [r for r in rows if r["verdict"] == "FAIL"]
    assert _check(rows, "posterior draws bit-identical") == ["PASS"]
    assert set(_check(rows, "report text")) == {"PASS"} and len(_check(rows, "report text")) >= 4  # HTML + PDF x 2

    # the reverse: that package re-run from an empty cache, on two worker processes
    verdict = tmp_path / "verdict.json"
    done = _cli(["reproduce", str(out / "pq_study" / "study.zip"), "--json", str(verdict), "--workers", "2"],
                tmp_path / "cache_fresh", tracking)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    rows = _rows(verdict)
    assert _check(rows, "posterior draws bit-identical") == ["PASS"]
    assert set(_check(rows, "report text")) == {"PASS"}

    # another build's numerics: fast-math on (LLVM free to reassociate) gives other NUTS draws,
    # as another platform's compiler would; the package still reproduces, within the tolerances
    # its records carry, and its reports match with the digits masked
    verdict = tmp_path / "other_build.json"
    done = _cli(["-c", OTHER_BUILD, "reproduce", str(out / "pq_study" / "study.zip"), "--json", str(verdict)],
                tmp_path / "cache_other", tracking, module=False)
    rows = _rows(verdict)
    assert done.returncode == 0, [r for r in rows if r["verdict"] == "FAIL"]
    assert _check(rows, "posterior draws bit-identical") == ["INFO"]  # the draws did differ
    assert set(_check(rows, "report text")) == {"PASS"}
    assert {r["tolerance"] for r in rows if r["check"] == "report text"} == \
        {"text identical but run ids, times and digits"}
    moved = [r for r in rows if r["file"] == "evidence/records.json" and r["expected"] != r["got"]]
    assert len(moved) >= 5, "the other build's evidence barely moved: it drew (nearly) the same posterior"
    print(f"\nanother build: {len(rows)} checks, {len(moved)} evidence records moved within their tolerances")

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tracking}")
    runs = mlflow.search_runs(filter_string="tags.stage = 'qualification'", search_all_experiments=True,
                              output_format="list")
    assert [r.info.run_id for r in runs] == [doc["run_id"]]
    assert runs[0].data.metrics["qualification_failures"] == 0


def test_a_lock_the_installation_does_not_match_fails_iq_and_exits_1(tmp_path, capsys):
    lock = tmp_path / "environment.lock"
    lock.write_text(f"numpy=={package_versions(('numpy',))['numpy']}\nscipy==0.0.1\n")
    out = tmp_path / "q"
    assert main(["qualify", "--out", str(out), "--lock", str(lock), "--skip-pq", "--replicates", "400"]) == 1
    doc = json.loads((out / "qualification.json").read_text())
    iq = next(p for p in doc["phases"] if p["name"] == "IQ")
    pinned = {r["item"]: r["verdict"] for r in iq["rows"] if r["check"] == "pinned in environment.lock"}
    assert pinned == {"numpy": "PASS", "scipy": "FAIL"} and doc["failures"] == 1
    assert all(r["verdict"] == "PASS" for p in doc["phases"] if p["name"] == "OQ" for r in p["rows"])
    assert "NOT QUALIFIED" in capsys.readouterr().err
    assert (out / "qualification.html").is_file() and (out / "qualification.pdf").is_file()


def test_a_missing_lock_is_a_user_error(tmp_path):
    assert main(["qualify", "--out", str(tmp_path / "q"), "--lock", str(tmp_path / "none.lock"), "--skip-pq"]) == 2
    assert not (tmp_path / "q").exists()


def _doc(tmp_path: Path, **kw) -> Path:
    doc = {"format": FORMAT, "version": package_versions(("insilico-trials",))["insilico-trials"], "failures": 0,
           "performance_qualified": True, "run_id": "r", **kw}
    path = tmp_path / "qualification.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_software_quality_metric_counts_failures_another_version_and_a_skipped_pq(tmp_path):
    value = lambda p: qualification_metrics(p)["qualification_failures"]["value"]  # noqa: E731
    assert value(_doc(tmp_path)) == 0
    assert value(_doc(tmp_path, failures=2)) == 2
    assert value(_doc(tmp_path, version="0.0.0")) == 1
    assert value(_doc(tmp_path, performance_qualified=False)) == 1
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(PlanError, match="not written by 'insilico qualify'"):
        qualification_metrics(tmp_path / "bad.json")


def test_oq_holds_the_generator_likelihood_to_lifelines_and_catches_a_wrong_reference(monkeypatch):
    """The Weibull likelihood at lifelines' MLE equals lifelines' maximum (measured: |diff| 0.0,
    max |score| 1.1e-3); a reference shifted by 1e-4 in log-likelihood, or an MLE moved by 0.05
    in one coefficient, fails."""
    from insilico.checks import qualification

    rows = qualification.lifelines_rows()
    assert [r.verdict for r in rows] == ["PASS", "PASS"]
    real = qualification.reference_values

    def shifted(name, *, dll=0.0, dbeta=0.0):
        ref = real(name)
        ref["log_likelihood"] += dll
        ref["ph"]["beta"]["age"] += dbeta
        return ref

    monkeypatch.setattr(qualification, "reference_values", lambda n: shifted(n, dll=1e-4))
    assert [r.verdict for r in qualification.lifelines_rows()] == ["FAIL", "PASS"]
    monkeypatch.setattr(qualification, "reference_values", lambda n: shifted(n, dbeta=0.05))
    assert [r.verdict for r in qualification.lifelines_rows()][1] == "FAIL"
