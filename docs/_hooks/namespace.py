"""MkDocs hook: the `insilico` namespace as one folder tree, for the API reference.

pyproject maps `insilico.trials` and its siblings onto the brief's top-level folders
(setuptools ``package-dir``); griffe, which reads the source for mkdocstrings, looks for
a package's subpackages inside its own folder. Before the build, this hook copies the
sources into ``build/api/insilico`` laid out as the wheel installs them, so griffe finds
the namespace as a user's installation has it. It also prepares the scratch folder
the executed pages (walkthrough, tutorials) run in.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mkdocs.plugins import event_priority

MAPPED = {"virtual_patients": "virtual_patients", "trials": "trials", "validation": "validation",
          "reports": "reports", "examples": "examples"}


# before mkdocstrings' own on_config: its handler keeps only the `paths` that exist then,
# so on a fresh clone build/api must be there first
@event_priority(100)
def on_config(config, **kwargs):
    root = Path(config["config_file_path"]).parent
    tree = root / "build" / "api"
    if tree.exists():
        shutil.rmtree(tree)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    ns = tree / "insilico"
    shutil.copytree(root / "insilico", ns, ignore=skip)
    for name, folder in MAPPED.items():
        shutil.copytree(root / folder, ns / name, ignore=skip)
    # `python -m mkdocs` puts the repository root on sys.path, where griffe would find the
    # source folder insilico/ (without its mapped packages) before the tree built here
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != root.resolve()]
    _executed_pages(root)
    return config


def _executed_pages(root: Path) -> None:
    """The executed pages run in a fresh scratch folder with their own tracking store, and
    find this environment's ``insilico`` first on PATH."""
    run = root / "build" / "docs-run"
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    os.environ["INSILICO_DOCS_RUN"] = str(run)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{run / 'mlflow.db'}"
    os.environ["INSILICO_ARTIFACT_ROOT"] = (run / "artifacts").as_uri()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
