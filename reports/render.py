"""Credibility and simulation reports: Jinja2 templates → self-contained HTML → PDF.

The credibility report (ICH M15 Model Analysis Report, ASME V&V 40 factors, FDA 2023
evidence categories) renders an assessment dict (``validation.assessment.assess``) and
the evidence records it cites (``EvidenceRecord.to_dict()``), nothing else: every number
in it is a record's value and links to that record in the appendix, where its MLflow run
id and artifact SHA-256 are shown (DESIGN.md, "Evidence is a record").

Output folder: ``<name>.html`` with its CSS inlined, ``<name>.pdf`` (WeasyPrint), and
``figures/`` holding copies of the images, linked relatively, so the folder can be
zipped and opened anywhere. Templates load nothing from the network.

Figures for the credibility report: ``figures`` maps a name to a local image file. A
record shows the image whose name is, first match wins, (1) the record key
``"<sub_model>/<check>/<metric>"``, (2) its ``artifact`` path inside the MLflow run (e.g.
``"figures/balance.png"``), or (3) that artifact's file name (``"balance.png"``). An image
cited by a record whose artifact is an image is hashed, and a visible warning is shown
when the hash differs from the record's ``artifact_sha256``. Images matching no record
appear as supplementary figures (Appendix E).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

from insilico.common.files import sha256_file
from insilico.common.jsonable import dumps, lenient
from insilico.common.resources import TEMPLATES as TEMPLATES_PACKAGE
from insilico.common.resources import data_dir

TEMPLATES = data_dir(TEMPLATES_PACKAGE)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
BLANK = "— to be completed by a person —"
LEVELS = ("met", "partly met", "not met", "no evidence", "not assessed")
SEPARATE_GROUPS = {"Calibration": "calibration", "Release": "release"}  # kept out of the V&V 40 tables


# ----------------------------------------------------------------------------- helpers

def fmt_number(value: Any) -> str:
    """A number as a reader wants it: 4 significant digits, integers without '.0', '—' for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def record_anchor(key: str) -> str:
    """HTML id of a record in the appendix: ``record-`` + the key with '/' and spaces as '--' / '-'."""
    return "record-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", key.replace("/", "--"))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _humanize(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _css_width(path: Path) -> int | None:
    """Width in CSS px (1/96 in) at which a raster image shows at its printed size (its dpi).

    A 6.4 in figure saved at 150 dpi is 960 px wide but should print 6.4 in wide; without
    this, browsers and WeasyPrint assume 96 dpi and show it 1.6 times too large.
    """
    if path.suffix.lower() == ".svg":
        return None
    from PIL import Image

    with Image.open(path) as im:
        dpi = im.info.get("dpi", (96, 96))[0] or 96
        return round(im.width * 96 / float(dpi))


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = fmt_number
    env.filters["anchor"] = record_anchor
    env.filters["humanize"] = _humanize
    env.filters["slug"] = _slug
    env.globals["BLANK"] = BLANK
    return env


def _css():
    from markupsafe import Markup

    return Markup((TEMPLATES / "report.css").read_text())


def _require(d: Any, keys: list[str], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")


class _Figures:
    """Numbers images in reading order; copies them into ``out_dir/figures`` on :meth:`commit`.

    Copying waits until the whole context is built, so bad input leaves no files behind.
    """

    def __init__(self, figures: dict[str, str | Path] | None, out_dir: Path):
        self.sources: dict[str, Path] = {}
        for name, path in (figures or {}).items():
            p = Path(path)
            if not p.is_file():
                raise ValueError(f"figures[{name!r}]: no such file {p}")
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"figures[{name!r}]: {p.name} is not an image ({', '.join(IMAGE_SUFFIXES)})")
            self.sources[str(name)] = p
        self.dir = out_dir / "figures"
        self.used: set[str] = set()
        self._placed: dict[Path, dict] = {}
        self._names: set[str] = set()

    def lookup(self, rec: dict) -> str | None:
        """The mapping name that holds this record's image (see the module docstring)."""
        candidates = [rec["key"]]
        if rec["artifact"]:
            candidates += [rec["artifact"], Path(rec["artifact"]).name]
        return next((c for c in candidates if c in self.sources), None)

    def place(self, name: str) -> dict:
        """Number (once) the image under ``name`` and fix its file name in figures/."""
        self.used.add(name)
        src = self.sources[name].resolve()
        if src not in self._placed:
            stem, suffix = src.stem, src.suffix.lower()
            target = f"{stem}{suffix}"
            i = 2
            while target in self._names:
                target, i = f"{stem}-{i}{suffix}", i + 1
            self._names.add(target)
            n = len(self._placed) + 1
            self._placed[src] = {"src": f"figures/{target}", "number": n, "id": f"figure-{n}",
                                 "sha256": sha256_file(src), "name": name, "width": _css_width(src)}
        return self._placed[src]

    def commit(self) -> Path:
        """Copy the placed images (byte for byte: their SHA-256 stays the one shown)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for src, fig in self._placed.items():
            shutil.copyfile(src, self.dir.parent / fig["src"])
        return self.dir


# ----------------------------------------------------------------------------- credibility

#: what every evidence record dict carries (``EvidenceRecord.to_dict()`` of insilico.validation.evidence)
RECORD_FIELDS = ("key", "factor", "sub_model", "check", "metric", "value", "threshold_text", "passed", "category")


def _record_view(d: dict, i: int) -> dict:
    if not isinstance(d, dict):
        raise ValueError(f"records[{i}]: expected a dict (EvidenceRecord.to_dict()), got {type(d).__name__}")
    missing = [k for k in RECORD_FIELDS if k not in d]
    if missing:
        raise ValueError(f"records[{i}]: not an evidence record (missing {', '.join(missing)})")
    verdict = {True: "pass", False: "fail", None: "informative"}[d["passed"]]
    detail = d.get("detail") or {}
    return {"key": d["key"], "anchor": record_anchor(d["key"]), "factor": d["factor"], "sub_model": d["sub_model"],
            "check": d["check"], "metric": d["metric"], "value": d["value"], "threshold": d["threshold_text"],
            "passed": d["passed"], "verdict": verdict, "category": d["category"],
            "description": d.get("description", ""), "artifact": d.get("artifact"),
            "artifact_sha256": d.get("artifact_sha256"), "run_id": d.get("run_id"),
            "detail": dumps(detail, indent=None, strict=False, default=lenient, sort_keys=True) if detail else "",
            "figure": None, "hash_ok": None, "cited_by": []}


def _credibility_context(assessment: dict, records: list[dict], figs: _Figures) -> dict:
    _require(assessment, ["plan", "sub_models", "overall"], "assessment")
    plan = assessment["plan"]
    _require(plan, ["title", "question_of_interest", "context_of_use", "model_influence", "decision_consequence",
                    "model_impact", "model_risk", "sha256", "frozen_at", "text"], "assessment['plan']")
    for k in ("model_influence", "decision_consequence", "model_impact", "model_risk"):
        _require(plan[k], ["level"] + (["label"] if k == "model_risk" else []), f"assessment['plan'][{k!r}]")
    _require(assessment["overall"], ["adequate", "summary"], "assessment['overall']")
    if not isinstance(records, list):
        raise ValueError(f"records: expected a list of record dicts, got {type(records).__name__}")

    # optional fields get explicit defaults: the templates use StrictUndefined
    plan = {"name": "", "frozen_run_id": None, **plan,
            "model_risk": {"rule": "", **plan["model_risk"]},
            **{k: {"justification": "", **plan[k]} for k in ("model_influence", "decision_consequence", "model_impact")}}
    recs = [_record_view(d, i) for i, d in enumerate(records)]
    by_key: dict[str, dict] = {}
    for r in recs:
        if r["key"] in by_key:
            raise ValueError(f"records: duplicate record key {r['key']!r} (sub_model/check/metric must be unique)")
        by_key[r["key"]] = r

    def need(key: str, where: str) -> dict:
        if key not in by_key:
            raise ValueError(f"{where} cites record {key!r}, which is not among the records")
        return by_key[key]

    sub_models, factor_rows, goals = [], [], []
    counts = dict.fromkeys(("adequate", "not_met", "no_evidence", "not_assessed"), 0)
    for si, sm in enumerate(assessment["sub_models"]):
        _require(sm, ["name", "factors"], f"assessment['sub_models'][{si}]")
        title = sm.get("title") or _humanize(sm["name"])
        parts: dict[str, list] = {"vv40": [], "calibration": [], "release": [], "rows": []}
        not_assessed = []
        for fi, f in enumerate(sm["factors"]):
            where = f"assessment['sub_models'][{si}]['factors'][{fi}]"
            _require(f, ["factor", "level"], where)
            if f["level"] not in LEVELS:
                raise ValueError(f"{where}['level']: {f['level']!r} is not one of {LEVELS}")
            if f["level"] == "not assessed":
                not_assessed.append(f["factor"])
                counts["not_assessed"] += 1
                continue
            counts[{"met": "adequate", "no evidence": "no_evidence"}.get(f["level"], "not_met")] += 1
            anchor = f"factor-{_slug(sm['name'])}-{_slug(f['factor'])}"
            evidence = [need(k, where) for k in f.get("records", [])]
            fgoals = []
            for g in f.get("goals", []):
                rec = need(g["record"], where) if g.get("record") else None
                fgoals.append({"metric": g["metric"], "threshold": g["threshold"], "record": rec})
                goals.append({"sub_model": title, "factor": f["factor"], "factor_anchor": anchor, **fgoals[-1]})
            for r in evidence:
                r["cited_by"].append({"text": f"{title} — {f['factor']}", "anchor": anchor})
            figures = []
            for r in evidence:
                name = figs.lookup(r)
                if name is None:
                    continue
                fig = figs.place(name)
                r["figure"] = fig
                if r["artifact"] and Path(r["artifact"]).suffix.lower() in IMAGE_SUFFIXES and r["artifact_sha256"]:
                    r["hash_ok"] = fig["sha256"] == r["artifact_sha256"]
                if all(x["fig"]["src"] != fig["src"] for x in figures):
                    figures.append({"fig": fig, "records": []})
                next(x for x in figures if x["fig"]["src"] == fig["src"])["records"].append(r)
            row = {"factor": f["factor"], "group": f.get("group", ""), "level": f["level"],
                   "adequate": f.get("adequate"), "goals": fgoals, "evidence": evidence,
                   "achieved": f.get("achieved", ""), "gaps": f.get("gaps", []), "figures": figures,
                   "anchor": anchor, "sub_model": title}
            parts[SEPARATE_GROUPS.get(row["group"], "vv40")].append(row)
            parts["rows"].append(row)
            factor_rows.append(row)
        sub_models.append({"name": sm["name"], "title": title, "description": sm.get("description", ""),
                           "adequate": sm.get("adequate"), "not_assessed": not_assessed, **parts})
    counts["assessed"] = counts["adequate"] + counts["not_met"] + counts["no_evidence"]

    categories = []
    given = assessment.get("categories", {}) or {}
    order = list(assessment.get("category_order") or given)
    for c in order + [c for c in given if c not in order]:
        categories.append({"name": c, "records": [need(k, f"assessment['categories'][{c!r}]")
                                                  for k in given.get(c, [])]})

    judgements = []
    for k, v in (assessment.get("judgements") or {}).items():
        if v is not None:
            _require(v, ["text", "by", "at"], f"assessment['judgements'][{k!r}]")
        judgements.append({"key": k, "title": _humanize(k), "value": v, "anchor": f"judgement-{_slug(k)}"})

    # checks in reading order: sub-models as in the assessment, checks by first appearance
    titles = {sm["name"]: sm["title"] for sm in sub_models}
    order = {name: i for i, name in enumerate(titles)}
    checks: dict[tuple, dict] = {}
    for r in sorted(recs, key=lambda r: order.get(r["sub_model"], len(order))):
        c = checks.setdefault((r["sub_model"], r["check"], r["run_id"]), {
            "sub_model": titles.get(r["sub_model"], _humanize(r["sub_model"])), "check": r["check"],
            "run_id": r["run_id"], "categories": [], "records": []})
        c["records"].append(r)
        if r["category"] not in c["categories"]:
            c["categories"].append(r["category"])

    supplementary = [figs.place(n) for n in figs.sources if n not in figs.used]
    data = [dict({"ids_sha256": None, "rows": None}, **d) for d in assessment.get("data", [])]
    comparator = [r for r in recs if r["metric"] in ("comparator_overlap", "comparator_size",
                                                      "comparator_followup_ratio")]
    return {
        "plan": plan, "data": data, "sub_models": sub_models, "factors": factor_rows, "goals": goals,
        "counts": counts, "overall": {"gaps": [], **assessment["overall"]}, "records": recs,
        "informative": [r for r in recs if r["passed"] is None],
        "categories": categories, "deviations": assessment.get("deviations", []) or [],
        "judgements": [j for j in judgements if j["key"] != "reviewer_signoff"],
        "signoff": next((j for j in judgements if j["key"] == "reviewer_signoff"), None),
        "versions": assessment.get("versions", {}) or {}, "run_id": assessment.get("run_id"),
        "created_at": assessment.get("created_at"), "supplementary": supplementary,
        "comparator": comparator, "checks": list(checks.values()), "titles": titles,
        "hash_mismatches": [r for r in recs if r["hash_ok"] is False],
    }


def render_credibility(assessment: dict, records: list[dict], out_dir: str | Path,
                       figures: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write ``credibility.html``, ``credibility.pdf`` and ``figures/`` into ``out_dir``.

    ``assessment``: the dict of ``validation.assessment.assess``; ``records``: the
    ``EvidenceRecord.to_dict()`` dicts it cites (every cited key must be present);
    ``figures``: images by record key, artifact path or artifact file name (module
    docstring). Returns ``{"html", "pdf", "figures"}`` paths.
    """
    out_dir = Path(out_dir)
    figs = _Figures(figures, out_dir)
    ctx = _credibility_context(assessment, records, figs)
    return _write_report("credibility", ctx, figs, out_dir)


# ----------------------------------------------------------------------------- simulation

OC_LABELS = {
    "rejection_rate": "Pr(reject)", "bias": "bias", "rmse": "RMSE", "coverage": "coverage",
    "mean_width": "interval width", "expected_n": "E[N]", "expected_events": "E[events]",
    "early_stop": "Pr(early stop)", "familywise_rejection": "FWER", "prior_ess": "prior ESS",
}
OC_ORDER = list(OC_LABELS)


def _simulation_context(context: dict, figs: _Figures) -> dict:
    _require(context, ["title", "design", "estimand", "scenarios", "oc", "reproducibility"], "context")
    _require(context["design"], ["name", "sha256"], "context['design']")
    _require(context["reproducibility"], ["seed", "spec_sha256", "replicates"], "context['reproducibility']")
    oc = context["oc"]
    if not isinstance(oc, list) or not oc:
        raise ValueError("context['oc']: expected a non-empty list of rows (oc_table(...).reset_index() records)")
    for i, row in enumerate(oc):
        _require(row, ["scenario", "analysis", "n_replicates"], f"context['oc'][{i}]")
    names = {k[:-5] for row in oc for k in row if k.endswith("_mcse") and k[:-5] in row}
    metrics = [m for m in OC_ORDER if m in names] + sorted(names - set(OC_ORDER))
    if "rejection_rate" not in metrics:
        raise ValueError("context['oc']: rows need rejection_rate and rejection_rate_mcse")
    kinds = {s["name"]: s.get("kind", "") for s in context["scenarios"]}
    targets = {s["name"] for s in context["scenarios"] if s.get("target")}
    unknown = sorted({row["scenario"] for row in oc} - set(kinds))
    if unknown:
        raise ValueError(f"context['oc']: scenario(s) {unknown} are not in context['scenarios']")

    # headline numbers per analysis: the worst type I error (null and drift scenarios) and
    # the smallest power, each with its MCSE and replicates, straight from the OC rows
    headline = []
    for analysis in dict.fromkeys(row["analysis"] for row in oc):
        rows = [r for r in oc if r["analysis"] == analysis]
        pick = {}
        for label, kind, worst in (("type I error (null)", "null", max), ("type I error (drift)", "drift", max),
                                   ("power", "alternative", min)):
            cand = [r for r in rows if kinds[r["scenario"]] == kind]
            if kind == "alternative" and any(r["scenario"] in targets for r in cand):
                cand = [r for r in cand if r["scenario"] in targets]
            if cand:
                r = worst(cand, key=lambda r: r["rejection_rate"])
                pick[label] = {"value": r["rejection_rate"], "mcse": r["rejection_rate_mcse"],
                               "scenario": r["scenario"], "n": r["n_replicates"]}
        headline.append({"analysis": analysis, "cells": pick})
    headline_cols = [c for c in ("type I error (null)", "type I error (drift)", "power")
                     if any(c in h["cells"] for h in headline)]

    savings = []
    for i, s in enumerate(context.get("sample_size", []) or []):
        _require(s, ["analysis", "n", "n_unadjusted"], f"context['sample_size'][{i}]")
        saved = s["n_unadjusted"] - s["n"]
        savings.append({**s, "saved": saved, "saved_pct": 100.0 * saved / s["n_unadjusted"]})

    placed = {}
    for key in ("power", "type_i_drift"):
        placed[key] = figs.place(key) if key in figs.sources else None
    extra = [dict(figs.place(n), caption=n) for n in figs.sources if n not in placed]
    return {
        "title": context["title"], "design": context["design"], "estimand": context["estimand"],
        "success_criterion": context.get("success_criterion", ""), "scenarios": context["scenarios"],
        "kinds": kinds, "oc": oc, "metrics": metrics, "labels": OC_LABELS, "headline": headline,
        "headline_cols": headline_cols, "prior_ess": context.get("prior_ess", []) or [],
        "sample_size": savings, "thresholds": context.get("thresholds", []) or [],
        "reproducibility": context["reproducibility"], "versions": context.get("versions", {}) or {},
        "figures": placed, "extra_figures": extra,
        "judgements": [{"key": k, "title": _humanize(k), "value": v, "anchor": f"judgement-{_slug(k)}"}
                       for k, v in (context.get("judgements") or {}).items()],
    }


def render_simulation(context: dict, out_dir: str | Path, figures: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write ``simulation.html``, ``simulation.pdf`` and ``figures/`` into ``out_dir``.

    ``context`` keys: ``title``; ``design`` {name, sha256, title?, description?, table?
    (parameter → value)}; ``estimand`` {population, treatment, variable,
    intercurrent_events, summary_measure} (ICH E9(R1)); ``success_criterion``;
    ``scenarios`` [{name, kind: null|alternative|drift, true_effect, drift, description,
    target?: true for the design alternative(s) the headline power is taken from}];
    ``oc``: rows of ``trials.oc.oc_table(oc).reset_index()`` (scenario, analysis, each OC
    with ``<name>_mcse``, n_replicates); ``prior_ess`` [{analysis, prior, ess, method,
    source}]; ``sample_size`` [{analysis, n, n_unadjusted, basis}]; ``thresholds``
    [{analysis, criterion, threshold, threshold_mcse, target_type_i_error, type_i_error,
    type_i_error_mcse, replicates}]; ``reproducibility`` {seed, spec_sha256, replicates,
    chunk_size, run_id, git_commit, created_at}; ``versions``; optional ``judgements``
    (None = blank box). ``figures``: ``"power"`` and ``"type_i_drift"`` go to their
    sections, any other name to "Further figures".
    """
    out_dir = Path(out_dir)
    figs = _Figures(figures, out_dir)
    ctx = _simulation_context(context, figs)
    return _write_report("simulation", ctx, figs, out_dir)


def render_qualification(context: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``qualification.html`` and ``.pdf`` into ``out_dir`` (`insilico.stages.qualify`).

    ``context`` keys: ``version``, ``platform`` {platform, python}, ``run_id``, ``created_at``,
    ``passed``, ``summary``, ``phases`` [{name, title, purpose, rows (Row dicts), total, passed,
    failed, info}], ``versions``.
    """
    _require(context, ["version", "platform", "created_at", "passed", "summary", "phases", "versions"],
             "qualification context")
    out_dir = Path(out_dir)
    return _write_report("qualification", {"run_id": None, **context}, _Figures(None, out_dir), out_dir)


def _write_report(name: str, ctx: dict, figs, out_dir: Path) -> dict[str, Path]:
    """Render ``<name>.html.j2`` into ``<name>.html``, copy its figures, print ``<name>.pdf``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html = _env().get_template(f"{name}.html.j2").render(css=_css(), **ctx)
    figs.commit()
    html_path = out_dir / f"{name}.html"
    html_path.write_text(html, encoding="utf-8")
    return {"html": html_path, "pdf": html_to_pdf(html_path, out_dir / f"{name}.pdf"), "figures": figs.dir}


def html_to_pdf(html_path: str | Path, pdf_path: str | Path) -> Path:
    """Print an HTML file to PDF with WeasyPrint (print CSS: A4, page numbers, no split rows).

    Relative links (figures/) resolve against the HTML file's folder; nothing is fetched
    from the network.
    """
    import weasyprint

    html_path, pdf_path = Path(html_path), Path(pdf_path)
    if not html_path.is_file():
        raise ValueError(f"html_path: no such file {html_path}")
    # only file: and data: URLs: a report never fetches from the network
    fetcher = weasyprint.URLFetcher(allowed_protocols=("file", "data"))
    weasyprint.HTML(filename=str(html_path), url_fetcher=fetcher).write_pdf(str(pdf_path))
    return pdf_path


__all__ = ["render_credibility", "render_simulation", "html_to_pdf", "fmt_number", "record_anchor"]
