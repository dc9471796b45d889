"""`insilico qualify`: installation, operational and performance qualification (IQ/OQ/PQ).

What a validated (GxP) environment asks of every tool before it is used for a submission:
IQ and OQ are `insilico.checks.qualification`; PQ builds the bundled qualification study
(``study_qualification.yaml``: data contract, Bayesian generator, V&V, trial simulation,
reports, package) and reproduces it from its package. Output in ``out``:
``qualification.json`` (the verdict and every check), ``qualification.html`` and ``.pdf``,
and an MLflow run (tag ``stage: qualification``) holding all three. A credibility plan cites
``qualification.json`` as evidence for V&V 40 "Software quality assurance"
(`insilico.checks.metrics` ``qualification_failures``).
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import mlflow

from insilico import tracking
from insilico.checks.qualification import DISTRIBUTION, FORMAT, installation_rows, operational_rows
from insilico.common.environment import package_versions, platform_info
from insilico.common.files import write_text
from insilico.common.jsonable import dumps
from insilico.reports.render import render_qualification
from insilico.reports.verdict import Row
from insilico.virtual_patients.examples import examples_dir

from .reproduce import reproduce
from .simulate import LOCAL, Compute
from .study import run_study

logger = logging.getLogger(__name__)

STUDY = "study_qualification.yaml"
PHASES = (("IQ", "Installation qualification", "the software and system tools are installed as declared"),
          ("OQ", "Operational qualification", "the installed engine reproduces closed forms, rpact and RBesT"),
          ("PQ", "Performance qualification", "a bundled study runs end to end and reproduces from its package"))


def performance_rows(folder: Path, compute: Compute = LOCAL) -> list[Row]:
    """PQ: build the bundled qualification study, then reproduce it from its package."""
    study = examples_dir() / STUDY
    start = time.perf_counter()
    try:
        outcome = run_study(study, folder, progress=False, register=False, compute=compute)
    except Exception as err:  # noqa: BLE001 - a study that does not run is the finding
        return [Row("PQ", STUDY, "bundled study runs end to end", "completes", f"{type(err).__name__}", "",
                    "FAIL", str(err)[:300])]
    built = time.perf_counter() - start
    rows = [Row("PQ", STUDY, "bundled study runs end to end", "completes", f"completed in {built:.0f} s", "",
                "PASS", f"MLflow run {outcome.run_id}")]
    start = time.perf_counter()
    report = reproduce(outcome.files["package"], partial(run_study, progress=False, register=False, compute=compute))
    write_text(folder / "reproduce.json", report.to_json())
    failed = [f"{r.file} {r.item}".strip() for r in report.failures]
    rows.append(Row("PQ", "study.zip", "re-run from its package and compared",
                    "every comparison PASS", f"{sum(r.verdict == 'PASS' for r in report.rows)} passed, "
                    f"{len(failed)} failed in {time.perf_counter() - start:.0f} s", "reproduce's tolerances",
                    "PASS" if report.passed else "FAIL", "; ".join(failed[:10]) or "comparisons in pq_study/reproduce.json"))
    return rows


def _phase(name: str, title: str, purpose: str, rows: list[Row]) -> dict:
    mine = [r for r in rows if r.file == name]
    return {"name": name, "title": title, "purpose": purpose, "rows": [vars(r) for r in mine], "total": len(mine),
            "passed": sum(r.verdict == "PASS" for r in mine), "failed": sum(r.verdict == "FAIL" for r in mine),
            "info": sum(r.verdict not in ("PASS", "FAIL") for r in mine)}


def qualify(out: str | Path, *, lock: str | Path | None = None, performance: bool = True,
            compute: Compute = LOCAL, replicates: int = 4000) -> dict:
    """Run IQ, OQ (and PQ) into ``out``; return the qualification document (``passed`` inside)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    logger.info("installation qualification")
    rows = installation_rows(Path(lock) if lock else None)
    logger.info("operational qualification: reference checks at %d replicates", replicates)
    rows += operational_rows(replicates)
    if performance:
        logger.info("performance qualification: the bundled study %s, built then reproduced", STUDY)
        pq = out / "pq_study"
        shutil.rmtree(pq, ignore_errors=True)  # a fresh build, never a reuse of an earlier one
        rows += performance_rows(pq, compute)
    failures = [r for r in rows if r.verdict == "FAIL"]
    phases = [_phase(*p, rows) for p in PHASES]
    doc = {"format": FORMAT, "version": package_versions((DISTRIBUTION,))[DISTRIBUTION], "passed": not failures,
           "failures": len(failures), "performance_qualified": performance,
           "summary": (f"{len(rows)} checks: {sum(r.verdict == 'PASS' for r in rows)} passed, {len(failures)} failed"
                       + ("" if performance else "; PQ not run")),
           "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "platform": platform_info(),
           "versions": package_versions(), "lock": str(lock) if lock else None, "phases": phases}
    tracking.setup()
    with mlflow.start_run(run_name="qualification") as run:
        doc["run_id"] = run.info.run_id
        mlflow.set_tags({"stage": "qualification", "qualification.passed": str(doc["passed"])})
        tracking.log_versions(doc["versions"])
        mlflow.log_metrics({"qualification_failures": len(failures), "qualification_checks": len(rows)})
        path = out / "qualification.json"
        write_text(path, dumps(doc, indent=1))
        paths = render_qualification(doc, out)
        for p in (path, paths["html"], paths["pdf"]):
            tracking.log_file(p, "qualification")
    logger.info("qualification %s: %s", "PASSED" if doc["passed"] else "FAILED", doc["summary"])
    return doc
