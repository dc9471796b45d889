"""From a check's metrics to evidence records, the assessment and the credibility report.

Figures and tables behind a metric are logged as artifacts with their SHA-256 first;
the records are judged against the plan's goals (`insilico.validation.assessment.judge`),
logged to MLflow (one metric each, one JSON artifact per check and ``records.json``) and
written beside the assessment, which is built from the records alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow

from insilico import tracking
from insilico.checks.metrics import Metrics
from insilico.common.environment import package_versions
from insilico.common.files import sha256_bytes, sha256_file, write_text
from insilico.common.jsonable import plain
from insilico.reports.render import render_credibility
from insilico.validation.assessment import assess, judge
from insilico.validation.evidence import EvidenceRecord, write_records

logger = logging.getLogger(__name__)


def log_records(plan, metrics: Metrics, run_id: str) -> list[EvidenceRecord]:
    """Records from metrics: figures and tables logged as artifacts (with SHA-256) first."""
    clean: Metrics = {}
    for name, m in metrics.items():
        m = dict(m)
        art = m.pop("artifact", None)
        table = m.pop("table", None)
        m.pop("figure_data", None)
        if art is not None:
            tracking.log_file(art, "figures")
            m["artifact"], m["artifact_sha256"] = f"figures/{Path(art).name}", sha256_file(art)
        elif table is not None:
            text = table.to_csv()
            mlflow.log_text(text, f"evidence/{m['check']}.csv")
            m["artifact"], m["artifact_sha256"] = f"evidence/{m['check']}.csv", sha256_bytes(text.encode())
        m["detail"] = plain(m.get("detail") or {})
        clean[name] = m
    records = judge(plan, clean, run_id)
    by_check: dict[str, list] = {}
    for r in records:
        by_check.setdefault(r.check, []).append(r.to_dict())
        if r.value is not None:
            mlflow.log_metric(f"evidence.{r.sub_model}.{r.metric}", r.value)
    for check, recs in by_check.items():
        tracking.log_json(recs, f"evidence/{check}.json")
    tracking.log_json([r.to_dict() for r in records], "evidence/records.json")
    return records


def assess_and_report(plan, metrics: Metrics, frozen, data: list[dict], out_dir: Path,
                      run_id: str) -> tuple[list[EvidenceRecord], dict]:
    """Records (logged), the assessment built from them alone, and the credibility report."""
    records = log_records(plan, metrics, run_id)
    assessment = assess(plan, records, frozen=frozen, data=data, versions=package_versions(), run_id=run_id)
    write_records(records, out_dir / "records.json")
    write_text(out_dir / "assessment.json", json.dumps(assessment, indent=2, default=float))
    tracking.log_json(assessment, "assessment.json")
    mlflow.set_tags({"credibility.adequate": str(assessment["overall"]["adequate"])})
    report = credibility_report(out_dir, out_dir / "report")
    for f in (report["html"], report["pdf"]):
        tracking.log_file(f, "report")
    logger.info("credibility report: %s (PDF beside it)", report["html"])
    return records, assessment


def credibility_report(validation_dir: Path, out_dir: Path) -> dict:
    """Render the credibility report (HTML + PDF) from a validation folder's records and assessment."""
    validation_dir = Path(validation_dir)
    assessment = json.loads((validation_dir / "assessment.json").read_text())
    records = json.loads((validation_dir / "records.json").read_text())
    figures = {r["artifact"]: validation_dir / r["artifact"] for r in records
               if (r.get("artifact") or "").endswith(".png") and (validation_dir / r["artifact"]).is_file()}
    return render_credibility(assessment, records, out_dir, figures=figures)
