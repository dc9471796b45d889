"""Freezing a credibility plan in MLflow before any comparator data are read.

The first freeze of a plan (by its ``name``) logs the plan file, its SHA-256 and a UTC
timestamp in a run of its own. Every later validation looks that run up; if the plan's
bytes have changed since, the differences (key paths) are deviations, recorded as such
and shown in the report, never silently absorbed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow

from insilico import tracking
from insilico.validation.plan import diff_plans, plan_sha256

EXPERIMENT = tracking.DEFAULT_EXPERIMENT
PLAN_ARTIFACT = "plan/frozen_plan.yaml"


@dataclass(frozen=True)
class Frozen:
    name: str
    sha256: str
    frozen_at: str
    run_id: str
    text: str
    new: bool
    deviations: list[str] = field(default_factory=list)


def find_frozen(name: str):
    """The earliest freeze run of plan ``name``, or None."""
    tracking.setup(EXPERIMENT)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    runs = mlflow.search_runs([exp.experiment_id], filter_string=f"tags.`plan.name` = '{name}' and "
                              "tags.stage = 'freeze_plan'", order_by=["attributes.start_time ASC"],
                              output_format="list")
    return runs[0] if runs else None


def freeze(name: str, raw: bytes) -> Frozen:
    """Freeze the plan if it has never been frozen; else compare with the frozen version."""
    found = find_frozen(name)
    sha = plan_sha256(raw)
    if found is None:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with mlflow.start_run(run_name=f"freeze plan {name}", nested=mlflow.active_run() is not None) as run:
            mlflow.set_tags({"stage": "freeze_plan", "plan.name": name, "plan.sha256": sha, "plan.frozen_at": at})
            mlflow.log_text(raw.decode(), PLAN_ARTIFACT)
        return Frozen(name, sha, at, run.info.run_id, raw.decode(), new=True)
    text = mlflow.artifacts.load_text(f"runs:/{found.info.run_id}/{PLAN_ARTIFACT}")
    deviations = [] if found.data.tags["plan.sha256"] == sha else (
        diff_plans(text.encode(), raw) or ["plan text changed (comments or formatting only)"])
    return Frozen(name, found.data.tags["plan.sha256"], found.data.tags["plan.frozen_at"], found.info.run_id,
                  text, new=False, deviations=deviations)
