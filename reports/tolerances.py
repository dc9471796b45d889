"""What a re-run must reproduce, and within what: the tolerance document (``tolerances.json``).

With Z = 3 and ``d`` the difference between the packaged and the re-run value:

* Simulation results (every ``results/**.nc``): every variable and coordinate of every
  group bit-identical (same dtype, shape, values; NaN equals NaN). The engine's streams
  are keyed by (scenario, chunk) from the plan seed, so no Monte Carlo tolerance applies.
  A design that draws its patients from the fitted generator inherits the posterior's
  draws, so across platforms its results are bit-identical only when the posterior is.
* Posterior means, per parameter element: ``|d| <= Z * sqrt(2) * MCSE`` with
  MCSE = sd / sqrt(ESS_mean) (``arviz.mcse(method="mean")``; Vehtari, Gelman, Simpson,
  Carpenter & Bürkner 2021, Bayesian Analysis 16(2)). sqrt(2): the re-run is a second
  independent chain set of the same length, so the *difference* of two means has
  standard error sqrt(2) * MCSE; Z = 3 makes a false alarm 0.27% per parameter.
  Constant elements (sd = 0) must be identical.
* Evidence records whose ``check`` is not MCMC-derived (``MCMC_CHECKS``): value and verdict
  identical (they are deterministic functions of the data, the plan and keyed seeds).
* MCMC-derived records (value ``v``, verdict identical in every case):

  0. ``simulation_based_calibration`` and ``mcmc_diagnostics`` (`VERDICT_ONLY`): verdict only —
     an SBC p-value, an ESS or an R-hat is redrawn whole when the chains differ. ``detail["spread"]`` stated by the check (the
     check re-run with fresh seeds on the same posterior, `insilico.checks.spread`):
     ``|d| <= Z * sqrt(2) * sd`` of those runs;
  1. ``detail["mcse"]`` stated by the check: ``|d| <= Z * sqrt(2) * mcse`` (as above);
  2. otherwise ``|d| <= Z * sqrt(2) * r * s`` where ``r = max_p MCSE_p / sd_p
     = 1 / sqrt(min_p ESS_mean,p)`` is the posterior's worst relative Monte Carlo error
     and ``s = max(|v|, |threshold bounds|)`` the metric's scale. This is a *derived*
     bound resting on one assumption: a metric computed from posterior draws carries no
     more relative Monte Carlo error than the worst-mixing parameter; the
     decision-relevant part is the verdict, which must not change.
  3. no value, or no posterior in the package to derive ``r``: identical (stated as such).

* Assessment: overall adequacy, each sub-model's adequacy and each factor's level identical.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np

from insilico.common.environment import platform_info
from insilico.common.errors import InputError
from insilico.common.files import load_tree

from .manifest import FORMAT_VERSION
from .verdict import short

Z = 3.0
SQRT2 = math.sqrt(2.0)

# evidence checks whose values come from MCMC fits (the generator's posterior or SBC fits)
MCMC_CHECKS = frozenset({
    "mcmc_diagnostics", "simulation_based_calibration", "covariate_balance", "distributions", "dependence",
    "propensity", "mahalanobis_qq", "kaplan_meier", "rmst_tost", "discrimination", "calibration",
    "outcome_distribution", "predictive_intervals", "calibration_fit", "applicability", "privacy",
    "trial_replication", "cohort_plausibility",
    "psis_loo",  # PSIS-LOO Pareto k is computed from the posterior draws
})

# MCMC-derived checks whose value a re-run with other draws redraws from its whole sampling
# distribution, so no numeric tolerance describes it: only the verdict is compared
VERDICT_ONLY = {
    "simulation_based_calibration": "SBC's p-value is a fresh draw under calibration (uniform: SD 0.29) when the "
                                    "fits' draws differ; the verdict must agree",
    "mcmc_diagnostics": "R-hat, ESS and divergences describe the particular chains (measured: min tail ESS 118 vs "
                        "180 for the same model and seed, other rounding); the re-run's chains must meet the same "
                        "goals",
}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# the package's paths of the results, the posterior and the evidence
RESULTS, POSTERIOR, RECORDS, ASSESSMENT = ("results/simulation.nc", "generator/posterior.nc",
                                           "evidence/records.json", "evidence/assessment.json")


def element_labels(da) -> list[str]:
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
    tree = load_tree(Path(path))
    if "posterior" not in tree.children:
        raise InputError(f"{path}: no posterior group (not an ArviZ posterior file)")
    post = tree["posterior"].to_dataset()
    sample = [d for d in ("chain", "draw") if d in post.dims]
    if len(sample) != 2:
        raise InputError(f"{path}: the posterior group needs dims chain and draw, has {list(post.dims)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant elements: 0/0 inside ESS
        mcse = az.mcse(post, method="mean")
        mean = post.mean(sample)
        sd = post.std(sample, ddof=1)
    out: dict[str, dict[str, float]] = {}
    for v in post.data_vars:
        labels = element_labels(mean[v])
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
    """A record's key (``sub_model/check/metric``), written out in records since format 2."""
    return r.get("key") or f"{r.get('sub_model')}/{r.get('check')}/{r.get('metric')}"


