"""`insilico validate-twin`: a device maker's digital twin against observed outcomes.

Per-subject predictions and observations are joined by id; agreement (bias, Bland–Altman
limits, MAE/RMSE for continuous outcomes; AUC, Brier, sensitivity and specificity for
binary ones) and calibration become evidence records graded by the plan's ``twin_*`` goals.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow

from insilico import tracking
from insilico.checks.generator import calibration_table
from insilico.checks.metrics import Metrics, metric, summary
from insilico.common.errors import InputError
from insilico.common.files import read_table, sha256_file
from insilico.common.tables import Column, Group, Kind, TableSchema
from insilico.reports import figures as fig
from insilico.stages.evidence import assess_and_report
from insilico.stages.freeze import freeze
from insilico.stages.validate import ValidationOutcome
from insilico.validation.agreement import binary_agreement, continuous_agreement, read_twin_pair
from insilico.validation.contract import enforce_input
from insilico.validation.plan import PlanError, plan_sha256, read_plan

logger = logging.getLogger(__name__)


def validate_twin(predictions: str | Path, observed: str | Path, plan_path: str | Path, out_dir: str | Path) -> ValidationOutcome:
    """Agreement of a twin's per-subject predictions with observations, graded by the plan."""
    plan, raw = read_plan(plan_path)
    if plan.twin is None:
        raise PlanError(f"{plan_path}: `insilico validate-twin` needs a `twin` section (kind, id_column, ...)")
    tw = plan.twin
    _check_files(predictions, observed, tw)
    pair = read_twin_pair(predictions, observed, id_column=tw.id_column, value_column=tw.value_column)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    tracking.setup()
    with mlflow.start_run(run_name=f"validate twin {plan.name}") as run:
        try:
            frozen = freeze(plan.name, raw)
            mlflow.set_tags({"stage": "validate_twin", "plan.name": plan.name, "plan.sha256": plan_sha256(raw),
                             "plan.frozen_sha256": frozen.sha256})
            data = []
            for role, path in (("twin predictions", predictions), ("observed outcomes", observed)):
                sha = sha256_file(path)
                tracking.log_input_file(path, sha, {c: "f" for c in (tw.id_column, "value")}, context=role.split()[1])
                data.append({"role": role, "name": str(path), "sha256": sha, "rows": len(pair), "ids_sha256": None})
            sm = next((n for n, s in plan.sub_models.items() if any(g.metric.startswith("twin_") for g in s.goals)),
                      "virtual_patient_generation")
            y, p = pair["observed"].to_numpy(float), pair["predicted"].to_numpy(float)
            metrics: Metrics = {"plan_deviations": metric("plan_freeze", len(frozen.deviations), sm,
                                                      detail={"deviations": frozen.deviations})}
            if tw.kind == "continuous":
                a = continuous_agreement(y, p)
                ba = fig.bland_altman(a["plot"]["mean"].to_numpy(), a["plot"]["difference"].to_numpy(), a["bias"],
                                      (a["loa_lower"], a["loa_upper"]), out_dir / "figures" / "bland_altman.png")
                detail = summary({k: v for k, v in a.items() if k not in ("plot", "calibration")})
                metrics["twin_bias"] = metric("twin_agreement", a["bias"], sm, artifact=ba, detail=detail)
                for k in ("loa_lower", "loa_upper", "mae", "rmse"):
                    metrics[f"twin_{k}"] = metric("twin_agreement", a[k], sm)
            else:
                a = binary_agreement(y, p, thresholds=tw.thresholds)
                thr = a["thresholds"]
                first = thr[thr["threshold"] == tw.thresholds[0]].set_index("measure")
                metrics["twin_auc"] = metric("twin_agreement", a["auc"], sm, table=thr)
                metrics["twin_brier"] = metric("twin_agreement", a["brier"], sm)
                metrics["twin_sensitivity"] = metric("twin_agreement", first.loc["sensitivity", "value"], sm)
                metrics["twin_specificity"] = metric("twin_agreement", first.loc["specificity", "value"], sm)
            cal = a["calibration"]
            cal_png = fig.calibration_plot(calibration_table(cal["table"]), out_dir / "figures" / "calibration.png")
            metrics["twin_calibration_slope"] = metric("twin_calibration", cal["slope"], sm, artifact=cal_png)
            metrics["twin_calibration_intercept"] = metric("twin_calibration", cal["calibration_in_the_large"], sm)
            records, assessment = assess_and_report(plan, metrics, frozen, data, out_dir, run.info.run_id)
            logger.info("%d subjects; %d evidence records", len(pair), len(records))
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    return ValidationOutcome(run.info.run_id, assessment, records, out_dir)


def _check_files(predictions: str | Path, observed: str | Path, tw) -> None:
    """Each file through its contract before use: unique, complete ids; complete numeric values
    (binary twins: predicted probabilities in [0, 1], observed outcomes 0/1). A file whose
    value column cannot be told is left to `read_twin_pair`, which says why."""
    for role, path in (("twin predictions", predictions), ("observed outcomes", observed)):
        try:
            df = read_table(path)
        except InputError:
            continue  # unreadable or empty: read_twin_pair names the problem
        others = [c for c in df.columns if c != tw.id_column]
        value = tw.value_column or (others[0] if len(others) == 1 else None)
        if value is None:
            continue
        if tw.kind == "continuous":
            rule = Column(value, "predicted value" if role == "twin predictions" else "observed value", Kind.numeric,
                          Group.outcome)
        elif role == "observed outcomes":
            rule = Column(value, "observed outcome", Kind.event, Group.outcome)
        else:
            rule = Column(value, "predicted probability", Kind.numeric, Group.outcome, range=(0.0, 1.0))
        schema = TableSchema((Column(tw.id_column, "id column", Kind.key, Group.key, unique=True), rule))
        enforce_input(df, schema, role, Path(path).name)
