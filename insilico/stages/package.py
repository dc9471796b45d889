"""`insilico package`: the submission package of a study output folder.

A package is one zip a reviewer can verify and re-run: the reports, the study inputs,
the simulation results, the evidence, the fitted generator, a data dictionary (names,
types, levels and ranges; never values), the environment lock, the code version, the
seeds, the stated tolerances (`insilico.reports.tolerances`) and ``MANIFEST.json``
(`insilico.reports.manifest`). Patient-level rows (data files the study reads, the
synthetic cohort, twins of real patients) are left out unless the plan allows them *and*
the caller asks for them; the manifest lists what was left out, and why.

Layout (package path <- study output folder, `insilico.layout`)::

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
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow

from insilico import tracking
from insilico.common.environment import environment_lock
from insilico.common.errors import InputError, SpecError
from insilico.common.files import atomic, sha256_file
from insilico.common.specfile import read_yaml
from insilico.layout import GENERATOR_FILES, OUT_PATHS, PATIENT_OUTPUTS
from insilico.reports.manifest import dumps, files_under, read_json, verify_manifest, write_package
from insilico.reports.tolerances import ASSESSMENT, POSTERIOR, RECORDS, RESULTS, tolerances

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq", ".feather", ".arrow", ".xlsx", ".xls",
                            ".sas7bdat", ".xpt", ".dta", ".sav", ".rds", ".rdata", ".rda"})


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess | None:
    """A read-only git command (never one that changes the checkout); None when git is absent."""
    try:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _code_source(commit: str | None) -> tuple[bytes | None, list[str], str | None]:
    """(``git archive`` tarball, notes, archived commit) of the package source, when in a git checkout."""
    root = tracking.project_root()
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


def _study_file(out_dir: Path, run: dict) -> Path:
    """The study YAML inside ``out_dir/study``: by its recorded SHA-256, else the top-level YAML
    naming the study and its credibility plan, else ``<study>.yaml``, else the only top-level YAML."""
    study_dir = out_dir / "study"
    if not study_dir.is_dir():
        raise InputError(f"{out_dir}: no study/ folder (the study YAML and the files it references)")
    yamls = [p for p in files_under(study_dir) if p.suffix.lower() in (".yaml", ".yml")]
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
    raise InputError(f"{study_dir}: cannot tell which YAML is the study (none matches run.json hashes.study "
                     f"and there is no {name}.yaml)")


def _is_study_yaml(path: Path, name: str | None) -> bool:
    """A study YAML names itself and its credibility plan (`insilico.stages.study.StudySpec`)."""
    try:
        doc = read_yaml(path)
    except SpecError:
        return False
    return isinstance(doc, dict) and "credibility_plan" in doc and doc.get("name") == name


def build_package(out_dir: str | Path, zip_path: str | Path, *, include_patient_rows: bool = False,
                  overwrite: bool = False) -> Path:
    """Write the submission zip of a study output folder (atomically; refuses to overwrite).

    ``include_patient_rows`` adds the synthetic cohort and the patient data files the
    study reads; allowed only when the plan allows it (run.json ``include_patient_rows``).
    """
    out_dir, zip_path = Path(out_dir), Path(zip_path)
    if not out_dir.is_dir():
        raise InputError(f"{out_dir}: no such study output folder")
    if not (out_dir / "run.json").is_file():
        raise InputError(f"{out_dir}: missing run.json (not the output folder of 'insilico run')")
    if zip_path.is_dir():
        raise InputError(f"{zip_path}: is a folder; give the path of the zip to write")
    if zip_path.exists() and not overwrite:
        raise InputError(f"{zip_path}: exists; choose another --out or pass --overwrite")
    run = read_json(out_dir / "run.json", "run.json")
    if not isinstance(run, dict):
        raise InputError(f"{out_dir / 'run.json'}: expected a JSON object")
    if include_patient_rows and not run.get("include_patient_rows"):
        raise InputError(f"include_patient_rows: the plan of study {run.get('study')!r} does not allow patient "
                         "rows to leave the analysis (run.json include_patient_rows is false)")
    for rel in (OUT_PATHS[RECORDS], OUT_PATHS[ASSESSMENT]):
        if not (out_dir / rel).is_file():
            raise InputError(f"{out_dir}: missing {rel} (the evidence of the study)")
    records = read_json(out_dir / OUT_PATHS[RECORDS], "evidence records")
    assessment = read_json(out_dir / OUT_PATHS[ASSESSMENT], "the assessment")
    if not isinstance(records, list):
        raise InputError(f"{out_dir / OUT_PATHS[RECORDS]}: expected a list of evidence records")
    study_file = _study_file(out_dir, run)

    entries: dict[str, Path | bytes] = {}
    excluded: list[dict[str, str]] = []
    absent: list[str] = []
    notes: list[str] = []
    data_hashes = set(((run.get("hashes") or {}).get("data") or {}).values())
    for p in files_under(out_dir / "reports"):
        entries[f"reports/{p.relative_to(out_dir / 'reports').as_posix()}"] = p
    for p in files_under(out_dir / "study"):
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
    for p in files_under(out_dir / "validation" / "figures"):
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
        spec = read_yaml(out_dir / "validation" / "generator" / "spec.yaml", InputError)
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
    entries["seeds.json"] = dumps(run.get("seeds") or {})
    entries["run.json"] = out_dir / "run.json"
    post = out_dir / OUT_PATHS[POSTERIOR]
    entries["tolerances.json"] = dumps(tolerances(sims, post if post.is_file() else None, records, sim_sources))
    used = {v.resolve() for v in entries.values() if isinstance(v, Path)}
    used |= {(out_dir / e["path"]).resolve() for e in excluded}
    omitted = [p.relative_to(out_dir).as_posix() for p in files_under(out_dir)
               if p.resolve() not in used and p.resolve() != zip_path.resolve() and p.suffix not in (".zip", ".tmp")]

    files = write_package(zip_path, entries, {
        "study": run.get("study"), "run_id": run.get("run_id"), "study_file": study_file.relative_to(out_dir).as_posix(),
        "include_patient_rows": include_patient_rows, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "excluded": excluded, "absent": absent, "notes": notes,
        "omitted": omitted,  # other files of the output folder, outside the package layout
    })
    size = zip_path.stat().st_size
    logger.info("packaged %d files (%.1f MB) -> %s", len(files) + 1, size / 1e6, zip_path)
    if excluded:
        logger.info("left out (patient rows): %s", ", ".join(e["path"] for e in excluded))
    for n in notes:
        logger.info("note: %s", n)
    return zip_path


def fetch_package(run_id: str, zip_path: str | Path, *, overwrite: bool = False) -> Path:
    """The package an ``insilico run`` logged, fetched through the tracking store.

    ``run_id`` is the study's parent run; its ``package`` stage run holds the zip as an
    artifact. Through an ``mlflow server`` the bytes come over HTTP, so the study's output
    folder need not exist on this machine. The download is checked against the SHA-256 the
    run recorded and against its own manifest before it is written (atomically).
    """
    zip_path = Path(zip_path)
    if zip_path.is_dir():
        raise InputError(f"{zip_path}: is a folder; give the path of the zip to write")
    if zip_path.exists() and not overwrite:
        raise InputError(f"{zip_path}: exists; choose another --out or pass --overwrite")
    tracking.setup()
    client = mlflow.MlflowClient()
    try:
        parent = client.get_run(run_id)
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for an unknown id
        raise InputError(f"{run_id}: neither a study output folder nor an MLflow run id of 'insilico run'") from err
    if "study.out_dir" not in parent.data.tags:
        raise InputError(f"run {run_id} is not the parent run of an 'insilico run' study")
    stages = client.search_runs([parent.info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.stage = 'package'")
    if not stages or "package.sha256" not in stages[0].data.tags:
        raise InputError(f"run {run_id} logged no package (its study stopped before the package stage)")
    stage = stages[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(run_id=stage.info.run_id, artifact_path="package",
                                                          dst_path=tmp, tracking_uri=mlflow.get_tracking_uri()))
        zips = sorted(folder.glob("*.zip"))
        if len(zips) != 1:
            raise InputError(f"run {run_id}: expected one package zip among its artifacts, found {len(zips)}")
        want, got = stage.data.tags["package.sha256"], sha256_file(zips[0])
        if got != want:
            raise InputError(f"run {run_id}: the fetched package's SHA-256 {got[:12]}… is not the "
                             f"{want[:12]}… the run recorded")
        problems = verify_manifest(zips[0])
        if problems:
            raise InputError(f"run {run_id}: the fetched package fails its manifest: " + "; ".join(problems[:5]))
        with atomic(zip_path) as tmp_zip:
            shutil.copyfile(zips[0], tmp_zip)
    logger.info("fetched the package of run %s through %s (SHA-256 %s…, manifest intact) -> %s",
                run_id, mlflow.get_tracking_uri(), want[:12], zip_path)
    return zip_path


def _version_text(run: dict, archived: str | None, has_tar: bool, notes: list[str]) -> str:
    try:
        ours = version("insilico-trials")
    except PackageNotFoundError:
        ours = "not installed as a distribution"
    lines = [f"insilico-trials {ours}", f"git_commit: {run.get('git_commit') or 'not recorded by the run'}"]
    if has_tar:
        lines.append(f"source: code/source.tar.gz (git archive of commit {archived})")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"