def keyed(records: list[dict]) -> dict[str, dict]:
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
    if rec.get("check") in VERDICT_ONLY:
        return "verdict_only", 0.0, VERDICT_ONLY[rec["check"]]
    spread = (rec.get("detail") or {}).get("spread")
    if isinstance(spread, dict) and _finite(spread.get("sd")) and spread["sd"] >= 0:
        sd = float(spread["sd"])
        return ("rerun_spread", Z * SQRT2 * sd,
                f"3*sqrt(2) x SD {short(sd)} of {spread.get('runs')} runs of the check with fresh seeds")
    mcse = (rec.get("detail") or {}).get("mcse")
    if isinstance(mcse, (int, float)) and not isinstance(mcse, bool) and math.isfinite(mcse) and mcse >= 0:
        return "stated_mcse", Z * SQRT2 * float(mcse), f"3*sqrt(2) x stated MCSE {short(float(mcse))}"
    if r is None:
        return "identical", 0.0, "MCMC-derived, but no stated MCSE and no posterior to derive one: identical"
    bounds = [abs(float(b)) for b in (rec.get("threshold") or {}).values() if isinstance(b, (int, float))]
    scale = max([abs(float(value)), *bounds])
    return ("posterior_relative", Z * SQRT2 * r * scale,
            f"3*sqrt(2) x r {short(r)} x scale {short(scale)} (r = posterior's worst MCSE/sd)")


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
            "evidence": "deterministic checks identical; MCMC-derived checks: SBC verdict only; within "
                        "3*sqrt(2) x the run-to-run SD (detail.spread) or the stated MCSE (detail.mcse), else "
                        "3*sqrt(2) x r x max(|value|, |threshold|) with r the posterior's worst relative MCSE; "
                        "every verdict identical",
            "assessment": "overall and sub-model adequacy and every factor level identical",
        },
    }
    if simulations:
        files = {}
        for arc, path in sorted(simulations.items()):
            tree = load_tree(path)
            files[arc] = {"source": (sources or {}).get(arc, arc), "variables": [
                var_path(node.path, str(v)) for node in tree.subtree
                for v in node.to_dataset(inherit=False).variables]}
        doc["simulation"] = {"rule": "bit-identical", "files": files}
    r = None
    if posterior_path is not None:
        params = posterior_mcse(posterior_path)
        r = relative_mc_error(params)
        doc["posterior"] = {"file": POSTERIOR, "relative_mc_error": r, "parameters": {
            k: {**p, "tolerance": Z * SQRT2 * p["mcse"]} for k, p in params.items()}}
    recs = {}
    for key, rec in keyed(records).items():
        rule, tol, how = record_tolerance(rec, r)
        recs[key] = {"check": rec.get("check"), "value": rec.get("value"), "passed": rec.get("passed"),
                     "mcmc": rec.get("check") in MCMC_CHECKS, "rule": rule, "tolerance": tol, "derivation": how}
    doc["evidence"] = {"file": RECORDS, "records": recs}
    return doc


def var_path(group: str, name: str) -> str:
    return f"{group.rstrip('/')}/{name}"
