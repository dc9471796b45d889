"""One function per ``insilico`` command: parse nothing, decide nothing, call a stage, print.

Each stage is imported inside its command so that ``insilico --help`` answers at once
(PyMC, MLflow, Dask and Great Expectations take seconds to import).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .output import print_assessment, print_fit, print_study

if TYPE_CHECKING:
    from rich.console import Console


def fit(args, con: Console) -> int:
    from insilico.stages.fit import fit_generator

    res = fit_generator(args.data, args.spec, args.out, args.seed, progress=not args.no_progress,
                        register=not args.no_register, overwrite=args.overwrite, model_name=args.name)
    print_fit(con, res)
    return 0


def sample(args, con: Console) -> int:
    from insilico.common.files import write_csv
    from insilico.virtual_patients.generator import Generator

    gen = Generator.load(args.generator)
    cohort = gen.sample_cohort(args.n, args.seed, study=args.study)
    write_csv(cohort, args.out)
    con.print(f"wrote {len(cohort)} virtual patients (study {args.study!r}, seed {args.seed}) to {args.out}")
    return 0


def twins(args, con: Console) -> int:
    from insilico.common.files import read_table, write_csv
    from insilico.virtual_patients.effects import TreatmentEffect
    from insilico.virtual_patients.generator import Generator

    gen = Generator.load(args.generator)
    df = read_table(args.data)
    if args.effect is None and args.hazard_ratio is None and args.shift is None:
        out = df.copy()
        out["prognostic_score"] = gen.prognostic_score(df)
    else:
        if args.effect is not None:
            effect = TreatmentEffect.from_yaml(args.effect)
        elif args.hazard_ratio is not None:
            effect = TreatmentEffect(kind="hazard_ratio", value=args.hazard_ratio)
        else:
            effect = TreatmentEffect(kind="link_shift", value=args.shift)
        out = gen.counterfactual(df, effect, args.seed, study=args.study)
    write_csv(out, args.out)
    con.print(f"wrote {len(out)} twins with prognostic scores to {args.out}")
    return 0


def example(args, con: Console) -> int:
    from insilico.bundled import bundled, write_bundled

    if args.list or args.name is None:
        for name, kind in bundled().items():
            print(f"{name:<28} {kind}")
        return 0
    if args.out is None:
        from insilico.common.errors import InputError

        raise InputError("insilico example NAME needs --out DIR (where to write it)")
    written = write_bundled(args.name, args.out)
    con.print("wrote " + ", ".join(str(p) for p in written))
    if len(written) == 2 and written[0].suffix == ".csv":
        con.print(f"fit with:\n  insilico fit --data {written[0]} --spec {written[1]} --out DIR")
    return 0


def schema(args, con: Console) -> int:
    from insilico.stages.studyspec import StudySpec
    from insilico.trials.design import TrialDesign
    from insilico.validation.plan import CredibilityPlan
    from insilico.virtual_patients.effects import TreatmentEffect
    from insilico.virtual_patients.spec import GeneratorSpec

    models = {"generator": GeneratorSpec, "effect": TreatmentEffect, "design": TrialDesign,
              "plan": CredibilityPlan, "study": StudySpec}
    print(json.dumps(models[args.name].model_json_schema(), indent=2))
    return 0


def simulate(args, con: Console) -> int:
    from insilico.progress import progress_bar
    from insilico.stages.simulate import load_design, simulate_design
    from insilico.trials.oc import oc_table

    load_design(args.design, args.replicates)  # a bad design is reported before any progress bar appears
    with progress_bar("simulating chunks", enabled=not args.no_progress, transient=False) as tick:
        res = simulate_design(args.design, args.out, replicates=args.replicates, workers=args.workers,
                              scheduler=args.scheduler, resume=args.resume,
                              executor="serial" if args.serial else "dask", progress=tick)
    con.print(f"results written to {res.results_path}  (MLflow run {res.run_id})")
    print(oc_table(res.oc).round(4).to_string())
    return 0


def oc(args, con: Console) -> int:
    from insilico.stages.simulate import read_results
    from insilico.trials.oc import oc_table

    _, ocs = read_results(args.results, replicates=False)  # the /oc group only
    table = oc_table(ocs)
    if args.format == "csv":
        sys.stdout.write(table.to_csv())
    elif args.format == "json":
        print(table.reset_index().to_json(orient="records", indent=2))
    else:
        print(table.round(4).to_string())
    return 0


def report(args, con: Console) -> int:
    from insilico.simreport import simulation_report

    paths = simulation_report(args.design, args.results, args.out, title=args.title)
    con.print(f"simulation report: {paths['html']} and {paths['pdf']}")
    return 0


def validate(args, con: Console) -> int:
    from insilico.stages.validate import validate_study

    con.rule(f"[bold]insilico validate[/] {args.plan}")
    res = validate_study(args.plan, Path(args.out), progress=not args.no_progress, register=not args.no_register,
                         compute=_compute(args))
    print_assessment(con, res.assessment)
    con.print(f"evidence: {res.out_dir / 'records.json'}; assessment: {res.out_dir / 'assessment.json'}; "
              f"MLflow run {res.run_id}")
    return 0


def validate_twin(args, con: Console) -> int:
    from insilico.stages.twin import validate_twin as run

    res = run(args.predictions, args.observed, args.plan, Path(args.out))
    print_assessment(con, res.assessment)
    con.print(f"evidence: {res.out_dir / 'records.json'}; MLflow run {res.run_id}")
    return 0


def sign(args, con: Console) -> int:
    from insilico.stages.sign import sign as record

    entry = record(args.run_id, args.field, args.text, args.by)
    con.print(f"recorded {args.field!r} by {entry['by']} at {entry['at']} in MLflow run {args.run_id}")
    return 0


def run(args, con: Console) -> int:
    from insilico.stages.study import run_study

    con.rule(f"[bold]insilico run[/] {args.study}")
    res = run_study(args.study, Path(args.out), progress=not args.no_progress, register=not args.no_register,
                    compute=_compute(args))
    print_study(con, res)
    return 0


def package(args, con: Console) -> int:
    from insilico.common.errors import InputError
    from insilico.stages.package import build_package, fetch_package

    if Path(args.run).is_dir():
        zip_path = build_package(Path(args.run), Path(args.out),
                                 include_patient_rows=args.include_patient_rows, overwrite=args.overwrite)
    elif args.include_patient_rows:
        raise InputError(f"{args.run}: a run's package is fetched as it was built; to add patient rows, "
                         "package the study output folder instead")
    else:
        zip_path = fetch_package(args.run, Path(args.out), overwrite=args.overwrite)
    con.print(f"package written: {zip_path.resolve()}")
    return 0


def reproduce(args, con: Console) -> int:
    from functools import partial

    from insilico.common.files import write_text
    from insilico.stages.reproduce import reproduce as check
    from insilico.stages.study import run_study

    report = check(Path(args.package), partial(run_study, progress=False, register=False, compute=_compute(args)),
                   signature=args.signature, public_key=args.public_key)
    print(report.to_text())
    if args.json:
        write_text(args.json, report.to_json())
    return 0 if report.passed else 1


def keygen(args, con: Console) -> int:
    from insilico.reports.signature import generate_key

    private, public = generate_key(Path(args.key))
    con.print(f"private key: {private} (keep it to yourself); public key: {public} — give it to reviewers")
    return 0


def sign_package(args, con: Console) -> int:
    from insilico.reports.signature import sign_package as sign

    sig = sign(Path(args.package), Path(args.key), args.by)
    con.print(f"signature: {sig} (reviewers check it with: insilico reproduce {args.package} "
              f"--public-key YOUR_KEY.pub)")
    return 0


def qualify(args, con: Console) -> int:
    from insilico.common.errors import InputError
    from insilico.stages.qualify import qualify as run_qualification

    if args.lock and not Path(args.lock).is_file():
        raise InputError(f"--lock: no such file {args.lock}")
    doc = run_qualification(Path(args.out), lock=args.lock, performance=not args.skip_pq, compute=_compute(args),
                             replicates=args.replicates)
    for phase in doc["phases"]:
        for r in phase["rows"]:
            if r["verdict"] == "FAIL":
                con.print(f"[red]FAIL[/] {r['file']} {r['item']}: expected {r['expected']}, found {r['got']} {r['note']}")
    out = Path(args.out).resolve()
    con.print(f"[bold]{'QUALIFIED' if doc['passed'] else 'NOT QUALIFIED'}[/]: {doc['summary']}")
    con.print(f"report: {out / 'qualification.html'} (PDF beside it); verdict: {out / 'qualification.json'}; "
              f"MLflow run {doc['run_id']}")
    return 0 if doc["passed"] else 1


def demo(args, con: Console) -> int:
    from insilico.demo import demo_study, run_demo

    out = Path(args.out)
    con.rule("[bold]insilico demo[/]: an external control arm from real-world data, validated and packaged")
    con.print(f"study: {demo_study()} (insilico run {demo_study()} --out {out})")
    res = run_demo(out, progress=not args.no_progress, compute=_compute(args))
    print_study(con, res)
    reports = out.resolve() / "reports"
    con.print(f"[bold]reports[/]: {reports / 'credibility.html'} (PDF beside it), {reports / 'simulation.html'}")
    return 0


def _compute(args):
    """The --workers / --scheduler of a command, as the stages take them."""
    from insilico.stages.simulate import Compute

    return Compute(workers=args.workers, scheduler=args.scheduler)
