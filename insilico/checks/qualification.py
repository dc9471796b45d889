"""Installation and operational qualification (IQ, OQ) of an insilico-trials installation.

IQ: every declared dependency installed at a version its requirement admits, exact versions
where a lock is given (an ``environment.lock`` of a package, or one the site keeps), the
package data readable, and the system tools the reports need. OQ: the shipped reference
checks, run from the installed package (package data, not ``tests/``): engine power against
closed forms, group-sequential simulation against rpact, the RBesT MAP prior's ESS,
group-sequential boundaries of every spending family against rpact's to 1e-6, and the
generator's Weibull likelihood against lifelines' maximum likelihood fit on real data.

Each check is a `Row` (``file`` = the phase). OQ's simulated checks use a fixed seed, so a
qualification is itself reproducible: the same installation gives the same z-scores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import numpy as np
from packaging.requirements import Requirement

from insilico.common.environment import canonical_name, parse_lock
from insilico.common.files import sha256_file
from insilico.common.resources import EXAMPLES, REFERENCE, TEMPLATES, data_file, reference_values
from insilico.reports.verdict import Row
from insilico.trials import gsd
from insilico.validation.plan import PlanError

from .engine import verify_engine
from .metrics import Metrics, metric

#: |simulated - reference| / MCSE above this fails an OQ check. The OQ compares 3 closed forms
#: and 5 rpact scenarios; at 3.5 a correct engine fails one of 8 with probability ~0.4 %.
MAX_Z = 3.5
#: RBesT prints its ELIR ESS to 0.1 patient; ours is exact for the same mixture
MAX_ESS_DIFFERENCE = 0.5
#: the same log-likelihood function in two implementations: agreement to rounding
LIKELIHOOD_ATOL = 1e-6
#: lifelines' optimiser stops with scores ~1e-3 (measured 1.1e-3); a wrong likelihood term is O(1)
SCORE_ATOL = 1e-2
#: boundaries: both are numerical integrations, rpact's to 12 significant digits
BOUNDARY_ATOL = 1e-6
BOUNDARIES = (("asOF", {}, "asOF_critical", None), ("asP", {}, "asP_critical", None),
              ("P", {}, "P_critical", None), ("OF", {}, "OF_critical", None),
              ("asHSD", {"gamma": -4}, "asHSD_m4_critical", None),
              ("asKD", {"gamma": 2}, "asKD_2_unequal_critical", [0.2, 0.5, 0.8, 1.0]))
DISTRIBUTION = "insilico-trials"
FORMAT = "insilico-qualification/1"


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def requirement_rows() -> list[Row]:
    """Each dependency this distribution declares (no extras) installed at an admitted version."""
    rows = []
    for text in requires(DISTRIBUTION) or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra, or another platform's dependency
        got = _installed(req.name)
        ok = got is not None and req.specifier.contains(got, prereleases=True)
        rows.append(Row("IQ", canonical_name(req.name), "declared dependency installed", str(req.specifier) or "any",
                        got or "not installed", "version admitted", "PASS" if ok else "FAIL"))
    return rows


def lock_rows(lock: Path) -> list[Row]:
    """Each distribution pinned in ``lock`` installed at exactly that version."""
    rows = []
    for name, want in sorted(parse_lock(lock.read_text()).items()):
        got = _installed(name)
        rows.append(Row("IQ", name, f"pinned in {lock.name}", want, got or "not installed", "identical",
                        "PASS" if got == want else "FAIL"))
    return rows


def _tool_version(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0][:80] if done.returncode == 0 and text else None


def system_rows() -> list[Row]:
    """WeasyPrint renders a PDF (Pango present); poppler and Chromium for report checks; R/rpact if present."""
    rows = []
    try:
        import weasyprint

        pdf = weasyprint.HTML(string="<p>insilico qualify</p>").write_pdf()
        ok, got = pdf.startswith(b"%PDF"), f"WeasyPrint {weasyprint.__version__}"
    except Exception as err:  # noqa: BLE001 - a broken system library is the finding
        ok, got = False, f"{type(err).__name__}: {err}"[:120]
    rows.append(Row("IQ", "PDF rendering", "WeasyPrint writes a PDF (Pango, fonts)", "a PDF", got, "works",
                    "PASS" if ok else "FAIL"))
    pdftotext = shutil.which("pdftotext")
    got = _tool_version([pdftotext, "-v"]) if pdftotext else None
    rows.append(Row("IQ", "poppler", "pdftotext (reproduce compares PDF report text)", "installed",
                    got or "not installed", "installed", "PASS" if got else "FAIL"))
    chromium = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)),
                    None)
    got = _tool_version([chromium, "--version"]) if chromium else None
    rows.append(Row("IQ", "Chromium", "headless browser (report rendering checks)", "optional",
                    got or "not installed", "shown", "INFO"))
    got = _tool_version(["Rscript", "-e", "cat(as.character(packageVersion('rpact')))"]) \
        if shutil.which("Rscript") else None
    rows.append(Row("IQ", "R rpact", "peer for benchmarks (benchmarks/)", "optional",
                    f"rpact {got}" if got else "not installed", "shown", "INFO"))
    return rows


def package_data_rows() -> list[Row]:
    """The bundled examples, report templates and reference values are readable."""
    rows = []
    for label, package, name in (("examples", EXAMPLES, "study_qualification.yaml"),
                                 ("report templates", TEMPLATES, "credibility.html.j2"),
                                 ("reference values", REFERENCE, "rpact_gsd_exact.json")):
        try:
            got, ok = f"{data_file(package, name).stat().st_size} bytes", True
        except FileNotFoundError as err:
            got, ok = str(err)[:120], False
        rows.append(Row("IQ", label, f"package data readable ({package})", name, got, "present",
                        "PASS" if ok else "FAIL"))
    return rows


def installation_rows(lock: Path | None = None) -> list[Row]:
    """IQ: dependencies, the lock (when given), package data, system tools."""
    version_row = Row("IQ", DISTRIBUTION, "this distribution installed", "installed",
                      _installed(DISTRIBUTION) or "not installed", "installed",
                      "PASS" if _installed(DISTRIBUTION) else "FAIL")
    return [version_row, *requirement_rows(), *(lock_rows(lock) if lock else []), *package_data_rows(),
            *system_rows()]


def operational_rows(replicates: int = 4000, seed: int = 20261203) -> list[Row]:
    """OQ: the engine against closed forms, rpact and RBesT; boundaries against rpact; the
    generator's likelihood against lifelines."""
    rows = []
    m = verify_engine(replicates, seed)
    for c in m["engine_closed_form_max_z"]["detail"]["comparisons"]:
        rows.append(Row("OQ", f"power: {c['check']}", "engine vs closed form", f"{c['closed_form']:.4f}",
                        f"{c['simulated']:.4f} (MCSE {c['mcse']:.4f}, z {c['z']:.2f})", f"z <= {MAX_Z}",
                        "PASS" if c["z"] <= MAX_Z else "FAIL", f"{replicates} replicates, seed {seed}"))
    for c in m["engine_rpact_max_z"]["detail"]["comparisons"]:
        rows.append(Row("OQ", f"group-sequential power: effect {c['effect']}", "engine vs rpact 3.3.4 simulation",
                        f"{c['rpact']:.4f}", f"{c['ours']:.4f} (z {c['z']:.2f})", f"z <= {MAX_Z}",
                        "PASS" if c["z"] <= MAX_Z else "FAIL", "combined MCSE of both simulations"))
    d = m["rbest_ess_abs_difference"]["detail"]
    diff = abs(d["ours"] - d["rbest"])
    rows.append(Row("OQ", "MAP prior ESS (ELIR)", "vs RBesT 1.9-0", f"{d['rbest']:.2f}", f"{d['ours']:.2f}",
                    f"|diff| <= {MAX_ESS_DIFFERENCE}", "PASS" if diff <= MAX_ESS_DIFFERENCE else "FAIL"))
    exact = reference_values("rpact_gsd_exact.json")
    for kind, kw, key, rates in BOUNDARIES:
        design = gsd.group_sequential_design(rates, kmax=3 if rates is None else None, type_of_design=kind, **kw)
        err = float(np.max(np.abs(np.asarray(design.critical_values) - np.asarray(exact[key]))))
        rows.append(Row("OQ", f"boundaries {kind}{''.join(f' {k}={v}' for k, v in kw.items())}",
                        "vs rpact 3.3.4 (12 digits)", ", ".join(f"{v:.6f}" for v in exact[key]),
                        f"max |diff| {err:.1e}", f"<= {BOUNDARY_ATOL:g}",
                        "PASS" if err <= BOUNDARY_ATOL else "FAIL"))
    return rows + lifelines_rows()


