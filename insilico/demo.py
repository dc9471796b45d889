"""`insilico demo`: the main job end to end on embedded defaults.

`insilico run` on the bundled study ``examples/study_rotterdam_gbsg.yaml``: real-world
Rotterdam tumour-bank patients -> data contract -> Bayesian generator (PyMC, tracked and
registered in MLflow) -> verification and validation against held-out patients and the
GBSG-2 trial -> credibility assessment -> drug-response twins -> credibility and
simulation reports (HTML + PDF) -> a submission package that `insilico reproduce` checks.
"""

from __future__ import annotations

from pathlib import Path

STUDY = "study_rotterdam_gbsg.yaml"


def run_demo(out: Path, console, progress: bool = True):
    from insilico.cli import _print_study
    from insilico.stages.study import run_study
    from insilico.virtual_patients.examples import examples_dir

    study = examples_dir() / STUDY
    console.rule("[bold]insilico demo[/]: an external control arm from real-world data, validated and packaged")
    console.print(f"study: {study} (insilico run {study} --out {out})")
    res = run_study(study, out, progress=progress, log=lambda m: console.print(f"[bold]·[/] {m}"))
    _print_study(console, res)
    reports = out.resolve() / "reports"
    console.print(f"[bold]reports[/]: {reports / 'credibility.html'} (PDF beside it), "
                  f"{reports / 'simulation.html'}")
    return res
