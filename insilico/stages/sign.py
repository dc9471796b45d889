"""`insilico sign`: a person's judgement recorded on a validation run (never by the software)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import mlflow

from insilico import tracking
from insilico.common.errors import InputError


def sign(run_id: str, field: str, text: str, by: str) -> dict:
    """Record a person's judgement on a validation run (never filled by the software)."""
    tracking.setup()
    try:
        assessment = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/assessment.json"))
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for a missing run/artifact
        raise InputError(f"run {run_id}: no assessment found (is it an 'insilico validate' run?)") from err
    if field not in assessment["judgements"]:
        raise InputError(f"unknown judgement field {field!r}; the plan asks for: "
                         f"{', '.join(assessment['judgements'])}")
    if not text.strip() or not by.strip():
        raise InputError("a judgement needs --text and --by (who records it)")
    entry = {"text": text, "by": by, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    assessment["judgements"][field] = entry
    with mlflow.start_run(run_id=run_id):
        tracking.log_json(assessment, "assessment.json")
        tracking.log_json(entry, f"judgements/{field}.json")
        mlflow.set_tag(f"judgement.{field}", by)
    return entry
