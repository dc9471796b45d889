"""Package data: the bundled examples, report templates and verification reference values.

Read through `importlib.resources`, so an installed wheel finds them as a checkout does.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES = "insilico.examples"
REFERENCE = "insilico.validation.reference"
TEMPLATES = "insilico.reports.templates"


def data_dir(package: str) -> Path:
    """The folder of a data package, as a path on disk (wheels install as folders)."""
    root = resources.files(package)
    path = Path(str(root))
    if not path.is_dir():
        raise FileNotFoundError(f"package data {package} is not a folder on disk ({root}); reinstall insilico-trials")
    return path


def data_file(package: str, name: str) -> Path:
    """One file of a data package (FileNotFoundError naming what is available otherwise)."""
    path = data_dir(package) / name
    if not path.is_file():
        have = sorted(p.name for p in data_dir(package).iterdir() if not p.name.startswith(("_", ".")))
        raise FileNotFoundError(f"{name} is not in {package} (it has: {', '.join(have)})")
    return path


def reference_values(name: str) -> Any:
    """A verification reference file (JSON) of `insilico.validation.reference`."""
    return json.loads(data_file(REFERENCE, name).read_text())
