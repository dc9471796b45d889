"""Submission package (`insilico package`) and its re-run check (`insilico reproduce`).

A package is one zip a reviewer can verify and re-run: the reports, the study inputs,
the simulation results, the evidence, the fitted generator, a data dictionary (names,
types, levels and ranges; never values), the environment lock, the code version, the
seeds, the stated Monte Carlo tolerances and ``MANIFEST.json`` (SHA-256 and size of
every other file). Patient-level rows (data files the study reads, the synthetic cohort,
twins of real patients) are left out unless the plan allows them *and* the caller asks
for them; the manifest lists what was left out, and why.

Layout (package path <- study output folder ``out_dir`` written by ``run_study``)::

    reports/**                 <- reports/**                    (HTML, PDF, figures)
    study/**                   <- study/**                      (minus patient data files)
    results/simulation.nc      <- validation/simulation.nc      (the credibility plan's design)
    results/simulations/*.nc   <- simulations/*.nc              (the study's further designs)
    evidence/records.json      <- validation/records.json
    evidence/assessment.json   <- validation/assessment.json
    evidence/figures/**        <- validation/figures/**         (the records' artifacts)
    generator/{spec.yaml, posterior.nc, generator.json} <- validation/generator/
    data/synthetic_cohort.csv  <- validation/synthetic_cohort.csv (only with patient rows)
    data/twins.csv             <- twins/twins.csv (twins of real patients: only with patient rows)
    run.json, seeds.json, data_dictionary.csv, environment.lock, code/VERSION,
    code/source.tar.gz (``git archive`` of the run's commit), tolerances.json, MANIFEST.json

Tolerances (written to ``tolerances.json`` at build time, so a reviewer sees them before
re-running). With Z = 3 and ``d`` the difference between the packaged and the re-run value:

* Simulation results (every ``results/**.nc``): every variable and coordinate of every
  group bit-identical (same dtype, shape, values; NaN equals NaN). The engine's streams
  are keyed by (scenario, chunk) from the plan seed (DESIGN.md), so no Monte Carlo
  tolerance applies. Caveat: a design that draws its patients from the fitted generator
  inherits the posterior's draws, so across platforms its results are bit-identical only
  when the posterior is.
* Posterior means, per parameter element: ``|d| <= Z * sqrt(2) * MCSE`` with
  MCSE = sd / sqrt(ESS_mean) (``arviz.mcse(method="mean")``; Vehtari, Gelman, Simpson,
  Carpenter & Bürkner 2021, Bayesian Analysis 16(2)). sqrt(2): the re-run is a second
  independent chain set of the same length, so the *difference* of two means has
  standard error sqrt(2) * MCSE; Z = 3 makes a false alarm 0.27% per parameter.
  Constant elements (sd = 0) must be identical.
* Evidence records whose ``check`` is not MCMC-derived (``MCMC_CHECKS``): value and verdict
  identical (they are deterministic functions of the data, the plan and keyed seeds).
* MCMC-derived records (value ``v``, verdict identical in every case):

  1. ``detail["mcse"]`` stated by the check: ``|d| <= Z * sqrt(2) * mcse`` (as above);
  2. otherwise ``|d| <= Z * sqrt(2) * r * s`` where ``r = max_p MCSE_p / sd_p
     = 1 / sqrt(min_p ESS_mean,p)`` is the posterior's worst relative Monte Carlo error
     and ``s = max(|v|, |threshold bounds|)`` the metric's scale (the plan's threshold
     states the scale on which the metric matters). This is a *derived* bound resting
     on one assumption: a metric computed from posterior draws carries no more relative
     Monte Carlo error than the worst-mixing parameter. It is a guard against gross
     disagreement; the decision-relevant part is the verdict, which must not change.
  3. no value, or no posterior in the package to derive ``r``: identical (stated as such).

  On the building platform nutpie with a fixed seed is deterministic, so every
  difference is 0; the tolerances matter when the package is re-run on another platform.
  Known limit: p-values (``simulation_based_calibration``, ``rmst_tost``) are uniform
  under their null, so rule 2 can fail across platforms without any defect; such a
  failure is reported, with the unchanged verdict beside it, for the reviewer to judge.
* Assessment: overall adequacy, each sub-model's adequacy and each factor's level identical.

The re-run check (`reproduce`) verifies the manifest first (a changed byte fails naming
the file; the re-run is then skipped unless forced, because a tampered package proves
nothing), re-runs the study in a scratch tracking store with the runner it is given
(``trials.pipeline.run_study``; this module does not import ``trials``) and compares
file by file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from insilico.validation.evidence import jsonable, sha256_file, sha256_stream

FORMAT = "insilico-trials submission package"
FORMAT_VERSION = 1
Z = 3.0
SQRT2 = math.sqrt(2.0)

# evidence checks whose values come from MCMC fits (the generator's posterior or SBC fits)
MCMC_CHECKS = frozenset({
    "mcmc_diagnostics", "simulation_based_calibration", "covariate_balance", "distributions", "dependence",
    "propensity", "mahalanobis_qq", "kaplan_meier", "rmst_tost", "discrimination", "calibration",
    "outcome_distribution", "predictive_intervals", "calibration_fit", "applicability", "privacy",
    "trial_replication", "cohort_plausibility",
    "psis_loo",  # not in the list, but PSIS-LOO Pareto k is computed from the posterior draws
})

# package path -> path in the study output folder written by run_study
RESULTS, POSTERIOR, RECORDS, ASSESSMENT = ("results/simulation.nc", "generator/posterior.nc",
                                           "evidence/records.json", "evidence/assessment.json")
OUT_PATHS = {RESULTS: "validation/simulation.nc", POSTERIOR: "validation/generator/posterior.nc",
             RECORDS: "validation/records.json", ASSESSMENT: "validation/assessment.json"}
GENERATOR_FILES = ("spec.yaml", "posterior.nc", "generator.json")
# patient-level outputs: packaged only when the plan allows patient rows and the caller asks
PATIENT_OUTPUTS = {"validation/synthetic_cohort.csv": ("data/synthetic_cohort.csv", "synthetic cohort"),
                   "twins/twins.csv": ("data/twins.csv", "drug-response twins of real patients")}
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq", ".feather", ".arrow", ".xlsx", ".xls",
                            ".sas7bdat", ".xpt", ".dta", ".sav", ".rds", ".rdata", ".rda"})
MANIFEST = "MANIFEST.json"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: the same inputs give the same zip entries


# ----------------------------------------------------------------------------- small helpers

def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read {what} ({err})") from err


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False, default=jsonable) + "\n").encode()


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def _num(x: float | None) -> str:
    if x is None:
        return "none"
    return repr(float(x)) if math.isfinite(x) else str(x)


def _short(x: float) -> str:
    return f"{x:.3g}"


def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess | None:
    """A read-only git command (never one that changes the checkout); None when git is absent."""
    try:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


# ----------------------------------------------------------------------------- environment

def environment_lock() -> str:
    """Every installed distribution as ``name==version``, sorted by name (pip requirements syntax)."""
    from importlib.metadata import distributions

    seen: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    head = (f"# environment of the packaged study: Python {platform.python_version()} "
            f"({platform.python_implementation()}) on {platform.platform()}\n")
    return head + "".join(seen[k] + "\n" for k in sorted(seen))


def parse_lock(text: str) -> dict[str, str]:
    """{lower-case name: version} of an ``environment.lock``."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            out[name.lower()] = version
    return out


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version()}