def lifelines_rows() -> list[Row]:
    """OQ: the generator's Weibull likelihood against lifelines' MLE, no sampling.

    The reference (package data) is lifelines' Weibull AFT fit of the GBSG-2 control arm
    on exactly our design (examples/gbsg.yaml with a Weibull outcome, no frailty). In
    proportional-hazards form (k = rho, mu = -rho b0, beta = -rho b) it is a point of our
    model's parameter space: there our PyMC likelihood must equal lifelines' maximum
    log-likelihood (two implementations of one function, encoders included), and its score
    must vanish (lifelines stops at |score| ~1e-3; a wrong term gives O(1) and more).
    """
    import pytensor

    from insilico.virtual_patients.encoding import design_names
    from insilico.virtual_patients.examples import example_data, example_spec_path
    from insilico.virtual_patients.fitting import drop_missing, model_inputs, select_rows
    from insilico.virtual_patients.model import build_model
    from insilico.virtual_patients.spec import GeneratorSpec

    ref = reference_values("lifelines_gbsg_weibull.json")
    data = GeneratorSpec.from_yaml(example_spec_path("gbsg")).model_dump(mode="json")
    data["outcome"].update(family="weibull", frailty=False)
    spec = GeneratorSpec.from_dict(data)
    what = f"vs lifelines {ref['lifelines_version']} Weibull AFT MLE, GBSG-2 control arm"
    if spec.hash() != ref["spec_hash"]:
        return [Row("OQ", "Weibull likelihood", what, ref["spec_hash"][:12], spec.hash()[:12], "same model",
                    "FAIL", "the gbsg example spec changed since the reference was recorded")]
    df, _ = drop_missing(select_rows(example_data("gbsg"), spec), spec)
    m = model_inputs(df, spec)
    model = build_model(m.D, m.covariates, m.encoders, m.outcome, m.codes, len(m.studies), spec)
    values = [model.rvs_to_values[model[name]] for name in ("mu", "beta", "log_shape")]
    loglik = model.replace_rvs_by_values([model["y_obs"]])[0]
    f = pytensor.function(values, [loglik, *pytensor.grad(loglik, values)])
    ph = ref["ph"]
    ll, *score = f(np.float64(ph["mu"]), np.array([ph["beta"][n] for n in design_names(m.encoders)]),
                   np.float64(np.log(ph["shape"])))
    diff = abs(float(ll) - ref["log_likelihood"])
    worst = max(float(np.max(np.abs(g))) for g in score)
    same_data = len(df) == ref["n_patients"] and m.scale["time_unit"] == ref["time_unit_days"]
    return [Row("OQ", "Weibull likelihood at the MLE", what, f"{ref['log_likelihood']:.6f}", f"{float(ll):.6f}",
                f"|diff| <= {LIKELIHOOD_ATOL:g}", "PASS" if diff <= LIKELIHOOD_ATOL and same_data else "FAIL",
                f"{len(df)} patients, time unit {m.scale['time_unit']:g} days"),
            Row("OQ", "Weibull score at the MLE", what, "0", f"max |d loglik| {worst:.1e}", f"<= {SCORE_ATOL:g}",
                "PASS" if worst <= SCORE_ATOL else "FAIL", "mu, beta, log shape")]


def qualification_metrics(path: Path) -> Metrics:
    """``qualification_failures`` of a cited ``qualification.json`` (V&V 40 Software quality assurance).

    Failed checks, plus one when it qualified another version of this distribution than the
    one now running, plus one when PQ was skipped: evidence for this installation, complete.
    """
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PlanError(f"verification.qualification: {path} is not readable JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PlanError(f"verification.qualification: {path} is not written by 'insilico qualify' (format {FORMAT})")
    installed = _installed(DISTRIBUTION)
    other_version = doc.get("version") != installed
    value = int(doc.get("failures", 0)) + int(other_version) + int(not doc.get("performance_qualified"))
    return {"qualification_failures": metric("qualification", value, "trial_decision_model", artifact=path.name,
                                             artifact_sha256=sha256_file(path),
                                             detail={"run_id": doc.get("run_id"), "created_at": doc.get("created_at"),
                                                     "qualified_version": doc.get("version"),
                                                     "installed_version": installed, "failures": doc.get("failures"),
                                                     "performance_qualified": doc.get("performance_qualified"),
                                                     "summary": doc.get("summary")})}
