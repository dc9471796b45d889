"""`insilico demo`: the main job end to end on embedded defaults.

`insilico run` on the bundled study ``study_rotterdam_gbsg.yaml``: real-world Rotterdam
tumour-bank patients -> data contract -> Bayesian generator (PyMC, tracked and
registered in MLflow) -> verification and validation against held-out patients and the
GBSG-2 trial -> credibility assessment -> drug-response twins -> credibility and
simulation reports (HTML + PDF) -> a submission package that `insilico reproduce` checks.
"""

from __future__ import annotations

from pathlib import Path

from insilico.stages.simulate import LOCAL, Compute
from insilico.stages.study import StudyOutcome, run_study
from insilico.virtual_patients.examples import examples_dir

STUDY = "study_rotterdam_gbsg.yaml"


def demo_study() -> Path:
    """The bundled study the demo runs."""
    return examples_dir() / STUDY


def run_demo(out: Path, *, progress: bool = True, compute: Compute = LOCAL) -> StudyOutcome:
    """Run the demo study into `out`."""
    return run_study(demo_study(), out, progress=progress, compute=compute)
