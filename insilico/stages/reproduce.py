"""`insilico reproduce`: re-run a submission package's study and compare it file by file.

The manifest is verified first (a changed byte fails naming the file; the re-run is then
skipped unless forced, because a tampered package proves nothing); the study is re-run
in a scratch tracking store with the runner given (`insilico.stages.study.run_study`)
and its outputs are compared with the package within the tolerances the package states
(`insilico.reports.tolerances`, `insilico.reports.compare`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from insilico.common.environment import environment_lock, parse_lock, platform_info
from insilico.common.errors import InputError
from insilico.layout import OUT_PATHS
from insilico.reports.compare import (
    compare_assessment,
    compare_draws,
    compare_posterior,
    compare_records,
    compare_runs,
    compare_simulation,
)
from insilico.reports.manifest import extract, manifest_rows, package_files, read_json
from insilico.reports.report_text import compare_reports
from insilico.reports.signature import signature_rows
from insilico.reports.tolerances import ASSESSMENT, POSTERIOR, RECORDS
from insilico.reports.verdict import ReproduceReport, Row

logger = logging.getLogger(__name__)


@contextmanager
def scratch_tracking(folder: Path) -> Iterator[str]:
    """Point MLflow (env and client) at a scratch SQLite store; restore both afterwards."""
    if mlflow.active_run() is not None:
        raise InputError("reproduce cannot run inside an active MLflow run: end it first")
    keys = ("MLFLOW_TRACKING_URI", "INSILICO_ARTIFACT_ROOT", "MLFLOW_REGISTRY_URI")
    old_env = {k: os.environ.get(k) for k in keys}
    old_uri = mlflow.get_tracking_uri()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["INSILICO_ARTIFACT_ROOT"] = (folder / "artifacts").resolve().as_uri()
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    mlflow.set_tracking_uri(uri)
    old_registry = None
    if mlflow.get_registry_uri() != uri:  # a registry pinned elsewhere must not receive the re-run's models
        old_registry = mlflow.get_registry_uri()
        mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED")
        mlflow.set_tracking_uri(old_uri)
        if old_registry is not None:
            mlflow.set_registry_uri(old_registry)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def reproduce(zip_path: str | Path, runner: Callable[[Path, Path], object], *, scratch: str | Path | None = None,
              force_rerun: bool = False, signature: str | Path | None = None,
              public_key: str | Path | None = None) -> ReproduceReport:
    """Verify a package, re-run its study in a scratch tracking store, compare file by file.

    ``runner(study_yaml, out_dir)`` has the ``run_study`` signature (pass a
    ``functools.partial`` to set its keywords). ``scratch``: an empty or new folder that is
    kept for inspection; by default a temporary folder removed afterwards. A package that
    fails its manifest is not re-run unless ``force_rerun``. The detached signature
    (``signature``, default ``<zip>.sig`` if present) is checked, against ``public_key``
    when given (which makes a signature required); `insilico.reports.signature`.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise InputError(f"{zip_path}: no such package file")
    if not zipfile.is_zipfile(zip_path):
        raise InputError(f"{zip_path}: not a submission package (not a zip archive)")
    made = scratch is None
    root = Path(tempfile.mkdtemp(prefix="insilico-reproduce-")) if made else Path(scratch)
    if not made:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise InputError(f"{root}: the scratch folder must be new or empty")
        root.mkdir(parents=True, exist_ok=True)
    try:
        report = _reproduce(zip_path, runner, root, force_rerun,
                            signature_rows(zip_path, signature=signature, public_key=public_key))
        report.scratch = "(removed)" if made else str(root)
    finally:
        if made:
            shutil.rmtree(root, ignore_errors=True)
    logger.info(report.verdict_line())
    return report