def _code_source(commit: str | None) -> tuple[bytes | None, list[str], str | None]:
    """(``git archive`` tarball, notes, archived commit) of the package source, when in a git checkout."""
    root = _project_root()
    top = _git("rev-parse", "--show-toplevel", cwd=root)
    if top is None or top.returncode != 0:
        return None, [f"code/source.tar.gz not included: {root} is not a git checkout (or git is not "
                      "installed); code/VERSION names the commit recorded by the run"], None
    top_dir = Path(top.stdout.decode().strip())
    notes = []
    target = "HEAD"
    if commit:
        known = _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=top_dir)
        if known is not None and known.returncode == 0:
            target = commit
        else:
            notes.append(f"the run's commit {commit} is not in this checkout; code/source.tar.gz holds HEAD")
    else:
        notes.append("the run recorded no git commit; code/source.tar.gz holds HEAD at packaging time")
    rev = _git("rev-parse", target, cwd=top_dir)
    archived = rev.stdout.decode().strip() if rev is not None and rev.returncode == 0 else None
    tar = _git("archive", "--format=tar.gz", "--prefix=insilico-trials/", target, cwd=top_dir)
    if tar is None or tar.returncode != 0 or archived is None:
        err = tar.stderr.decode().strip() if tar is not None else "git failed"
        return None, [*notes, f"code/source.tar.gz not included: git archive {target} failed ({err})"], None
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=top_dir)
    if dirty is not None and dirty.returncode == 0 and dirty.stdout.strip():
        notes.append("the checkout had uncommitted changes when the package was built; code/source.tar.gz "
                     f"holds the committed tree {archived} only")
    return tar.stdout, notes, archived


# ----------------------------------------------------------------------------- data dictionary

DICTIONARY_COLUMNS = ("record", "column", "role", "type", "levels", "range", "transform", "source", "rows",
                      "sha256")


def data_dictionary(spec: dict | None, run: dict, assessment: dict) -> str:
    """CSV: one row per data column the generator spec reads, one per data source; no values.

    Column rows: role (covariate/outcome/id/study), type, levels, range and transform as
    the spec states them. Source rows: role, name, row count (from the assessment's data
    list) and SHA-256 (from run.json, else the assessment).
    """
    rows: list[dict[str, Any]] = []
    if spec:
        if spec.get("id"):
            rows.append({"column": spec["id"], "role": "id", "type": "identifier"})
        if spec.get("study"):
            rows.append({"column": spec["study"], "role": "study", "type": "categorical"})
        for c in spec.get("covariates") or []:
            rows.append({"column": c.get("name"), "role": "covariate", "type": c.get("type"),
                         "levels": _levels(c.get("levels")), "range": _range(c.get("range")),
                         "transform": (c.get("transform") or "none") if c.get("type") in ("continuous", "count")
                         else ""})
        o = spec.get("outcome") or {}
        family = o.get("family")
        if o.get("column"):
            rows.append({"column": o["column"], "role": "outcome", "type": f"{family} outcome",
                         "levels": _levels(o.get("levels")), "range": _range(o.get("range"))})
        if o.get("time"):
            rows.append({"column": o["time"], "role": "outcome", "type": f"{family} follow-up time (> 0)",
                         "range": _range(o.get("range"))})
        if o.get("event"):
            rows.append({"column": o["event"], "role": "outcome", "type": "event indicator (1 = event, 0 = censored)",
                         "levels": "0; 1"})
    for r in rows:
        r["record"] = "column"
    hashes = (run.get("hashes") or {}).get("data") or {}
    described = [d for d in assessment.get("data") or [] if isinstance(d, dict)]
    for d in described:  # one row per role: a source may serve several (training, target, replication)
        rows.append({"record": "source", "role": d.get("role", ""), "source": d.get("name"), "rows": d.get("rows", ""),
                     "sha256": d.get("sha256") or hashes.get(d.get("name"), "")})
    for name in [n for n in hashes if n not in {d.get("name") for d in described}]:
        rows.append({"record": "source", "source": name, "sha256": hashes[name]})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=DICTIONARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k, "") for k in DICTIONARY_COLUMNS})
    return buf.getvalue()


def _levels(levels) -> str:
    return "; ".join(map(str, levels)) if levels else ""


def _range(rng) -> str:
    return f"[{rng[0]}, {rng[1]}]" if rng else ""


# ----------------------------------------------------------------------------- tolerances

def _element_labels(da) -> list[str]:
    """``name[c1, c2]`` per element of a (non-sample) DataArray, coordinate values where indexed."""
    name = str(da.name)
    if not da.dims:
        return [name]
    axes = [[str(v) for v in da[d].values] if d in da.coords else [str(i) for i in range(da.sizes[d])]
            for d in da.dims]
    return [f"{name}[{', '.join(ax[i] for ax, i in zip(axes, idx, strict=True))}]"
            for idx in np.ndindex(*da.shape)]


