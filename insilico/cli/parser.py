"""The ``insilico`` argument parser: one sub-command per stage (`insilico.cli.commands`)."""

from __future__ import annotations

import argparse

from . import commands


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        import insilico

        print(f"insilico-trials {insilico.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="insilico", description="In-silico clinical trials: Bayesian virtual "
                                "patients, trial simulation, V&V evidence.")
    p.add_argument("--version", action=_Version)
    p.add_argument("--debug", action="store_true", help="show tracebacks (accepted anywhere on the command line)")
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
    f.set_defaults(func=commands.fit)

    s = sub.add_parser("sample", help="draw a virtual cohort (synthetic control arm) from a fitted generator")
    s.add_argument("generator", help="folder written by 'insilico fit'")
    s.add_argument("--n", type=_positive_int, required=True, help="number of virtual patients")
    s.add_argument("--seed", type=int, required=True, help="random seed")
    s.add_argument("--out", required=True, help="CSV file to write")
    s.add_argument("--study", default="new", help="'new' (a new study: MAP) or a fitted study's name")
    s.set_defaults(func=commands.sample)

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
    t.set_defaults(func=commands.twins)

    e = sub.add_parser("example", help="write a bundled example: real data + spec, a design, a plan or a study")
    e.add_argument("name", nargs="?", help="bundled example (data: gbsg, rotterdam, gbsg_rotterdam_coded, indo_rct, "
                   "anorexia, opt_control, colon_obs; designs, plans and studies by file name; --list shows all)")
    e.add_argument("--out", help="folder to write it to (data: <name>.csv and <name>.yaml)")
    e.add_argument("--list", action="store_true", help="list the bundled examples")
    e.set_defaults(func=commands.example)

    sm = sub.add_parser("simulate", help="simulate a trial design over scenarios x replicates (Dask)")
    sm.add_argument("--design", required=True, help="trial design (YAML; 'insilico schema design')")
    sm.add_argument("--out", required=True, help="results file (NetCDF: /replicates and /oc groups)")
    sm.add_argument("--replicates", type=_positive_int, help="override the design's replicate count")
    _compute_options(sm)
    sm.add_argument("--resume", action="store_true", help="finish an interrupted run from the chunks in its results store (RESULTS.store)")
    sm.add_argument("--serial", action="store_true", help="run in this process, without Dask (same numbers)")
    sm.add_argument("--no-progress", action="store_true")
    sm.set_defaults(func=commands.simulate)

    o = sub.add_parser("oc", help="print the operating characteristics of a results file")
    o.add_argument("results", help="file written by 'insilico simulate'")
    o.add_argument("--format", choices=["table", "csv", "json"], default="table")
    o.set_defaults(func=commands.oc)

    rp_ = sub.add_parser("report", help="write the simulation report (HTML + PDF) of a results file")
    rp_.add_argument("results", help="file written by 'insilico simulate'")
    rp_.add_argument("--design", required=True, help="the design file that was simulated (names the report)")
    rp_.add_argument("--out", required=True, help="folder for simulation.html, simulation.pdf and the figures")
    rp_.add_argument("--title", help="report title (default: the design's name)")
    rp_.set_defaults(func=commands.report)

    sc = sub.add_parser("schema", help="print the JSON Schema of a spec")
    sc.add_argument("name", choices=["generator", "effect", "design", "plan", "study"])
    sc.set_defaults(func=commands.schema)

    v = sub.add_parser("validate", help="run the V&V checks of a credibility plan and assess them (MLflow)")
    v.add_argument("plan", help="credibility plan (YAML; 'insilico schema plan')")
    v.add_argument("--out", default="validation_output", help="folder for evidence, figures and the generator")
    _fit_and_simulate_options(v)
    v.set_defaults(func=commands.validate)

    vt = sub.add_parser("validate-twin", help="validate a digital twin's predictions against observed outcomes")
    vt.add_argument("--predictions", required=True, help="CSV: id column + predicted value")
    vt.add_argument("--observed", required=True, help="CSV: id column + observed value")
    vt.add_argument("--plan", required=True, help="credibility plan with a `twin` section and twin_* goals")
    vt.add_argument("--out", default="twin_validation", help="folder for evidence and figures")
    vt.set_defaults(func=commands.validate_twin)

    sg = sub.add_parser("sign", help="record a judgement (e.g. reviewer sign-off) on a validation run")
    sg.add_argument("run_id", help="MLflow run id of an 'insilico validate' run")
    sg.add_argument("--field", required=True, help="judgement field named in the plan (e.g. reviewer_signoff)")
    sg.add_argument("--text", required=True, help="the judgement, in words")
    sg.add_argument("--by", required=True, help="who records it (name, role)")
    sg.set_defaults(func=commands.sign)

    r = sub.add_parser("run", help="run a whole study: validate, twins, simulate, reports, package (MLflow)")
    r.add_argument("study", help="study file (YAML): credibility plan, simulations, twins, package settings")
    r.add_argument("--out", default="study_output", help="output folder (stages whose inputs are unchanged are reused)")
    _fit_and_simulate_options(r)
    r.set_defaults(func=commands.run)

    pk = sub.add_parser("package", help="build the submission package of a study run")
    pk.add_argument("run", help="study output folder (the package is built from it), or the MLflow parent run id of "
                    "'insilico run' (the package it logged is fetched through the tracking store, e.g. a server)")
    pk.add_argument("--out", required=True, help="zip file to write")
    pk.add_argument("--include-patient-rows", action="store_true", help="also package synthetic cohorts")
    pk.add_argument("--overwrite", action="store_true")
    pk.set_defaults(func=commands.package)

    rp = sub.add_parser("reproduce", help="re-run a package in a scratch store and check it file by file")
    rp.add_argument("package", help="zip written by 'insilico run' / 'insilico package'")
    rp.add_argument("--json", help="also write the verdict as JSON to this file")
    rp.add_argument("--signature", help="detached signature to check (default: PACKAGE.sig when present)")
    rp.add_argument("--public-key", help="the builder's public key (PEM): the package must be signed with it")
    _compute_options(rp)
    rp.set_defaults(func=commands.reproduce)

    kg = sub.add_parser("keygen", help="create an Ed25519 key pair for signing packages (KEY and KEY.pub)")
    kg.add_argument("key", help="private key file to write (PEM, readable by you only); the public key goes to KEY.pub")
    kg.set_defaults(func=commands.keygen)

    sp = sub.add_parser("sign-package", help="sign a submission package: a detached Ed25519 signature, PACKAGE.sig")
    sp.add_argument("package", help="zip written by 'insilico run' / 'insilico package'")
    sp.add_argument("--key", required=True, help="private key (PEM) from 'insilico keygen'")
    sp.add_argument("--by", required=True, help="who signs (name, role)")
    sp.set_defaults(func=commands.sign_package)

    q = sub.add_parser("qualify", help="installation, operational and performance qualification of this installation "
                       "(IQ/OQ/PQ): HTML/PDF report, JSON verdict, MLflow run; exit 1 when a check fails")
    q.add_argument("--out", default="qualification", help="output folder (default qualification)")
    q.add_argument("--lock", help="environment.lock whose pinned versions must be installed exactly")
    q.add_argument("--skip-pq", action="store_true", help="IQ and OQ only (PQ builds and reproduces a study: minutes)")
    q.add_argument("--replicates", type=_positive_int, default=4000,
                   help="replicates of each OQ reference simulation (default 4000)")
    _compute_options(q)
    q.set_defaults(func=commands.qualify)

    d = sub.add_parser("demo", help="the main job on embedded defaults: insilico run on the bundled external-control study (validate, twins, reports, package)")
    d.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    _compute_options(d)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=commands.demo)
    return p


def _fit_and_simulate_options(sub: argparse.ArgumentParser) -> None:
    """The options of the commands that fit a generator and simulate (validate, run)."""
    sub.add_argument("--no-register", action="store_true", help="do not register the generator in MLflow")
    _compute_options(sub)
    sub.add_argument("--no-progress", action="store_true")


def _compute_options(sub: argparse.ArgumentParser) -> None:
    """Where simulations run (results are the same either way)."""
    sub.add_argument("--workers", type=_positive_int, help="local Dask workers (default: one per core)")
    sub.add_argument("--scheduler", help="address of an existing Dask scheduler (or DASK_SCHEDULER_ADDRESS)")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {v}")
    return v