def _reproduce(zip_path: Path, runner, root: Path, force_rerun: bool, signed: list[Row]) -> ReproduceReport:
    pkg = root / "package"
    extract(zip_path, pkg)
    manifest, found = package_files(pkg)
    report = ReproduceReport(package=str(zip_path), study=manifest.get("study"), run_id=manifest.get("run_id"))
    if not (pkg / "run.json").is_file():
        raise InputError(f"{zip_path}: not a complete submission package (missing run.json)")
    rows = report.rows
    rows += manifest_rows(manifest, found)
    rows += signed
    bad = [r.file for r in rows if r.verdict == "FAIL"]
    logger.info("manifest: %d files, %s", len(found), f"{len(bad)} problem(s): {', '.join(bad)}" if bad else "all intact")
    rows += _environment_rows(pkg)
    if bad and not force_rerun:
        rows.append(Row("(re-run)", "", "re-run and compare", "", "skipped", "", "SKIP",
                        "the package failed its manifest check, so a re-run could not vouch for it"))
        return report
    if not (pkg / "tolerances.json").is_file():
        rows.append(Row("tolerances.json", "", "present", "present", "missing", "", "FAIL",
                        "the package states no tolerances; nothing can be compared"))
        return report
    stated = read_json(pkg / "tolerances.json", "tolerances")
    packaged_run = read_json(pkg / "run.json", "run.json")
    study = pkg / str(manifest.get("study_file") or "")
    if not manifest.get("study_file") or not study.is_file() or not study.resolve().is_relative_to(pkg.resolve()):
        rows.append(Row("study/", str(manifest.get("study_file")), "study YAML present", "present", "missing", "",
                        "FAIL", "the manifest names no study YAML inside the package"))
        return report
    out = root / "rerun"
    logger.info("re-running %s in a scratch tracking store under %s", study.relative_to(pkg), root)
    with scratch_tracking(root / "mlflow"):
        try:
            runner(study, out)
        except Exception as err:  # noqa: BLE001 - any failure of the re-run is the verdict, reported in full
            excl = ", ".join(e.get("path", "") for e in manifest.get("excluded") or [])
            rows.append(Row("(re-run)", str(study.relative_to(pkg)), "study re-runs from the package", "completes",
                            f"{type(err).__name__}", "", "FAIL",
                            f"{type(err).__name__}: {err}" + (f" (left out of the package: {excl})" if excl else "")))
            return report
    rows += _compare_outputs(pkg, out, stated, packaged_run)
    return report


def _environment_rows(pkg: Path) -> list[Row]:
    rows = []
    if (pkg / "environment.lock").is_file():
        a = parse_lock((pkg / "environment.lock").read_text())
        b = parse_lock(environment_lock())
        diff = [f"{k} {a.get(k, '-')} -> {b.get(k, '-')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        rows.append(Row("environment.lock", "", "installed distributions", f"{len(a)} pinned",
                        "identical" if not diff else f"{len(diff)} differ", "shown", "INFO", "; ".join(diff[:20])
                        + (f"; ... {len(diff) - 20} more" if len(diff) > 20 else "")))
    if (pkg / "tolerances.json").is_file():
        try:
            built = json.loads((pkg / "tolerances.json").read_text()).get("platform") or {}
        except (json.JSONDecodeError, AttributeError):
            built = {}
        now = platform_info()
        same = {k: built.get(k) for k in now} == now
        rows.append(Row("tolerances.json", "platform", "platform of the re-run", str(built.get("platform")),
                        "identical" if same else now["platform"], "shown", "INFO",
                        "" if same else "another platform: MCMC-derived numbers may differ within their tolerances"))
    return rows


def _compare_outputs(pkg: Path, out: Path, stated: dict, packaged_run: dict) -> list[Row]:
    rows: list[Row] = []
    rerun = out / "run.json"
    if rerun.is_file():
        rows += compare_runs(packaged_run, read_json(rerun, "the re-run's run.json"))
    else:
        rows.append(Row("run.json", "", "written by the re-run", "present", "missing", "", "FAIL"))
    for arc, spec in (stated.get("simulation") or {}).get("files", {}).items():
        if (out / spec["source"]).is_file():
            rows += compare_simulation(pkg / arc, out / spec["source"], arc)
        else:
            rows.append(Row(arc, "", "written by the re-run", "present", "missing", "", "FAIL",
                            f"the re-run wrote no {spec['source']}"))
    same_draws = True  # no posterior: every number is deterministic
    if "posterior" in stated:
        if (out / OUT_PATHS[POSTERIOR]).is_file():
            rows += compare_posterior(stated["posterior"], out / OUT_PATHS[POSTERIOR])
            rows.append(compare_draws(pkg / POSTERIOR, out / OUT_PATHS[POSTERIOR]))
            same_draws = rows[-1].verdict == "PASS"
        else:
            rows.append(Row(POSTERIOR, "", "written by the re-run", "present", "missing", "", "FAIL",
                            f"the re-run wrote no {OUT_PATHS[POSTERIOR]}"))
    if (out / OUT_PATHS[RECORDS]).is_file():
        rows += compare_records(stated["evidence"], read_json(out / OUT_PATHS[RECORDS], "the re-run's records"))
    else:
        rows.append(Row(RECORDS, "", "written by the re-run", "present", "missing", "", "FAIL"))
    if (out / OUT_PATHS[ASSESSMENT]).is_file():
        rows += compare_assessment(read_json(pkg / ASSESSMENT, "the packaged assessment"),
                                   read_json(out / OUT_PATHS[ASSESSMENT], "the re-run's assessment"))
    else:
        rows.append(Row(ASSESSMENT, "", "written by the re-run", "present", "missing", "", "FAIL"))
    rows += compare_reports(pkg / "reports", out / "reports", exact=same_draws and _same_environment(pkg))
    return rows


def _same_environment(pkg: Path) -> bool:
    """The re-run's installed distributions are the package's (the reports print their versions)."""
    lock = pkg / "environment.lock"
    return lock.is_file() and parse_lock(lock.read_text()) == parse_lock(environment_lock())
