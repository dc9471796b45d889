"""The `insilico` command line. No logic of its own: it parses, calls, and reports.

A user mistake (bad spec, bad data, missing file) prints one readable paragraph and
exits with code 2; ``--debug`` shows the traceback instead. Heavy libraries are imported
inside the commands so that ``insilico --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

USER_ERROR = 2


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------- commands
def cmd_fit(args) -> int:
    from insilico.stages.fit import fit_generator

    con = _console()
    res = fit_generator(args.data, args.spec, args.out, args.seed, progress=not args.no_progress,
                        register=not args.no_register, overwrite=args.overwrite,
                        model_name=args.name, log=lambda m: con.print(f"[bold]·[/] {m}"))
    _report_fit(con, res)
    return 0


def _report_fit(con, res) -> None:
    from insilico.validation.diagnostics import ESS_MIN, RHAT_MAX, converged

    d = res.diagnostics
    ok = converged(d)
    con.print(f"[bold]generator saved[/] to {res.generator_dir}  (MLflow run {res.run_id})")
    con.print(f"  max R-hat {d['max_rhat']:.4f} (< {RHAT_MAX}), min ESS bulk {d['min_ess_bulk']:.0f} / "
              f"tail {d['min_ess_tail']:.0f} (>= {ESS_MIN}), divergences {d['divergences']}  "
              + ("[green]converged[/]" if ok else "[red]NOT converged: do not use; raise sampler draws/tune[/]"))
    if res.model_uri:
        con.print(f"  registered model: {res.model_uri}")


def cmd_sample(args) -> int:
    from insilico.stages.fit import write_atomically
    from insilico.virtual_patients.generator import Generator

    gen = Generator.load(args.generator)
    cohort = gen.sample_cohort(args.n, args.seed, study=args.study)
    write_atomically(cohort, args.out)
    _console().print(f"wrote {len(cohort)} virtual patients (study {args.study!r}, seed {args.seed}) to {args.out}")
    return 0


def cmd_twins(args) -> int:
    from insilico.stages.fit import read_table, write_atomically
    from insilico.virtual_patients.effects import TreatmentEffect
    from insilico.virtual_patients.generator import Generator
    from insilico.virtual_patients.spec import SpecError, format_validation_error, read_yaml

    gen = Generator.load(args.generator)
    df = read_table(args.data)
    if args.effect is None and args.hazard_ratio is None and args.shift is None:
        out = df.copy()
        out["prognostic_score"] = gen.prognostic_score(df)
    else:
        if args.effect is not None:
            try:
                effect = TreatmentEffect.model_validate(read_yaml(args.effect))
            except Exception as err:
                from pydantic import ValidationError

                if isinstance(err, ValidationError):
                    raise SpecError(format_validation_error(err, args.effect)) from err
                raise
        elif args.hazard_ratio is not None:
            effect = TreatmentEffect(kind="hazard_ratio", value=args.hazard_ratio)
        else:
            effect = TreatmentEffect(kind="link_shift", value=args.shift)
        out = gen.counterfactual(df, effect, args.seed, study=args.study)
    write_atomically(out, args.out)
    _console().print(f"wrote {len(out)} twins with prognostic scores to {args.out}")
    return 0


def cmd_example(args) -> int:
    from insilico.virtual_patients.examples import write_example

    data, spec = write_example(args.name, args.out)
    _console().print(f"wrote {data} and {spec}; fit with:\n  insilico fit --data {data} --spec {spec} --out DIR")
    return 0


def cmd_schema(args) -> int:
    import json

    from insilico.virtual_patients.effects import TreatmentEffect
    from insilico.virtual_patients.spec import GeneratorSpec

    from insilico.trials.design import TrialDesign

    from insilico.stages.study import StudySpec
    from insilico.validation.plan import CredibilityPlan

    models = {"generator": GeneratorSpec, "effect": TreatmentEffect, "design": TrialDesign,
              "plan": CredibilityPlan, "study": StudySpec}
    print(json.dumps(models[args.name].model_json_schema(), indent=2))
    return 0


def cmd_simulate(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from insilico.trials.design import TrialDesign
    from insilico.trials.oc import oc_table
    from insilico.stages.fit import simulate_design

    TrialDesign.from_yaml(args.design)  # a bad design is reported before any progress bar appears
    con = _console()
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                  TimeRemainingColumn(), console=con, disable=args.no_progress) as bar:
        task = bar.add_task("chunks", total=None)
        res = simulate_design(args.design, args.out, replicates=args.replicates, workers=args.workers,
                              scheduler=args.scheduler, resume=args.resume,
                              executor="serial" if args.serial else "dask",
                              progress=lambda done, total: bar.update(task, completed=done, total=total),
                              log=lambda m: con.print(f"[bold]·[/] {m}"))
    con.print(f"results written to {res.results_path}  (MLflow run {res.run_id})")
    print(oc_table(res.oc).round(4).to_string())
    return 0


def cmd_oc(args) -> int:
    from insilico.trials.oc import oc_table
    from insilico.stages.fit import read_results

    _, oc = read_results(args.results)
    table = oc_table(oc)
    if args.format == "csv":
        print(table.to_csv(), end="")
    elif args.format == "json":
        print(table.reset_index().to_json(orient="records", indent=2))
    else:
        print(table.round(4).to_string())
    return 0


def cmd_validate(args) -> int:
    from insilico.stages.validate import validate_study

    con = _console()
    con.rule(f"[bold]insilico validate[/] {args.plan}")
    res = validate_study(args.plan, Path(args.out), progress=not args.no_progress,
                         log=lambda m: con.print(f"[bold]·[/] {m}"), register=not args.no_register)
    _print_assessment(con, res.assessment, res.records)
    con.print(f"evidence: {res.out_dir / 'records.json'}; assessment: {res.out_dir / 'assessment.json'}; "
              f"MLflow run {res.run_id}")
    return 0


def _print_assessment(con, assessment: dict, records: list) -> None:
    from rich.table import Table

    colour = {"met": "green", "partly met": "yellow", "not met": "red", "no evidence": "red"}
    for sm in assessment["sub_models"]:
        t = Table(title=f"{sm['title']}: " + {True: "adequate", False: "NOT adequate", None: "not assessed"}[
            sm["adequate"]], show_lines=False)
        for col in ("factor", "level", "achieved", "gaps"):
            t.add_column(col, overflow="fold")
        for f in sm["factors"]:
            if f["level"] == "not assessed":
                continue
            c = colour.get(f["level"], "white")
            t.add_row(f["factor"], f"[{c}]{f['level']}[/]", f["achieved"], "; ".join(f["gaps"]))
        con.print(t)
    o = assessment["overall"]
    con.print(("[green]" if o["adequate"] else "[red]") + o["summary"] + "[/]")
    blank = [k for k, v in assessment["judgements"].items() if v is None]
    if blank:
        con.print(f"judgements for a person to record (insilico sign RUN_ID --field ...): {', '.join(blank)}")


def cmd_validate_twin(args) -> int:
    from insilico.stages.validate import validate_twin

    con = _console()
    res = validate_twin(args.predictions, args.observed, args.plan, Path(args.out),
                        log=lambda m: con.print(f"[bold]·[/] {m}"))
    _print_assessment(con, res.assessment, res.records)
    con.print(f"evidence: {res.out_dir / 'records.json'}; MLflow run {res.run_id}")
    return 0


def cmd_sign(args) -> int:
    from insilico.stages.validate import sign

    field = sign(args.run_id, args.field, args.text, args.by)
    _console().print(f"recorded {args.field!r} by {field['by']} at {field['at']} in MLflow run {args.run_id}")
    return 0


def cmd_run(args) -> int:
    from insilico.stages.study import run_study

    con = _console()
    con.rule(f"[bold]insilico run[/] {args.study}")
    res = run_study(args.study, Path(args.out), progress=not args.no_progress,
                    log=lambda m: con.print(f"[bold]·[/] {m}"), register=not args.no_register)
    _print_study(con, res)
    return 0


def _print_study(con, res) -> None:
    o = res.assessment["overall"]
    con.print(("[green]" if o["adequate"] else "[red]") + o["summary"] + "[/]")
    con.rule("[bold]outputs[/]")
    for name, path in sorted(res.files.items()):
        con.print(f"  {name:<22} {path.resolve()}")
    con.print(f"MLflow parent run {res.run_id}; re-run the package with: insilico reproduce "
              f"{res.files['package'].resolve()}")


def cmd_package(args) -> int:
    from insilico.reports.package import build_package

    out_dir = _study_dir(args.run)
    zip_path = build_package(out_dir, Path(args.out), include_patient_rows=args.include_patient_rows,
                             overwrite=args.overwrite)
    _console().print(f"package written: {zip_path.resolve()}")
    return 0


def _study_dir(run: str) -> Path:
    """A study output folder, given the folder itself or the study's MLflow parent run id."""
    from insilico.stages.fit import InputError

    p = Path(run)
    if p.is_dir():
        return p
    import mlflow

    from insilico import tracking

    tracking.setup()
    try:
        tags = mlflow.get_run(run).data.tags
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for an unknown id
        raise InputError(f"{run}: neither a study output folder nor an MLflow run id of 'insilico run'") from err
    if "study.out_dir" not in tags:
        raise InputError(f"run {run} is not the parent run of an 'insilico run' study")
    return Path(tags["study.out_dir"])


