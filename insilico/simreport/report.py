"""The simulation report of a results file: context, figures, HTML and PDF.

The report shows what FDA's Bayesian draft guidance (2026), the externally-controlled-trials
draft (2023), ICH E9(R1) and ICH E20 ask of a simulated design (REGULATORY.md §2): the
design, the estimand, the success criterion, scenarios including drift of the current
controls from history, every operating characteristic with its Monte Carlo standard error,
the prior effective sample size, the sample size saved against an unadjusted design,
calibrated thresholds, and what is needed to reproduce the numbers. Its words come from
`insilico.simreport.words`, its numbers from `insilico.simreport.numbers`; rendering is
`insilico.reports.render`.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from insilico import tracking
from insilico.common.environment import package_versions
from insilico.common.files import sha256_file, write_text
from insilico.common.jsonable import dumps, lenient
from insilico.common.specfile import load_yaml
from insilico.reports.figures import oc_curves
from insilico.reports.render import render_simulation
from insilico.stages.simulate import read_results
from insilico.trials import scales
from insilico.trials.design import TrialDesign
from insilico.trials.methods import method_of

from . import words
from .numbers import oc_rows, prior_ess_rows, sample_size_rows, threshold_rows
from .words import check_oc, classify_scenarios, design_table, label_map, success_criterion


def stored_kinds(oc: xr.Dataset) -> list[str] | None:
    """The scenario kinds the engine stored on the results (None for results without them)."""
    return [str(k) for k in oc["scenario_kind"].values] if "scenario_kind" in oc.coords else None


def simulation_context(design: TrialDesign, oc: xr.Dataset, *, results: xr.Dataset | None = None,
                       run_id: str | None = None, estimand: dict | None = None, title: str | None = None,
                       versions: dict | None = None, name: str | None = None,
                       source_design: TrialDesign | None = None) -> dict:
    """The context of ``reports.render.render_simulation`` for a simulated design.

    ``design``: the design that was simulated; ``oc``: its operating characteristics
    (``trials.oc.operating_characteristics``); ``results``: the replicate-level Dataset
    (optional: prior ESS, thresholds and standard errors are read from it when given);
    ``estimand``: ICH E9(R1) attributes — any not given are derived from the design and
    marked so; ``versions``: package versions of the run (default: this environment's);
    ``name``: the design's name (default from its hash); ``source_design``: the design as
    the user wrote it when the simulation ran a derived one (MAP priors resolved,
    replicates overridden): its hash is shown beside the simulated one.
    """
    if not isinstance(design, TrialDesign):
        raise ValueError(f"design: expected a TrialDesign, got {type(design).__name__}")
    check_oc(design, oc)
    if results is not None and not isinstance(results, xr.Dataset):
        raise ValueError(f"results: expected the replicate-level xarray Dataset, got {type(results).__name__}")
    family = design.scale.family
    attrs = {**(results.attrs if results is not None else {}), **oc.attrs}
    sha = str(attrs.get("design_sha256") or design.hash())
    R = int(np.max(oc["n_replicates"].values))
    name = name or f"design-{sha[:8]}"
    calibrated_on = attrs.get("calibrated_on")
    criterion = success_criterion(design, calibrated_on)
    table = design_table(design, criterion, R)
    if sha != design.hash():
        table["note"] = (f"the design given (SHA-256 {design.hash()}) differs from the one simulated: the "
                         "numbers are those of the simulated design")
    if source_design is not None and source_design.hash() != sha:
        table["design as written"] = (f"SHA-256 {source_design.hash()} (the simulation ran a derived design, e.g. "
                                      "generator path resolved, MAP priors derived or replicates overridden)")
    scenarios = classify_scenarios(design, stored_kinds(oc))
    kinds = {s["kind"] for s in scenarios}
    n_arms = len(design.arms)
    description = (f"{n_arms}-arm trial ({table['arms']}), {table['endpoint']}; {len(scenarios)} scenarios "
                   f"({', '.join(sorted(kinds))}) × {R} replicates; analyses: "
                   + ", ".join(a.name for a in design.analyses) + ".")
    prior_design = source_design if source_design is not None else design
    ess_rows = prior_ess_rows(design, oc, results)
    for r in ess_rows:  # the user's wording of a derived (MAP) prior's source
        a = label_map(design)[r["analysis"]][0]
        orig = next((b for b in prior_design.analyses if b.name == a.name), None)
        if orig is not None and orig.prior is not None and orig.prior.map_from is not None:
            r["source"] = method_of(orig).prior_source(orig, prior_design)
    judgements = {"reviewer_signoff": None}
    if any(method_of(a).borrows for a in design.analyses):
        judgements = {"prior_justification": None, **judgements}
    return {
        "title": title or f"{name}: operating characteristics",
        "design": {"name": name, "title": f"{n_arms}-arm {family.replace('_', '-')} trial", "description": description,
                   "sha256": sha, "table": table},
        "estimand": words.estimand(design, estimand),
        "success_criterion": criterion,
        "scenarios": scenarios,
        "oc": oc_rows(oc),
        "prior_ess": ess_rows,
        "sample_size": sample_size_rows(design, oc, results, ess_rows),
        "thresholds": threshold_rows(design, oc, results),
        "reproducibility": {"seed": int(attrs.get("seed", design.seed)), "spec_sha256": sha, "replicates": R,
                            "chunk_size": int(attrs.get("chunk_size", design.chunk_size)), "run_id": run_id,
                            "git_commit": tracking.git_commit(),
                            "created_at": datetime.now(UTC).isoformat(timespec="seconds")},
        "versions": dict(versions) if versions is not None else package_versions(),
        "judgements": judgements,
    }


def simulation_figures(design: TrialDesign, oc: xr.Dataset, out_dir: str | Path) -> dict[str, Path]:
    """``"power"``: rejection rate against the true effect (natural scale) of the null and
    alternative scenarios without drift, per analysis — against the scenario order when
    effects repeat or come from a design prior; ``"type_i_drift"`` (only with drift
    scenarios): rejection rate against ``control_shift`` over the null-effect scenarios,
    with the nominal one-sided α. Error bars ±1.96 MCSE (``reports.figures.oc_curves``)."""
    check_oc(design, oc)
    family = design.scale.family
    out_dir = Path(out_dir)
    scen = classify_scenarios(design, stored_kinds(oc))
    by_name = {s.name: s for s in design.scenarios}
    label = design.scale.natural
    rows = []
    for lab, (_, j) in label_map(design).items():
        for order, s in enumerate(scen, start=1):
            sc = by_name[s["name"]]
            cell = oc.sel(scenario=s["name"], analysis=lab)
            rows.append({"analysis": lab, "scenario": s["name"], "kind": s["kind"], "order": order,
                         "effect": scales.arm_effect(sc, design.arms[j].name), "drift": float(sc.control_shift),
                         "assurance": sc.effect_prior is not None, "rejection_rate": float(cell.rejection_rate),
                         "mcse": float(cell.rejection_rate_mcse)})
    df = pd.DataFrame(rows)
    out = {}
    curve = df[(df.drift == 0) & ~df.assurance & df.kind.isin(["null", "alternative"])]
    if len(curve) and not curve.duplicated(["analysis", "effect"]).any() and curve.scenario.nunique() > 1:
        out["power"] = oc_curves(curve, "effect", "rejection_rate", "analysis", out_dir / "power.png",
                                 "Pr(reject)", err="mcse", xlabel=f"true effect ({label})",
                                 title="Rejection rate by true effect (null: type I error; else power)")
    else:
        legend = ", ".join(f"{s['order']} {s['scenario']}" for s in
                           df.drop_duplicates("scenario")[["order", "scenario"]].to_dict("records"))
        out["power"] = oc_curves(df, "order", "rejection_rate", "analysis", out_dir / "power.png", "Pr(reject)",
                                 err="mcse", xlabel=f"scenario ({legend})", title="Rejection rate by scenario")
    nulls = df[df.kind.isin(["null", "drift"])]
    if (df.kind == "drift").any():
        alpha = design.calibration_alpha or design.comparison_alpha
        if design.endpoint is None:
            unit = "outcome units" if family == "normal" else "log scale, linear predictor"
        else:
            unit = {"normal": "outcome units", "binary": "absolute change of the control rate",
                    "count": "change of the control rate", "time_to_event": "log hazard ratio"}[family]
        out["type_i_drift"] = oc_curves(nulls, "drift", "rejection_rate", "analysis", out_dir / "type_i_drift.png",
                                        "type I error", hline=alpha, err="mcse",
                                        xlabel=f"drift of current controls (control_shift, {unit})",
                                        hline_label=f"nominal one-sided α = {alpha:g}",
                                        title="Type I error under drift of the current controls")
    return out


def _run_record(results_path: Path, run_id: str | None) -> dict | None:
    """The MLflow run that wrote the results (by id, else by the results file's SHA-256
    tag), with its recorded versions and git commit; None when there is no store or run."""
    try:
        if not os.environ.get("MLFLOW_TRACKING_URI") and not (tracking.project_root() / "mlflow" / "mlflow.db").is_file():
            return None  # no store: do not create one just to look
        import mlflow

        tracking.setup()
        if run_id:
            run = mlflow.get_run(run_id)
        else:
            sha = sha256_file(results_path)
            runs = mlflow.search_runs(filter_string=f"tags.`results.sha256` = '{sha}'", output_format="list",
                                      search_all_experiments=True, max_results=1)
            if not runs:
                return None
            run = runs[0]
    except Exception:  # noqa: BLE001 - a missing or unreadable store leaves the report without the run's tags
        return None
    tags = run.data.tags
    versions = {k.removeprefix("version."): v for k, v in tags.items() if k.startswith("version.")}
    return {"run_id": run.info.run_id, "versions": versions or None, "git_commit": tags.get("code.git_commit")}


def simulation_report(design_path: str | Path, results_path: str | Path, out_dir: str | Path, *,
                      run_id: str | None = None, estimand: dict | None = None,
                      title: str | None = None) -> dict[str, Path]:
    """Write the simulation report of a results file (``insilico simulate``) into ``out_dir``.

    The design that ran is read from the results (``design_yaml``: MAP priors resolved,
    replicates as simulated); the design file names the report and words derived priors.
    The MLflow run (``run_id``, else the run tagged with the results file's SHA-256) gives
    the recorded versions and git commit. Returns ``{"html", "pdf", "figures",
    "context"}``: the context is also written as ``simulation_context.json``.
    """
    design_path, results_path, out_dir = Path(design_path), Path(results_path), Path(out_dir)
    file_design = TrialDesign.from_yaml(design_path)
    results, oc = read_results(results_path)
    design = file_design
    if results.attrs.get("design_yaml"):
        design = TrialDesign.from_dict(load_yaml(results.attrs["design_yaml"], f"{results_path} (design_yaml)"),
                                       source=f"{results_path} (design_yaml)")
    if design.patients is not None and not Path(design.patients.generator).is_absolute():
        gen = (design_path.parent / design.patients.generator).resolve()  # relative to the design file
        design = TrialDesign.from_dict({**design.model_dump(mode="json"),
                                        "patients": {**design.patients.model_dump(mode="json"), "generator": str(gen)}})
    record = _run_record(results_path, run_id)
    name = design_path.stem.removesuffix(".resolved")
    ctx = simulation_context(design, oc, results=results, run_id=record["run_id"] if record else run_id,
                             estimand=estimand, title=title, name=name, source_design=file_design,
                             versions=record["versions"] if record else None)
    if record and record["git_commit"]:
        ctx["reproducibility"]["git_commit"] = record["git_commit"]
    ctx["design"]["table"]["results file"] = f"{results_path.name} (SHA-256 {sha256_file(results_path)})"
    with tempfile.TemporaryDirectory() as tmp:
        figures = simulation_figures(design, oc, tmp)
        paths = render_simulation(ctx, out_dir, figures)
    ctx_path = out_dir / "simulation_context.json"
    write_text(ctx_path, dumps(ctx, indent=1, strict=False, default=lenient))
    return {**paths, "context": ctx_path}