def posterior_mcse(path: str | Path) -> dict[str, dict[str, float]]:
    """{parameter element: {mean, sd, mcse}} of the ``posterior`` group of an ArviZ NetCDF.

    MCSE of the mean = sd / sqrt(ESS_mean) (``arviz.mcse(method="mean")``, Vehtari et al. 2021).
    """
    import arviz as az

    from insilico.virtual_patients.generator import load_tree

    tree = load_tree(Path(path))
    if "posterior" not in tree.children:
        raise ValueError(f"{path}: no posterior group (not an ArviZ posterior file)")
    post = tree["posterior"].to_dataset()
    sample = [d for d in ("chain", "draw") if d in post.dims]
    if len(sample) != 2:
        raise ValueError(f"{path}: the posterior group needs dims chain and draw, has {list(post.dims)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant elements: 0/0 inside ESS
        mcse = az.mcse(post, method="mean")
        mean = post.mean(sample)
        sd = post.std(sample, ddof=1)
    out: dict[str, dict[str, float]] = {}
    for v in post.data_vars:
        labels = _element_labels(mean[v])
        for lab, m, s, e in zip(labels, np.ravel(mean[v].values), np.ravel(sd[v].values),
                                np.ravel(mcse[v].transpose(*mean[v].dims).values), strict=True):
            s, e = float(s), float(e)
            out[lab] = {"mean": float(m), "sd": s if math.isfinite(s) else 0.0,
                        "mcse": e if math.isfinite(e) and s > 0 else 0.0}
    return out


def relative_mc_error(params: dict[str, dict[str, float]]) -> float | None:
    """r = max_p MCSE_p / sd_p = 1 / sqrt(min_p ESS_mean,p) over non-constant elements."""
    ratios = [p["mcse"] / p["sd"] for p in params.values() if p["sd"] > 0 and p["mcse"] > 0]
    return max(ratios) if ratios else None


def record_key(r: dict) -> str:
    return f"{r.get('sub_model')}/{r.get('check')}/{r.get('metric')}"


def _keyed(records: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in records:
        k = record_key(r)
        n, key = 2, k
        while key in out:  # keys are unique per study; a repeat keeps its order as '#2', '#3'
            key, n = f"{k}#{n}", n + 1
        out[key] = r
    return out


def record_tolerance(rec: dict, r: float | None) -> tuple[str, float, str]:
    """(rule, absolute tolerance, how it was derived) for one evidence record (module docstring)."""
    value = rec.get("value")
    if rec.get("check") not in MCMC_CHECKS:
        return "identical", 0.0, "deterministic check: identical value and verdict"
    if value is None:
        return "identical", 0.0, "MCMC-derived, no value: must stay without a value, same verdict"
    mcse = (rec.get("detail") or {}).get("mcse")
    if isinstance(mcse, (int, float)) and not isinstance(mcse, bool) and math.isfinite(mcse) and mcse >= 0:
        return "stated_mcse", Z * SQRT2 * float(mcse), f"3*sqrt(2) x stated MCSE {_short(float(mcse))}"
    if r is None:
        return "identical", 0.0, "MCMC-derived, but no stated MCSE and no posterior to derive one: identical"
    bounds = [abs(float(b)) for b in (rec.get("threshold") or {}).values() if isinstance(b, (int, float))]
    scale = max([abs(float(value)), *bounds])
    return ("posterior_relative", Z * SQRT2 * r * scale,
            f"3*sqrt(2) x r {_short(r)} x scale {_short(scale)} (r = posterior's worst MCSE/sd)")


def tolerances(simulations: dict[str, Path], posterior_path: Path | None, records: list[dict],
               sources: dict[str, str] | None = None) -> dict:
    """The tolerance document (``tolerances.json``) for a study's outputs.

    ``simulations`` maps a package path (``results/...nc``) to its file; ``sources`` maps
    the same package path to where the study output folder keeps it (for the re-run).
    """
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "z": Z,
        "platform": platform_info(),
        "rules": {
            "simulation": "every variable and coordinate of every group bit-identical (dtype, shape, values; "
                          "NaN equals NaN): keyed seeds make the engine deterministic",
            "posterior": "per parameter element |mean difference| <= 3*sqrt(2) x MCSE of the mean "
                         "(MCSE = sd/sqrt(ESS_mean), Vehtari et al. 2021); constant elements identical",
            "evidence": "deterministic checks identical; MCMC-derived checks within 3*sqrt(2) x the stated "
                        "MCSE (detail.mcse), else 3*sqrt(2) x r x max(|value|, |threshold|) with r the "
                        "posterior's worst relative MCSE; every verdict identical",
            "assessment": "overall and sub-model adequacy and every factor level identical",
        },
    }
    if simulations:
        from insilico.virtual_patients.generator import load_tree

        files = {}
        for arc, path in sorted(simulations.items()):
            tree = load_tree(path)
            files[arc] = {"source": (sources or {}).get(arc, arc), "variables": [
                _var_path(node.path, str(v)) for node in tree.subtree
                for v in node.to_dataset(inherit=False).variables]}
        doc["simulation"] = {"rule": "bit-identical", "files": files}
    r = None
    if posterior_path is not None:
        params = posterior_mcse(posterior_path)
        r = relative_mc_error(params)
        doc["posterior"] = {"file": POSTERIOR, "relative_mc_error": r, "parameters": {
            k: {**p, "tolerance": Z * SQRT2 * p["mcse"]} for k, p in params.items()}}
    recs = {}
    for key, rec in _keyed(records).items():
        rule, tol, how = record_tolerance(rec, r)
        recs[key] = {"check": rec.get("check"), "value": rec.get("value"), "passed": rec.get("passed"),
                     "mcmc": rec.get("check") in MCMC_CHECKS, "rule": rule, "tolerance": tol, "derivation": how}
    doc["evidence"] = {"file": RECORDS, "records": recs}
    return doc


def _var_path(group: str, name: str) -> str:
    return f"{group.rstrip('/')}/{name}"


# ----------------------------------------------------------------------------- build

def _study_file(out_dir: Path, run: dict) -> Path:
    """The study YAML inside ``out_dir/study``: by its recorded SHA-256, else the top-level YAML
    naming the study and its credibility plan, else ``<study>.yaml``, else the only top-level YAML."""
    study_dir = out_dir / "study"
    if not study_dir.is_dir():
        raise ValueError(f"{out_dir}: no study/ folder (the study YAML and the files it references)")
    yamls = [p for p in _files_under(study_dir) if p.suffix.lower() in (".yaml", ".yml")]
    want = (run.get("hashes") or {}).get("study")
    if want:
        hit = [p for p in yamls if sha256_file(p) == want]
        if hit:
            return hit[0]
    name = run.get("study")
    top = [p for p in yamls if p.parent == study_dir]
    named = [p for p in top if _is_study_yaml(p, name)]
    if len(named) == 1:
        return named[0]
    for p in (study_dir / f"{name}.yaml", study_dir / f"{name}.yml"):
        if name and p.is_file():
            return p
    if len(top) == 1:
        return top[0]
    raise ValueError(f"{study_dir}: cannot tell which YAML is the study (none matches run.json hashes.study "
                     f"and there is no {name}.yaml)")


def _is_study_yaml(path: Path, name: str | None) -> bool:
    """A study YAML names itself and its credibility plan (``trials.pipeline.StudySpec``)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and "credibility_plan" in doc and doc.get("name") == name


def build_package(out_dir: str | Path, zip_path: str | Path, *, include_patient_rows: bool = False,
                  overwrite: bool = False, log: Callable[[str], object] | None = print) -> Path:
    """Write the submission zip of a study output folder (atomically; refuses to overwrite).

    ``include_patient_rows`` adds the synthetic cohort and the patient data files the
    study reads; allowed only when the plan allows it (run.json ``include_patient_rows``).
    """
    out_dir, zip_path = Path(out_dir), Path(zip_path)
    log = log or (lambda *_: None)
    if not out_dir.is_dir():
        raise ValueError(f"{out_dir}: no such study output folder")
    if not (out_dir / "run.json").is_file():
        raise ValueError(f"{out_dir}: missing run.json (not the output folder of 'insilico run')")
    if zip_path.is_dir():
        raise ValueError(f"{zip_path}: is a folder; give the path of the zip to write")
    if zip_path.exists() and not overwrite:
        raise ValueError(f"{zip_path}: exists; choose another --out or pass --overwrite")
    run = _read_json(out_dir / "run.json", "run.json")
    if not isinstance(run, dict):
        raise ValueError(f"{out_dir / 'run.json'}: expected a JSON object")
    if include_patient_rows and not run.get("include_patient_rows"):
        raise ValueError(f"include_patient_rows: the plan of study {run.get('study')!r} does not allow patient "
                         "rows to leave the analysis (run.json include_patient_rows is false)")
    for rel in (OUT_PATHS[RECORDS], OUT_PATHS[ASSESSMENT]):
        if not (out_dir / rel).is_file():
            raise ValueError(f"{out_dir}: missing {rel} (the evidence of the study)")
    records = _read_json(out_dir / OUT_PATHS[RECORDS], "evidence records")
    assessment = _read_json(out_dir / OUT_PATHS[ASSESSMENT], "the assessment")
    if not isinstance(records, list):
        raise ValueError(f"{out_dir / OUT_PATHS[RECORDS]}: expected a list of evidence records")
    study_file = _study_file(out_dir, run)

    entries: dict[str, Path | bytes] = {}
    excluded: list[dict[str, str]] = []
    absent: list[str] = []
    notes: list[str] = []
    data_hashes = set(((run.get("hashes") or {}).get("data") or {}).values())
    for p in _files_under(out_dir / "reports"):
        entries[f"reports/{p.relative_to(out_dir / 'reports').as_posix()}"] = p
    for p in _files_under(out_dir / "study"):
        rel = p.relative_to(out_dir).as_posix()
        patient = p.suffix.lower() in TABLE_SUFFIXES or sha256_file(p) in data_hashes
        if patient and not include_patient_rows:
            excluded.append({"path": rel, "reason": "patient-level data file read by the study"})
        else:
            entries[rel] = p
    for arc, rel in OUT_PATHS.items():
        if (out_dir / rel).is_file():
            entries[arc] = out_dir / rel
        else:
            absent.append(f"{arc} (no {rel} in the study output)")
    sims = {RESULTS: out_dir / OUT_PATHS[RESULTS]} if (out_dir / OUT_PATHS[RESULTS]).is_file() else {}
    sim_sources = {RESULTS: OUT_PATHS[RESULTS]}
    for p in sorted((out_dir / "simulations").glob("*.nc")):
        arc = f"results/simulations/{p.name}"
        entries[arc], sims[arc], sim_sources[arc] = p, p, f"simulations/{p.name}"
    for p in _files_under(out_dir / "validation" / "figures"):
        entries[f"evidence/figures/{p.relative_to(out_dir / 'validation' / 'figures').as_posix()}"] = p
    for f in GENERATOR_FILES:
        p = out_dir / "validation" / "generator" / f
        if p.is_file():
            entries[f"generator/{f}"] = p
        elif f"generator/{f}" != POSTERIOR:
            absent.append(f"generator/{f}")
    for src, (dst, what) in PATIENT_OUTPUTS.items():
        if (out_dir / src).is_file():
            if include_patient_rows:
                entries[dst] = out_dir / src
            else:
                excluded.append({"path": src, "reason": f"{what} (patient-level rows)"})
    if not any(a.startswith("reports/") and a.endswith(".html") for a in entries):
        absent.append("reports/*.html (no rendered report in the study output)")

    spec = None
    if (out_dir / "validation" / "generator" / "spec.yaml").is_file():
        import yaml

        spec = yaml.safe_load((out_dir / "validation" / "generator" / "spec.yaml").read_text())
    else:
        notes.append("data_dictionary.csv lists the data sources only: the package has no generator spec")
    entries["data_dictionary.csv"] = data_dictionary(spec if isinstance(spec, dict) else None, run,
                                                     assessment if isinstance(assessment, dict) else {}).encode()
    entries["environment.lock"] = environment_lock().encode()
    tar, code_notes, archived = _code_source(run.get("git_commit"))
    notes += code_notes
    if tar is not None:
        entries["code/source.tar.gz"] = tar
    entries["code/VERSION"] = _version_text(run, archived, tar is not None, code_notes).encode()
    entries["seeds.json"] = _dumps(run.get("seeds") or {})
    entries["run.json"] = out_dir / "run.json"
    post = out_dir / OUT_PATHS[POSTERIOR]
    entries["tolerances.json"] = _dumps(tolerances(sims, post if post.is_file() else None, records, sim_sources))
    used = {v.resolve() for v in entries.values() if isinstance(v, Path)}
    used |= {(out_dir / e["path"]).resolve() for e in excluded}
    omitted = [p.relative_to(out_dir).as_posix() for p in _files_under(out_dir)
               if p.resolve() not in used and p.resolve() != zip_path.resolve() and p.suffix not in (".zip", ".tmp")]

    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        files: dict[str, dict[str, Any]] = {}
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for arc in sorted(entries):
                files[arc] = _write_entry(zf, arc, entries[arc])
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "study": run.get("study"),
                "run_id": run.get("run_id"), "study_file": study_file.relative_to(out_dir).as_posix(),
                "include_patient_rows": include_patient_rows,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": files, "excluded": excluded, "absent": absent, "notes": notes,
                "omitted": omitted,  # other files of the output folder, outside the package layout
            }
            _write_entry(zf, MANIFEST, _dumps(manifest))
        tmp.replace(zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    size = zip_path.stat().st_size
    log(f"packaged {len(files) + 1} files ({size / 1e6:.1f} MB) -> {zip_path}")
    if excluded:
        log("left out (patient rows): " + ", ".join(e["path"] for e in excluded))
    for n in notes:
        log(f"note: {n}")
    return zip_path


def _version_text(run: dict, archived: str | None, has_tar: bool, notes: list[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("insilico-trials")
    except PackageNotFoundError:
        ours = "not installed as a distribution"
    lines = [f"insilico-trials {ours}", f"git_commit: {run.get('git_commit') or 'not recorded by the run'}"]
    if has_tar:
        lines.append(f"source: code/source.tar.gz (git archive of commit {archived})")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _write_entry(zf: zipfile.ZipFile, arc: str, source: Path | bytes) -> dict[str, Any]:
    """Write one zip entry, hashing the bytes as they are written (so the manifest matches them)."""
    info = zipfile.ZipInfo(arc, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    h, size = hashlib.sha256(), 0
    big = isinstance(source, Path) and source.stat().st_size >= 2**31 - 2**20
    with zf.open(info, "w", force_zip64=big) as dst:
        if isinstance(source, bytes):
            h.update(source)
            dst.write(source)
            size = len(source)
        else:
            with source.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    dst.write(block)
                    size += len(block)
    return {"sha256": h.hexdigest(), "size": size}


# ----------------------------------------------------------------------------- manifest

def _read_manifest(text: bytes | str, where: str) -> dict:
    try:
        m = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: not a submission package (MANIFEST.json is not valid JSON: {err})") from err
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("files"), dict):
        raise ValueError(f"{where}: not a submission package (MANIFEST.json is not an {FORMAT} manifest)")
    return m


def _package_files(package: Path) -> tuple[dict, dict[str, tuple[str, int]]]:
    """(manifest, {path: (sha256, size)}) of a package folder or zip."""
    if package.is_dir():
        if not (package / MANIFEST).is_file():
            raise ValueError(f"{package}: not a submission package (no MANIFEST.json)")
        manifest = _read_manifest((package / MANIFEST).read_bytes(), str(package))
        found = {p.relative_to(package).as_posix(): (sha256_file(p), p.stat().st_size)
                 for p in _files_under(package)}
    elif package.is_file() and zipfile.is_zipfile(package):
        found = {}
        with zipfile.ZipFile(package) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
            if MANIFEST not in names:
                raise ValueError(f"{package}: not a submission package (no MANIFEST.json)")
            manifest = _read_manifest(zf.read(MANIFEST), str(package))
            for name in names:
                with zf.open(name) as f:
                    found[name] = sha256_stream(f)
    elif package.exists():
        raise ValueError(f"{package}: not a submission package (neither a folder nor a zip archive)")
    else:
        raise ValueError(f"{package}: no such package")
    found.pop(MANIFEST, None)
    return manifest, found


def _manifest_rows(manifest: dict, found: dict[str, tuple[str, int]]) -> list[Row]:
    rows = []
    listed = manifest["files"]
    for name in sorted(set(listed) | set(found)):
        exp = listed.get(name)
        got = found.get(name)
        if exp is None:
            rows.append(Row(name, "", "listed in MANIFEST.json", "not listed", "present", "", "FAIL",
                            "file not listed in MANIFEST.json"))
        elif got is None:
            rows.append(Row(name, "", "SHA-256 vs MANIFEST.json", exp.get("sha256", "?")[:16], "missing",
                            "identical", "FAIL", "missing (listed in MANIFEST.json)"))
        elif got[0] != exp.get("sha256") or got[1] != exp.get("size"):
            want = str(exp.get("sha256"))
            rows.append(Row(name, "", "SHA-256 vs MANIFEST.json", f"{want[:16]} ({exp.get('size')} B)",
                            f"{got[0][:16]} ({got[1]} B)", "identical", "FAIL",
                            f"SHA-256 mismatch (manifest {want[:12]}..., file {got[0][:12]}...): "
                            "changed after packaging"))
        else:
            rows.append(Row(name, "", "SHA-256 vs MANIFEST.json", got[0][:16], got[0][:16], "identical", "PASS"))
    return rows


def verify_manifest(package_dir: str | Path) -> list[str]:
    """Problems of a package (folder or zip) against its MANIFEST.json; empty when it is intact.

    Each problem starts with the file's package path: missing files, files not listed,
    SHA-256 or size mismatches.
    """
    manifest, found = _package_files(Path(package_dir))
    return [f"{r.file}: {r.note}" for r in _manifest_rows(manifest, found) if r.verdict == "FAIL"]


# ----------------------------------------------------------------------------- report

@dataclass
class Row:
    """One comparison: the file and item, what was checked, expected vs got, the tolerance, the verdict."""

    file: str
    item: str
    check: str
    expected: str
    got: str
    tolerance: str
    verdict: str  # PASS | FAIL | INFO | SKIP
    note: str = ""


@dataclass
class ReproduceReport:
    package: str
    study: str | None = None
    run_id: str | None = None
    scratch: str | None = None
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and not self.failures and any(r.verdict == "PASS" for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "FAIL"]

    def verdict_line(self) -> str:
        judged = [r for r in self.rows if r.verdict in ("PASS", "FAIL")]
        if self.passed:
            return f"PASS: {len(judged)} checks agree within their stated tolerances ({self.package})"
        failed = self.failures
        names = "; ".join(f"{r.file}{' ' + r.item if r.item else ''}" for r in failed[:8])
        more = f" and {len(failed) - 8} more" if len(failed) > 8 else ""
        return f"FAIL: {len(failed)} of {len(judged)} checks failed: {names}{more}"

    def to_text(self) -> str:
        head = ("file", "item", "check", "expected", "got", "tolerance", "verdict")
        cells = [[r.file, r.item, r.check, r.expected, r.got, r.tolerance, r.verdict] for r in self.rows]
        cells = [[_clip(c, 70) for c in row] for row in cells]
        widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(head)]

        def line(row):
            return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

        out = [f"insilico reproduce {self.package} (study {self.study}, run {self.run_id})", "",
               line([h.upper() for h in head]), line(["-" * w for w in widths])]
        out += [line(row) for row in cells]
        notes = [f"- {r.file}{' ' + r.item if r.item else ''}: {r.note}" for r in self.rows
                 if r.note and r.verdict in ("FAIL", "INFO", "SKIP")]
        if notes:
            out += ["", "notes:", *notes]
        out += ["", self.verdict_line()]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict:
        return {"package": self.package, "study": self.study, "run_id": self.run_id, "scratch": self.scratch,
                "passed": self.passed, "verdict": self.verdict_line(), "rows": [asdict(r) for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _clip(text: str, n: int) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


# ----------------------------------------------------------------------------- comparisons

def _equal_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality with NaN == NaN (NaT == NaT): ``np.array_equal(equal_nan=True)`` per element."""
    eq = np.asarray(a == b)
    if a.dtype.kind in "fc":
        eq = eq | (np.isnan(a) & np.isnan(b))
    elif a.dtype.kind in "mM":
        eq = eq | (np.isnat(a) & np.isnat(b))
    return eq


def _compare_arrays(file: str, item: str, check: str, a, b) -> Row:
    exp = f"{a.dtype} {tuple(a.dims)} {tuple(a.shape)}"
    got = f"{b.dtype} {tuple(b.dims)} {tuple(b.shape)}"
    if a.dtype != b.dtype or a.dims != b.dims or a.shape != b.shape:
        return Row(file, item, check, exp, got, "bit-identical", "FAIL", "dtype, dims or shape differ")
    x, y = np.asarray(a.values), np.asarray(b.values)
    eq = _equal_mask(x, y)
    if bool(np.all(eq)):
        return Row(file, item, check, exp, "identical", "bit-identical", "PASS")
    bad = np.argwhere(~eq.reshape(x.shape)) if x.ndim else np.zeros((1, 0), dtype=int)
    first = tuple(int(i) for i in bad[0])
    where = ", ".join(f"{d}={a[d].values[i]!s}" if d in a.coords else f"{d}={i}"
                      for d, i in zip(a.dims, first, strict=True))
    msg = (f"{len(bad)} of {x.size} elements differ; first at ({where}): "
           f"{x[first]!r} expected, {y[first]!r} re-run")
    return Row(file, item, check, exp, f"{len(bad)} of {x.size} differ", "bit-identical", "FAIL", msg)


def compare_simulation(expected: Path, got: Path, file: str = RESULTS) -> list[Row]:
    """Every group, dimension, coordinate and variable of two NetCDF DataTrees, bit for bit."""
    from insilico.virtual_patients.generator import load_tree

    a, b = load_tree(expected), load_tree(got)
    groups_a = {n.path: n for n in a.subtree}
    groups_b = {n.path: n for n in b.subtree}
    rows = []
    for g in sorted(set(groups_a) | set(groups_b)):
        if g not in groups_b or g not in groups_a:
            rows.append(Row(file, g, "group present", "present" if g in groups_a else "absent",
                            "present" if g in groups_b else "absent", "identical", "FAIL",
                            "group missing from the re-run" if g in groups_a else "group not in the package"))
            continue
        da, db = groups_a[g].to_dataset(inherit=False), groups_b[g].to_dataset(inherit=False)
        sa, sb = dict(da.sizes), dict(db.sizes)
        if sa or sb:
            rows.append(Row(file, g, "dimensions", str(sa), str(sb) if sb != sa else "identical", "identical",
                            "PASS" if sa == sb else "FAIL"))
        for kind, names_a, names_b in (("coordinate", da.coords, db.coords), ("variable", da.data_vars, db.data_vars)):
            for v in sorted(set(map(str, names_a)) | set(map(str, names_b))):
                item = _var_path(g, v)
                if v not in names_a or v not in names_b:
                    where = "missing from the re-run" if v in names_a else "not in the package"
                    rows.append(Row(file, item, f"{kind} present", "present" if v in names_a else "absent",
                                    "present" if v in names_b else "absent", "identical", "FAIL", f"{kind} {where}"))
                    continue
                rows.append(_compare_arrays(file, item, f"{kind} bit-identical", da[v], db[v]))
    return rows


def compare_posterior(stated: dict, got: Path, file: str = POSTERIOR) -> list[Row]:
    """Posterior means of the re-run within each element's stated tolerance; one row per variable."""
    params = stated["parameters"]
    new = posterior_mcse(got)
    by_var: dict[str, list[str]] = {}
    for k in list(params) + [k for k in new if k not in params]:
        by_var.setdefault(k.split("[", 1)[0], []).append(k)
    rows = []
    for var, keys in by_var.items():
        missing = [k for k in keys if k not in new]
        extra = [k for k in keys if k not in params]
        if missing or extra:
            rows.append(Row(file, var, "posterior mean within 3*sqrt(2) x MCSE", f"{len(keys) - len(extra)} element(s)",
                            f"{len(keys) - len(missing)} element(s)", "same elements", "FAIL",
                            f"missing from the re-run: {missing[:5]}; not in the package: {extra[:5]}"))
            continue
        worst, worst_ratio, failed = None, -1.0, []
        for k in keys:
            d = abs(new[k]["mean"] - params[k]["mean"])
            tol = params[k]["tolerance"]
            ok = d <= tol if tol > 0 else new[k]["mean"] == params[k]["mean"]
            ratio = d / tol if tol > 0 else (0.0 if ok else math.inf)
            if not ok:
                failed.append(k)
            if ratio > worst_ratio:
                worst, worst_ratio = k, ratio
        w = params[worst]
        d = new[worst]["mean"] - w["mean"]
        got_text = f"worst {worst}: {new[worst]['mean']:.6g} (diff {_short(d)})"
        note = "" if not failed else (f"{len(failed)} of {len(keys)} element(s) outside tolerance, worst {worst}: "
                                      f"packaged {_num(w['mean'])}, re-run {_num(new[worst]['mean'])}, "
                                      f"|diff| {_short(abs(d))} > tolerance {_short(w['tolerance'])}")
        rows.append(Row(file, var, "posterior mean within 3*sqrt(2) x MCSE",
                        f"{worst}: {w['mean']:.6g}" if len(keys) > 1 else f"{w['mean']:.6g}", got_text,
                        f"<= {_short(w['tolerance'])}" if w["tolerance"] > 0 else "identical (constant)",
                        "FAIL" if failed else "PASS", note))
    return rows


def compare_records(stated: dict, got: list[dict], file: str = RECORDS) -> list[Row]:
    """Each record's value within its stated tolerance and its verdict unchanged."""
    recs = stated["records"]
    new = _keyed(got)
    rows = []
    for key in list(recs) + [k for k in new if k not in recs]:
        s, n = recs.get(key), new.get(key)
        if s is None or n is None:
            rows.append(Row(file, key, "record present", "present" if s else "absent", "present" if n else "absent",
                            "identical", "FAIL",
                            "record missing from the re-run" if s else "record not in the package"))
            continue
        v0, v1, tol = s["value"], n.get("value"), float(s["tolerance"])
        if v0 is None or v1 is None:
            same_value = v0 is None and v1 is None
            diff = None
        else:
            diff = abs(float(v1) - float(v0))
            same_value = diff <= tol if tol > 0 else float(v1) == float(v0)
        same_verdict = s["passed"] == n.get("passed")
        tol_text = "identical" if s["rule"] == "identical" else f"<= {_short(tol)} ({s['rule']})"
        notes = []
        if not same_value:
            notes.append(f"value {_num(v1)} vs packaged {_num(v0)}"
                         + (f": |diff| {_short(diff)} exceeds {tol_text}" if diff is not None else ""))
        if not same_verdict:
            notes.append(f"verdict changed: {_verdict(s['passed'])} -> {_verdict(n.get('passed'))}")
        rows.append(Row(file, key, "value and verdict", f"{_num(v0)} ({_verdict(s['passed'])})",
                        f"{_num(v1)} ({_verdict(n.get('passed'))})", tol_text,
                        "PASS" if same_value and same_verdict else "FAIL", "; ".join(notes)))
    return rows


def _verdict(p) -> str:
    return "informative" if p is None else ("pass" if p else "fail")


def compare_assessment(expected: dict, got: dict, file: str = ASSESSMENT) -> list[Row]:
    """Overall adequacy, each sub-model's adequacy and each factor's level."""
    rows = []
    a, b = (expected.get("overall") or {}).get("adequate"), (got.get("overall") or {}).get("adequate")
    rows.append(Row(file, "overall", "adequate for the context of use", str(a), str(b), "identical",
                    "PASS" if a == b else "FAIL"))
    subs_a = {s.get("name"): s for s in expected.get("sub_models") or []}
    subs_b = {s.get("name"): s for s in got.get("sub_models") or []}
    for name in list(subs_a) + [n for n in subs_b if n not in subs_a]:
        sa, sb = subs_a.get(name), subs_b.get(name)
        if sa is None or sb is None:
            rows.append(Row(file, str(name), "sub-model present", "present" if sa else "absent",
                            "present" if sb else "absent", "identical", "FAIL"))
            continue
        la = {f.get("factor"): f.get("level") for f in sa.get("factors") or []}
        lb = {f.get("factor"): f.get("level") for f in sb.get("factors") or []}
        changed = [f"{f}: {la.get(f)} -> {lb.get(f)}" for f in list(la) + [f for f in lb if f not in la]
                   if la.get(f) != lb.get(f)]
        same = sa.get("adequate") == sb.get("adequate") and not changed
        rows.append(Row(file, str(name), f"adequacy and {len(la)} factor level(s)", f"adequate={sa.get('adequate')}",
                        f"adequate={sb.get('adequate')}" + (f", {len(changed)} level(s) changed" if changed else ""),
                        "identical", "PASS" if same else "FAIL", "; ".join(changed)))
    return rows


def compare_runs(expected: dict, got: dict) -> list[Row]:
    """Inputs (hashes), seeds: identical; package versions and code commit: shown (INFO)."""
    rows = []
    ha, hb = expected.get("hashes") or {}, got.get("hashes") or {}
    for k in sorted(set(ha) | set(hb)):
        va, vb = ha.get(k), hb.get(k)
        if isinstance(va, dict) or isinstance(vb, dict):
            va, vb = va or {}, vb or {}
            for name in sorted(va):
                if name in vb or va[name] not in vb.values():
                    rows.append(_same("run.json", f"hashes.{k}[{name}]", "input SHA-256", va[name], vb.get(name)))
                else:  # same bytes read from another path (file sources are named by absolute path)
                    rows.append(Row("run.json", f"hashes.{k}[{name}]", "input SHA-256", _clip(va[name], 24),
                                    "identical (other path)", "identical", "PASS"))
            for name in sorted(set(vb) - set(va)):
                if vb[name] not in va.values():
                    rows.append(_same("run.json", f"hashes.{k}[{name}]", "input SHA-256", None, vb[name]))
        else:
            rows.append(_same("run.json", f"hashes.{k}", "input SHA-256", va, vb))
    rows.append(_same("run.json", "seeds", "seeds", json.dumps(expected.get("seeds"), sort_keys=True),
                      json.dumps(got.get("seeds"), sort_keys=True)))
    va, vb = expected.get("versions") or {}, got.get("versions") or {}
    diff = [f"{k} {va.get(k)} -> {vb.get(k)}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
    rows.append(Row("run.json", "versions", "package versions of the run", f"{len(va)} package(s)",
                    "identical" if not diff else f"{len(diff)} differ", "shown", "INFO", "; ".join(diff)))
    ca, cb = expected.get("git_commit"), got.get("git_commit")
    rows.append(Row("run.json", "git_commit", "code version", str(ca), "identical" if ca == cb else str(cb),
                    "shown", "INFO", "" if ca == cb else "the re-run used different code"))
    return rows


def _same(file: str, item: str, check: str, a, b) -> Row:
    return Row(file, item, check, _clip(str(a), 24), "identical" if a == b else _clip(str(b), 24),
               "identical", "PASS" if a == b else "FAIL", "" if a == b else f"packaged {a}, re-run {b}")


# ----------------------------------------------------------------------------- reproduce

@contextmanager
def scratch_tracking(folder: Path) -> Iterator[str]:
    """Point MLflow (env and client) at a scratch SQLite store; restore both afterwards."""
    import mlflow

    if mlflow.active_run() is not None:
        raise ValueError("reproduce cannot run inside an active MLflow run: end it first")
    keys = ("MLFLOW_TRACKING_URI", "INSILICO_ARTIFACT_ROOT", "MLFLOW_REGISTRY_URI")
    old_env = {k: os.environ.get(k) for k in keys}
    old_uri = mlflow.get_tracking_uri()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["INSILICO_ARTIFACT_ROOT"] = (folder / "artifacts").resolve().as_uri()
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    mlflow.set_tracking_uri(uri)
    old_registry = None
    if mlflow.get_registry_uri() != uri:  # a registry pinned elsewhere must not receive the re-run's models
        old_registry = mlflow.get_registry_uri()
        mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED")
        mlflow.set_tracking_uri(old_uri)
        if old_registry is not None:
            mlflow.set_registry_uri(old_registry)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _extract(zip_path: Path, dest: Path) -> None:
    """Unzip, refusing entries that would land outside ``dest``."""
    dest.mkdir(parents=True)
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            if info.filename.startswith(("/", "\\")) or ".." in Path(info.filename).parts or \
                    not target.is_relative_to(root):
                raise ValueError(f"{zip_path}: not a submission package (unsafe path {info.filename!r} in the zip)")
        zf.extractall(root)


def reproduce(zip_path: str | Path, runner: Callable[[Path, Path], object], *, scratch: str | Path | None = None,
              log: Callable[[str], object] | None = print, force_rerun: bool = False) -> ReproduceReport:
    """Verify a package, re-run its study in a scratch tracking store, compare file by file.

    ``runner(study_yaml, out_dir)`` has the ``run_study`` signature (pass a
    ``functools.partial`` to set its keywords). ``scratch``: an empty or new folder that is
    kept for inspection; by default a temporary folder removed afterwards. A package that
    fails its manifest is not re-run unless ``force_rerun``.
    """
    zip_path = Path(zip_path)
    log = log or (lambda *_: None)
    if not zip_path.is_file():
        raise ValueError(f"{zip_path}: no such package file")
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"{zip_path}: not a submission package (not a zip archive)")
    made = scratch is None
    root = Path(tempfile.mkdtemp(prefix="insilico-reproduce-")) if made else Path(scratch)
    if not made:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ValueError(f"{root}: the scratch folder must be new or empty")
        root.mkdir(parents=True, exist_ok=True)
    try:
        report = _reproduce(zip_path, runner, root, log, force_rerun)
        report.scratch = "(removed)" if made else str(root)
    finally:
        if made:
            shutil.rmtree(root, ignore_errors=True)
    log(report.verdict_line())
    return report


def _reproduce(zip_path: Path, runner, root: Path, log, force_rerun: bool) -> ReproduceReport:
    pkg = root / "package"
    _extract(zip_path, pkg)
    manifest, found = _package_files(pkg)
    report = ReproduceReport(package=str(zip_path), study=manifest.get("study"), run_id=manifest.get("run_id"))
    if not (pkg / "run.json").is_file():
        raise ValueError(f"{zip_path}: not a complete submission package (missing run.json)")
    rows = report.rows
    rows += _manifest_rows(manifest, found)
    bad = [r.file for r in rows if r.verdict == "FAIL"]
    log(f"manifest: {len(found)} files, " + (f"{len(bad)} problem(s): {', '.join(bad)}" if bad else "all intact"))
    rows += _environment_rows(pkg)
    if bad and not force_rerun:
        rows.append(Row("(re-run)", "", "re-run and compare", "", "skipped", "", "SKIP",
                        "the package failed its manifest check, so a re-run could not vouch for it"))
        return report
    if not (pkg / "tolerances.json").is_file():
        rows.append(Row("tolerances.json", "", "present", "present", "missing", "", "FAIL",
                        "the package states no tolerances; nothing can be compared"))
        return report
    stated = _read_json(pkg / "tolerances.json", "tolerances")
    packaged_run = _read_json(pkg / "run.json", "run.json")
    study = pkg / str(manifest.get("study_file") or "")
    if not manifest.get("study_file") or not study.is_file() or not study.resolve().is_relative_to(pkg.resolve()):
        rows.append(Row("study/", str(manifest.get("study_file")), "study YAML present", "present", "missing", "",
                        "FAIL", "the manifest names no study YAML inside the package"))
        return report
    out = root / "rerun"
    log(f"re-running {study.relative_to(pkg)} in a scratch tracking store under {root}")
    with scratch_tracking(root / "mlflow"):
        try:
            runner(study, out)
        except Exception as err:  # noqa: BLE001 - any failure of the re-run is the verdict, reported in full
            excl = ", ".join(e.get("path", "") for e in manifest.get("excluded") or [])
            rows.append(Row("(re-run)", str(study.relative_to(pkg)), "study re-runs from the package", "completes",
                            f"{type(err).__name__}", "", "FAIL",
                            f"{type(err).__name__}: {err}" + (f" (left out of the package: {excl})" if excl else "")))
            return report
    rows += _compare_outputs(pkg, out, stated, packaged_run)
    return report


def _environment_rows(pkg: Path) -> list[Row]:
    rows = []
    if (pkg / "environment.lock").is_file():
        a = parse_lock((pkg / "environment.lock").read_text())
        b = parse_lock(environment_lock())
        diff = [f"{k} {a.get(k, '-')} -> {b.get(k, '-')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        rows.append(Row("environment.lock", "", "installed distributions", f"{len(a)} pinned",
                        "identical" if not diff else f"{len(diff)} differ", "shown", "INFO", "; ".join(diff[:20])
                        + (f"; ... {len(diff) - 20} more" if len(diff) > 20 else "")))
    if (pkg / "tolerances.json").is_file():
        try:
            built = json.loads((pkg / "tolerances.json").read_text()).get("platform") or {}
        except (json.JSONDecodeError, AttributeError):
            built = {}
        now = platform_info()
        same = {k: built.get(k) for k in now} == now
        rows.append(Row("tolerances.json", "platform", "platform of the re-run", str(built.get("platform")),
                        "identical" if same else now["platform"], "shown", "INFO",
                        "" if same else "another platform: MCMC-derived numbers may differ within their tolerances"))
    return rows