def cmd_reproduce(args) -> int:
    from insilico.reports.package import reproduce
    from insilico.stages.study import run_study

    con = _console()
    report = reproduce(Path(args.package), lambda study, out: run_study(study, out, progress=False, register=False,
                                                                        log=lambda m: con.print(f"  · {m}")),
                       log=lambda m: con.print(f"[bold]·[/] {m}"))
    print(report.to_text())
    if args.json:
        Path(args.json).write_text(report.to_json())
    return 0 if report.passed else 1


def cmd_demo(args) -> int:
    from insilico.demo import run_demo

    run_demo(Path(args.out), console=_console(), progress=not args.no_progress)
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="insilico", description="In-silico clinical trials: Bayesian virtual "
                                "patients, trial simulation, V&V evidence.")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of short error messages")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    f = sub.add_parser("fit", help="fit a Bayesian virtual-patient generator to patient-level data")
    f.add_argument("--data", required=True, help="patient table (CSV or Parquet)")
    f.add_argument("--spec", required=True, help="generator spec (YAML)")
    f.add_argument("--out", required=True, help="folder for the fitted generator")
    f.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    f.add_argument("--name", help="model registry name (default generator-<spec file name>)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    f.add_argument("--no-register", action="store_true", help="do not register the model in MLflow")
    f.add_argument("--no-progress", action="store_true", help="hide the sampler's progress bar")
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("sample", help="draw a virtual cohort (synthetic control arm) from a fitted generator")
    s.add_argument("generator", help="folder written by 'insilico fit'")
    s.add_argument("--n", type=_positive_int, required=True, help="number of virtual patients")
    s.add_argument("--seed", type=int, required=True, help="random seed")
    s.add_argument("--out", required=True, help="CSV file to write")
    s.add_argument("--study", default="new", help="'new' (a new study: MAP) or a fitted study's name")
    s.set_defaults(func=cmd_sample)

    t = sub.add_parser("twins", help="add prognostic scores (and counterfactual outcomes) to patients")
    t.add_argument("generator", help="folder written by 'insilico fit'")
    t.add_argument("--data", required=True, help="real or virtual patients (CSV or Parquet)")
    t.add_argument("--out", required=True, help="CSV file to write")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--effect", help="treatment-effect model (YAML; 'insilico schema effect')")
    g.add_argument("--hazard-ratio", type=float, help="counterfactuals under a constant hazard ratio")
    g.add_argument("--shift", type=float, help="counterfactuals under a constant link-scale effect")
    t.add_argument("--seed", type=int, default=0, help="seed for counterfactual outcomes")
    t.add_argument("--study", default="new", help="study intercept for counterfactuals ('new' or a fitted study)")
    t.set_defaults(func=cmd_twins)

    e = sub.add_parser("example", help="export a bundled real data set and its spec")
    e.add_argument("name", help="bundled data set: gbsg, rotterdam, gbsg_rotterdam_coded, indo_rct, anorexia, "
                   "opt_control, colon_obs")
    e.add_argument("--out", required=True, help="folder to write <name>.csv and <name>.yaml")
    e.set_defaults(func=cmd_example)

    sm = sub.add_parser("simulate", help="simulate a trial design over scenarios x replicates (Dask)")
    sm.add_argument("--design", required=True, help="trial design (YAML; 'insilico schema design')")
    sm.add_argument("--out", required=True, help="results file (NetCDF: /replicates and /oc groups)")
    sm.add_argument("--replicates", type=_positive_int, help="override the design's replicate count")
    sm.add_argument("--workers", type=_positive_int, help="local Dask workers (default: one per core)")
    sm.add_argument("--scheduler", help="address of an existing Dask scheduler (or DASK_SCHEDULER_ADDRESS)")
    sm.add_argument("--resume", action="store_true", help="finish an interrupted run from its checkpoint")
    sm.add_argument("--serial", action="store_true", help="run in this process, without Dask (same numbers)")
    sm.add_argument("--no-progress", action="store_true")
    sm.set_defaults(func=cmd_simulate)

    o = sub.add_parser("oc", help="print the operating characteristics of a results file")
    o.add_argument("results", help="file written by 'insilico simulate'")
    o.add_argument("--format", choices=["table", "csv", "json"], default="table")
    o.set_defaults(func=cmd_oc)

    sc = sub.add_parser("schema", help="print the JSON Schema of a spec")
    sc.add_argument("name", choices=["generator", "effect", "design", "plan", "study"])
    sc.set_defaults(func=cmd_schema)

    v = sub.add_parser("validate", help="run the V&V checks of a credibility plan and assess them (MLflow)")
    v.add_argument("plan", help="credibility plan (YAML; 'insilico schema plan')")
    v.add_argument("--out", default="validation_output", help="folder for evidence, figures and the generator")
    v.add_argument("--no-register", action="store_true", help="do not register the generator in MLflow")
    v.add_argument("--no-progress", action="store_true")
    v.set_defaults(func=cmd_validate)

    vt = sub.add_parser("validate-twin", help="validate a digital twin's predictions against observed outcomes")
    vt.add_argument("--predictions", required=True, help="CSV: id column + predicted value")
    vt.add_argument("--observed", required=True, help="CSV: id column + observed value")
    vt.add_argument("--plan", required=True, help="credibility plan with a `twin` section and twin_* goals")
    vt.add_argument("--out", default="twin_validation", help="folder for evidence and figures")
    vt.set_defaults(func=cmd_validate_twin)

    sg = sub.add_parser("sign", help="record a judgement (e.g. reviewer sign-off) on a validation run")
    sg.add_argument("run_id", help="MLflow run id of an 'insilico validate' run")
    sg.add_argument("--field", required=True, help="judgement field named in the plan (e.g. reviewer_signoff)")
    sg.add_argument("--text", required=True, help="the judgement, in words")
    sg.add_argument("--by", required=True, help="who records it (name, role)")
    sg.set_defaults(func=cmd_sign)

    r = sub.add_parser("run", help="run a whole study: validate, twins, simulate, reports, package (MLflow)")
    r.add_argument("study", help="study file (YAML): credibility plan, simulations, twins, package settings")
    r.add_argument("--out", default="study_output", help="output folder (stages whose inputs are unchanged are reused)")
    r.add_argument("--no-register", action="store_true", help="do not register the generator in MLflow")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_run)

    pk = sub.add_parser("package", help="build the submission package of a study run")
    pk.add_argument("run", help="study output folder, or the MLflow parent run id of 'insilico run'")
    pk.add_argument("--out", required=True, help="zip file to write")
    pk.add_argument("--include-patient-rows", action="store_true", help="also package synthetic cohorts")
    pk.add_argument("--overwrite", action="store_true")
    pk.set_defaults(func=cmd_package)

    rp = sub.add_parser("reproduce", help="re-run a package in a scratch store and check it file by file")
    rp.add_argument("package", help="zip written by 'insilico run' / 'insilico package'")
    rp.add_argument("--json", help="also write the verdict as JSON to this file")
    rp.set_defaults(func=cmd_reproduce)

    d = sub.add_parser("demo", help="the main job on embedded defaults: insilico run on the bundled external-control study (validate, twins, reports, package)")
    d.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)
    return p


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {v}")
    return v


def _user_errors() -> tuple[type[BaseException], ...]:
    from insilico.stages.fit import InputError
    from insilico.validation.contract import DataContractError
    from insilico.virtual_patients.generator import GeneratorLoadError
    from insilico.validation.plan import PlanError
    from insilico.virtual_patients.spec import SpecError

    return (SpecError, PlanError, InputError, DataContractError, GeneratorLoadError, ValueError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("INSILICO_DEBUG") == "1"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug or not isinstance(err, _user_errors()):
            raise
        from insilico.validation.contract import DataContractError

        text = err.result.report() if isinstance(err, DataContractError) else str(err)
        print(f"insilico {args.command}: error: {text}", file=sys.stderr)
        if isinstance(err, DataContractError):
            print("Nothing was fitted; the MLflow run is marked FAILED with the validation result attached.",
                  file=sys.stderr)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
