"""Comparisons of a re-run with its package, each a list of `Row`: results bit for bit,
posterior means, evidence records and the assessment within their stated tolerances."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from insilico.common.files import load_tree

from .tolerances import ASSESSMENT, POSTERIOR, RECORDS, RESULTS, keyed, posterior_mcse, var_path
from .verdict import Row, clip, num, short


def equal_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality with NaN == NaN (NaT == NaT): ``np.array_equal(equal_nan=True)`` per element."""
    eq = np.asarray(a == b)
    if a.dtype.kind in "fc":
        eq = eq | (np.isnan(a) & np.isnan(b))
    elif a.dtype.kind in "mM":
        eq = eq | (np.isnat(a) & np.isnat(b))
    return eq


def compare_arrays(file: str, item: str, check: str, a, b) -> Row:
    exp = f"{a.dtype} {tuple(a.dims)} {tuple(a.shape)}"
    got = f"{b.dtype} {tuple(b.dims)} {tuple(b.shape)}"
    if a.dtype != b.dtype or a.dims != b.dims or a.shape != b.shape:
        return Row(file, item, check, exp, got, "bit-identical", "FAIL", "dtype, dims or shape differ")
    x, y = np.asarray(a.values), np.asarray(b.values)
    eq = equal_mask(x, y)
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
                item = var_path(g, v)
                if v not in names_a:  # added by a later version: every packaged array is still compared
                    rows.append(Row(file, item, f"{kind} present", "absent", "present", "shown", "INFO",
                                    f"{kind} new in the re-run's version (not in the package)"))
                    continue
                if v not in names_b:
                    rows.append(Row(file, item, f"{kind} present", "present", "absent", "identical", "FAIL",
                                    f"{kind} missing from the re-run"))
                    continue
                rows.append(compare_arrays(file, item, f"{kind} bit-identical", da[v], db[v]))
    return rows


def compare_draws(packaged: Path, got: Path, file: str = POSTERIOR) -> Row:
    """Whether the re-run drew the very same posterior: expected on the builder's platform, where
    models compile without fast-math (`insilico.common.compilation`) whatever the cache holds;
    elsewhere the means are held to their MCSE tolerance instead (`compare_posterior`)."""
    a = load_tree(packaged)["posterior"].to_dataset()
    b = load_tree(got)["posterior"].to_dataset()
    same = set(a.data_vars) == set(b.data_vars) and all(
        a[v].shape == b[v].shape and bool(np.all(equal_mask(a[v].values, b[v].values))) for v in a.data_vars)
    if same:
        return Row(file, "draws", "posterior draws bit-identical", f"{len(a.data_vars)} variable(s)", "identical",
                   "bit-identical", "PASS")
    return Row(file, "draws", "posterior draws bit-identical", f"{len(a.data_vars)} variable(s)", "differ",
               "shown", "INFO", "the draws differ (another platform or library build); the posterior means and "
               "every MCMC-derived record are held to their stated tolerances instead")


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
        got_text = f"worst {worst}: {new[worst]['mean']:.6g} (diff {short(d)})"
        note = "" if not failed else (f"{len(failed)} of {len(keys)} element(s) outside tolerance, worst {worst}: "
                                      f"packaged {num(w['mean'])}, re-run {num(new[worst]['mean'])}, "
                                      f"|diff| {short(abs(d))} > tolerance {short(w['tolerance'])}")
        rows.append(Row(file, var, "posterior mean within 3*sqrt(2) x MCSE",
                        f"{worst}: {w['mean']:.6g}" if len(keys) > 1 else f"{w['mean']:.6g}", got_text,
                        f"<= {short(w['tolerance'])}" if w["tolerance"] > 0 else "identical (constant)",
                        "FAIL" if failed else "PASS", note))
    return rows


def compare_records(stated: dict, got: list[dict], file: str = RECORDS) -> list[Row]:
    """Each record's value within its stated tolerance and its verdict unchanged."""
    recs = stated["records"]
    new = keyed(got)
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
            same_value = s["rule"] == "verdict_only" or (diff <= tol if tol > 0 else float(v1) == float(v0))
        same_verdict = s["passed"] == n.get("passed")
        tol_text = {"identical": "identical", "verdict_only": "verdict only"}.get(s["rule"], f"<= {short(tol)} ({s['rule']})")
        notes = []
        if not same_value:
            notes.append(f"value {num(v1)} vs packaged {num(v0)}"
                         + (f": |diff| {short(diff)} exceeds {tol_text}" if diff is not None else ""))
        if not same_verdict:
            notes.append(f"verdict changed: {verdict_word(s['passed'])} -> {verdict_word(n.get('passed'))}")
        rows.append(Row(file, key, "value and verdict", f"{num(v0)} ({verdict_word(s['passed'])})",
                        f"{num(v1)} ({verdict_word(n.get('passed'))})", tol_text,
                        "PASS" if same_value and same_verdict else "FAIL", "; ".join(notes)))
    return rows


def verdict_word(p) -> str:
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
                    rows.append(same("run.json", f"hashes.{k}[{name}]", "input SHA-256", va[name], vb.get(name)))
                else:  # same bytes read from another path (file sources are named by absolute path)
                    rows.append(Row("run.json", f"hashes.{k}[{name}]", "input SHA-256", clip(va[name], 24),
                                    "identical (other path)", "identical", "PASS"))
            for name in sorted(set(vb) - set(va)):
                if vb[name] not in va.values():
                    rows.append(same("run.json", f"hashes.{k}[{name}]", "input SHA-256", None, vb[name]))
        else:
            rows.append(same("run.json", f"hashes.{k}", "input SHA-256", va, vb))
    rows.append(same("run.json", "seeds", "seeds", json.dumps(expected.get("seeds"), sort_keys=True),
                      json.dumps(got.get("seeds"), sort_keys=True)))
    va, vb = expected.get("versions") or {}, got.get("versions") or {}
    diff = [f"{k} {va.get(k)} -> {vb.get(k)}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
    rows.append(Row("run.json", "versions", "package versions of the run", f"{len(va)} package(s)",
                    "identical" if not diff else f"{len(diff)} differ", "shown", "INFO", "; ".join(diff)))
    ca, cb = expected.get("git_commit"), got.get("git_commit")
    rows.append(Row("run.json", "git_commit", "code version", str(ca), "identical" if ca == cb else str(cb),
                    "shown", "INFO", "" if ca == cb else "the re-run used different code"))
    return rows


def same(file: str, item: str, check: str, a, b) -> Row:
    return Row(file, item, check, clip(str(a), 24), "identical" if a == b else clip(str(b), 24),
               "identical", "PASS" if a == b else "FAIL", "" if a == b else f"packaged {a}, re-run {b}")