def _compare_outputs(pkg: Path, out: Path, stated: dict, packaged_run: dict) -> list[Row]:
    rows: list[Row] = []
    rerun = out / "run.json"
    if rerun.is_file():
        rows += compare_runs(packaged_run, _read_json(rerun, "the re-run's run.json"))
    else:
        rows.append(Row("run.json", "", "written by the re-run", "present", "missing", "", "FAIL"))
    for arc, spec in (stated.get("simulation") or {}).get("files", {}).items():
        if (out / spec["source"]).is_file():
            rows += compare_simulation(pkg / arc, out / spec["source"], arc)
        else:
            rows.append(Row(arc, "", "written by the re-run", "present", "missing", "", "FAIL",
                            f"the re-run wrote no {spec['source']}"))
    if "posterior" in stated:
        if (out / OUT_PATHS[POSTERIOR]).is_file():
            rows += compare_posterior(stated["posterior"], out / OUT_PATHS[POSTERIOR])
        else:
            rows.append(Row(POSTERIOR, "", "written by the re-run", "present", "missing", "", "FAIL",
                            f"the re-run wrote no {OUT_PATHS[POSTERIOR]}"))
    if (out / OUT_PATHS[RECORDS]).is_file():
        rows += compare_records(stated["evidence"], _read_json(out / OUT_PATHS[RECORDS], "the re-run's records"))
    else:
        rows.append(Row(RECORDS, "", "written by the re-run", "present", "missing", "", "FAIL"))
    if (out / OUT_PATHS[ASSESSMENT]).is_file():
        rows += compare_assessment(_read_json(pkg / ASSESSMENT, "the packaged assessment"),
                                   _read_json(out / OUT_PATHS[ASSESSMENT], "the re-run's assessment"))
    else:
        rows.append(Row(ASSESSMENT, "", "written by the re-run", "present", "missing", "", "FAIL"))
    rows.append(Row("reports/", "", "not compared", "", "", "", "INFO",
                    "rendered documents carry timestamps; every number in them is a record compared above"))
    return rows


__all__ = ["build_package", "verify_manifest", "reproduce", "ReproduceReport", "Row", "tolerances",
           "data_dictionary", "environment_lock", "posterior_mcse", "record_tolerance", "MCMC_CHECKS"]
