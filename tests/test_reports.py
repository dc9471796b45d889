"""Reports: figures (numbers drawn, style), credibility and simulation reports rendered from
fixtures, checked as text, in headless Chromium (console errors, images that fail to load,
a screenshot) and as PDF pages (pdftoppm / pdfinfo / pdftotext from poppler-utils).

Chromium and poppler-utils are system tools: `scripts/system-deps` installs them (CI calls
it). Tests that need them fail, not skip, when they are missing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import browse, tool

from insilico.reports import figures as F
from insilico.reports.render import (
    BLANK,
    fmt_number,
    record_anchor,
    render_credibility,
    render_simulation,
)
from insilico.validation.evidence import EvidenceRecord

DATA = Path(__file__).parent / "data"
OKABE_ITO = {c.lower() for c in F.PALETTE}


def _load(name: str):
    with (DATA / name).open(encoding="utf-8") as f:
        return json.load(f)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- figures

def test_sbc_band_is_the_binomial_interval_computed_by_hand():
    # n = 100 replicates, L = 99 draws, 20 bins: each bin holds 5 of the 100 ranks, p = 0.05.
    band = F.sbc_rank_band(100, 99, 20, level=0.99)
    p, n = 0.05, 100
    cdf = np.cumsum([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    lower = int(np.argmax(cdf >= 0.005))  # binomial quantile: smallest k with F(k) >= q
    upper = int(np.argmax(cdf >= 0.995))
    assert lower == 0 and upper == 11  # 0.95**100 = 0.0059 >= 0.005; F(10) = 0.9885, F(11) = 0.9957
    np.testing.assert_array_equal(band["lower"], lower)
    np.testing.assert_array_equal(band["upper"], upper)
    np.testing.assert_allclose(band["expected"], 5.0, rtol=0, atol=1e-12)
    # 10 possible ranks in 3 bins: floor(r * 3 / 10) puts ranks 0-3 | 4-6 | 7-9 in the bins
    uneven = F.sbc_rank_band(50, 9, 3)
    assert uneven["width"].tolist() == [4, 3, 3]
    np.testing.assert_allclose(uneven["expected"], [20.0, 15.0, 15.0], rtol=0, atol=1e-12)


class _Captured:
    """Intercepts reports.figures._save to inspect each figure before it is written."""

    def __init__(self, monkeypatch):
        self.snapshots: list[dict] = []
        original = F._save

        def spy(fig, out, **kw):
            self.snapshots.append(_describe(fig))
            return original(fig, out, **kw)

        monkeypatch.setattr(F, "_save", spy)


def _describe(fig) -> dict:
    axes = [a for a in fig.axes if a.get_visible()]
    colors = set()
    for ax in axes:
        for line in ax.get_lines():
            colors.add(_hex(line.get_color()))
    return {"title": [a.get_title() for a in axes] + [fig.get_suptitle()],
            "xlabel": [a.get_xlabel() for a in axes], "ylabel": [a.get_ylabel() for a in axes],
            "line_colors": colors, "axes": axes}


def _hex(c) -> str:
    import matplotlib.colors as mc

    return mc.to_hex(c).lower()


@pytest.fixture(scope="module")
def figure_files(tmp_path_factory) -> dict[str, Path]:
    """One PNG per figure function, from fixed data (seeded)."""
    from scipy import stats

    out = tmp_path_factory.mktemp("figures")
    rng = np.random.default_rng(20261123)
    grid = np.linspace(0, 5, 60)
    km = np.exp(-0.2 * grid)
    files = {
        "km": F.km_overlay(grid, km, (km - 0.05, km + 0.05), km * 0.98, out / "km_overlay.png"),
        "balance": F.love_plot(pd.DataFrame({"smd": [0.02, -0.08, 0.14, 0.05]},
                                            index=["age", "size", "grade=3", "nodes"]), out / "balance.png"),
    }
    pred = np.linspace(0.1, 0.9, 8)
    files["calibration"] = F.calibration_plot(
        pd.DataFrame({"predicted": pred, "observed": pred + rng.normal(0, 0.02, 8), "n": 50}), out / "calibration.png")
    q = (np.arange(1, 201) - 0.5) / 200
    t = stats.chi2.ppf(q, 4)
    files["qq"] = F.mahalanobis_qq(t, np.sort(stats.chi2.rvs(4, size=200, random_state=1)), out / "mahalanobis_qq.png",
                                   reference=np.sort(stats.chi2.rvs(4, size=200, random_state=2)))
    ranks = pd.DataFrame({name: rng.integers(0, 100, 200) for name in ["mu", "sigma", "beta", "shape", "rho"]})
    files["sbc"] = F.rank_histograms(ranks, 99, 20, out / "sbc_ranks.png")
    d = rng.normal(0.3, 2.0, 150)
    files["bland_altman"] = F.bland_altman(rng.normal(50, 8, 150), d, float(d.mean()),
                                           (float(d.mean() - 1.96 * d.std()), float(d.mean() + 1.96 * d.std())),
                                           out / "bland_altman.png")
    sim = _load("simulation_example.json")
    oc = pd.DataFrame(sim["oc"])
    scen = pd.DataFrame(sim["scenarios"]).set_index("name")
    oc["kind"], oc["drift"] = oc["scenario"].map(scen["kind"]), oc["scenario"].map(scen["drift"])
    alt = oc[oc["kind"].isin(["null", "alternative"])].assign(reduction=lambda x: -x["true_effect"])
    files["power"] = F.oc_curves(alt, "reduction", "rejection_rate", "analysis", out / "power.png", "power",
                                 hline=0.8, err="rejection_rate_mcse", xlabel="risk reduction")
    files["type_i_drift"] = F.oc_curves(oc[oc["kind"].isin(["null", "drift"])], "drift", "rejection_rate", "analysis",
                                        out / "type_i_drift.png", "type I error", hline=0.025,
                                        err="rejection_rate_mcse", hline_label="one-sided α = 0.025")
    return files


def test_every_figure_is_a_150_dpi_png_with_title_and_axis_labels(figure_files):
    from PIL import Image

    for name, path in figure_files.items():
        with Image.open(path) as im:
            assert im.format == "PNG", name
            # matplotlib stores dpi in the pHYs chunk as pixels per metre: 150 dpi = 5906 px/m -> 150.01
            assert im.info["dpi"][0] == pytest.approx(150, abs=0.05), name
    with Image.open(figure_files["sbc"]) as im:
        # no bbox_inches="tight": the size is the figure size x 150 exactly.
        # 5 parameters in 4 columns -> 2 rows: (2.3 * 4 + 0.4) x (1.9 * 2 + 0.8) inches
        assert im.size == (round(9.6 * 150), round(4.6 * 150))


def test_figures_label_axes_and_use_the_palette(monkeypatch, tmp_path):
    cap = _Captured(monkeypatch)
    df = pd.DataFrame({"x": [0, 1, 2] * 3, "y": [0.1, 0.5, 0.8] * 3, "se": 0.01, "a": list("AAABBBCCC")})
    F.oc_curves(df, "x", "y", "a", tmp_path / "oc.png", "power", hline=0.8, err="se")
    F.calibration_plot(pd.DataFrame({"predicted": [0.2, 0.5], "observed": [0.25, 0.45]}), tmp_path / "cal.png")
    F.bland_altman(np.array([1.0, 2.0, 3.0]), np.array([0.1, -0.1, 0.0]), 0.0, (-0.2, 0.2), tmp_path / "ba.png")
    F.mahalanobis_qq(np.array([1.0, 2.0]), np.array([1.1, 2.2]), tmp_path / "qq.png", reference=(np.array([0.5, 1.5]),
                                                                                                  np.array([1.5, 2.5])))
    F.rank_histograms(pd.DataFrame({"a": [0, 5, 9], "b": [1, 2, 3]}), 9, 5, tmp_path / "r.png")
    assert len(cap.snapshots) == 5
    for snap in cap.snapshots:
        assert any(snap["title"]) and any(snap["xlabel"]) and any(snap["ylabel"])
    # oc_curves: one line per hue level in Okabe-Ito order (blue, vermillion, bluish green)
    oc_lines = {c.get_label(): _hex(c.lines[0].get_color()) for c in cap.snapshots[0]["axes"][0].containers}
    assert oc_lines == dict(zip("ABC", (c.lower() for c in F.PALETTE[:3]), strict=True))
    for snap in cap.snapshots:
        assert snap["line_colors"] <= OKABE_ITO | {_hex(F.GUIDE), "#000000"}


def test_oc_curve_error_bars_span_1_96_mcse(monkeypatch, tmp_path):
    cap = _Captured(monkeypatch)
    df = pd.DataFrame({"x": [0.0, 1.0], "y": [0.2, 0.6], "se": [0.01, 0.02], "a": ["A", "A"]})
    F.oc_curves(df, "x", "y", "a", tmp_path / "oc.png", "power", err="se")
    container = cap.snapshots[0]["axes"][0].containers[0]
    segments = container.lines[2][0].get_segments()
    half = sorted((seg[1][1] - seg[0][1]) / 2 for seg in segments)
    np.testing.assert_allclose(half, [1.96 * 0.01, 1.96 * 0.02], rtol=1e-12)


@pytest.mark.parametrize(("call", "match"), [
    (lambda p: F.calibration_plot(pd.DataFrame({"predicted": [0.1]}), p), "observed"),
    (lambda p: F.calibration_plot(pd.DataFrame({"predicted": [np.nan], "observed": [0.1]}), p), "NaN"),
    (lambda p: F.mahalanobis_qq(np.arange(3.0), np.arange(4.0), p), "equal length"),
    (lambda p: F.rank_histograms(pd.DataFrame({"a": [0, 10]}), 9, 5, p), "0..L=9"),
    (lambda p: F.rank_histograms(pd.DataFrame({"a": [0, 1]}), 9, 11, p), "bins=11"),
    (lambda p: F.oc_curves(pd.DataFrame({"x": [1], "y": [1]}), "x", "y", "arm", p, "power"), "arm"),
    (lambda p: F.bland_altman(np.ones(3), np.ones(3), 0.0, (1.0, -1.0), p), "loa"),
])
def test_figures_reject_bad_input(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "f.png")


# ----------------------------------------------------------------------------- helpers

def test_number_format_and_record_anchor():
    assert fmt_number(0.141234) == "0.1412"
    assert fmt_number(812.0) == "812"
    assert fmt_number(0.00358) == "0.00358"
    assert fmt_number(None) == "—" and fmt_number(float("nan")) == "—"
    assert fmt_number(True) == "yes"
    assert record_anchor("virtual_patient_generation/mcmc/max_rhat") == "record-virtual_patient_generation--mcmc--max_rhat"


class _Page(HTMLParser):
    """Ids, internal links (with their text), images, and the text of the page."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.imgs, self.h2 = set(), [], [], []
        self.text_parts: list[str] = []
        self._link: list | None = None
        self._h2: list | None = None
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self._link = [a["href"][1:], ""]
        if tag == "img":
            self.imgs.append(a.get("src"))
        if tag == "h2":
            self._h2 = []

    def handle_endtag(self, tag):
        if tag == "a" and self._link is not None:
            self.links.append(tuple(self._link))
            self._link = None
        if tag == "h2" and self._h2 is not None:
            self.h2.append("".join(self._h2).strip())
            self._h2 = None

    def handle_data(self, data):
        self.text_parts.append(data)
        if self._link is not None:
            self._link[1] += data
        if self._h2 is not None:
            self._h2.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text_parts))


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


# ----------------------------------------------------------------------------- credibility

# The record whose figure is deliberately NOT the logged artifact (hash left as in the
# fixture): the report must flag it; every other image record gets its file's true hash.
MISMATCHED = "virtual_patient_generation/kaplan_meier/km_distance"


@pytest.fixture(scope="module")
def credibility(tmp_path_factory, figure_files):
    assessment = _load("assessment_example.json")
    records = _load("records_example.json")
    figures = {  # by artifact path, by artifact file name, and by record key (all three lookups)
        "figures/balance.png": figure_files["balance"],
        "figures/km_overlay.png": figure_files["km"],
        "sbc_ranks.png": figure_files["sbc"],
        "figures/calibration.png": figure_files["calibration"],
        "mahalanobis_qq.png": figure_files["qq"],
        "trial_decision_model/oc/power": figure_files["power"],
        "trial_decision_model/oc/type_i_error": figure_files["type_i_drift"],
        "bland_altman": figure_files["bland_altman"],  # cited by no record: supplementary
    }
    by_name = {Path(k).name: v for k, v in figures.items()}
    for r in records:
        key = f"{r['sub_model']}/{r['check']}/{r['metric']}"
        src = figures.get(key) or (by_name.get(Path(r["artifact"]).name) if r["artifact"] else None)
        if src is not None and key != MISMATCHED and not (r["artifact"] or "").endswith(".csv"):
            r["artifact_sha256"] = _sha256(src)
    out = tmp_path_factory.mktemp("credibility")
    log = _LogCapture("weasyprint")
    t0 = time.perf_counter()
    paths = render_credibility(assessment, records, out, figures)
    seconds = time.perf_counter() - t0
    log.close()
    html = paths["html"].read_text(encoding="utf-8")
    return {"paths": paths, "html": html, "page": _parse(html), "assessment": assessment, "records": records,
            "seconds": seconds, "log": log.records, "out": out}


class _LogCapture(logging.Handler):
    def __init__(self, name: str):
        super().__init__(logging.WARNING)
        self.records: list[str] = []
        self.logger = logging.getLogger(name)
        self.logger.addHandler(self)

    def emit(self, record):
        self.records.append(record.getMessage())

    def close(self):
        self.logger.removeHandler(self)
        super().close()


def test_credibility_sections_follow_ich_m15(credibility):
    h2 = credibility["page"].h2
    order = ["Executive summary", "Introduction", "Objectives", "Data and methods", "Results", "Discussion",
             "Conclusions", "Appendices"]
    found = [next(i for i, h in enumerate(h2) if name in h) for name in order]
    assert found == sorted(found)
    for sub in ("Assessment (ICH M15 Appendix 1)", "V&V 40 credibility factors", "Model calibration (kept apart",
                "Evidence by FDA 2023 category", "Deviations from the plan", "Frozen Model Analysis Plan",
                "Traceability matrix", "Evidence records", "Software versions"):
        assert sub in credibility["page"].text, sub


def test_credibility_executive_summary_holds_question_cou_risk_and_counts(credibility):
    page, plan = credibility["page"], credibility["assessment"]["plan"]
    summary = page.text[:page.text.index("Contents")]
    assert plan["question_of_interest"] in summary
    assert plan["context_of_use"] in summary
    assert "4 of 5 — moderate-high" in summary  # medium influence x high consequence: 2 + 3 - 1 = 4
    assert "not adequate for the context of use" in summary
    counts = {a["data-count"]: a for t, a in page.elements if "data-count" in a}
    # fixture, counted by hand: 8 factors met, 1 partly met (SMD), 1 without evidence, 2 not assessed
    got = {k: int(re.search(rf'data-count="{k}"><b>(\d+)</b>', credibility["html"]).group(1)) for k in counts}
    assert got == {"adequate": 8, "not-met": 1, "no-evidence": 1, "not-assessed": 2}


def test_credibility_factor_verdicts_and_their_evidence_links(credibility):
    html, page = credibility["html"], credibility["page"]
    rows = {a["id"]: a["data-level"] for t, a in page.elements if t == "tr" and "data-level" in a}
    for sm in credibility["assessment"]["sub_models"]:
        for f in sm["factors"]:
            anchor = f"factor-{re.sub(r'[^a-z0-9]+', '-', sm['name'].lower()).strip('-')}-" \
                     f"{re.sub(r'[^a-z0-9]+', '-', f['factor'].lower()).strip('-')}"
            if f["level"] == "not assessed":
                assert anchor not in rows
                continue
            assert rows[anchor] == f["level"]
            row = re.search(rf'<tr id="{anchor}".*?</tr>', html, re.S).group(0)
            assert f"{f['level']}</span>" in row  # the verdict word, in its badge
            for key in f["records"]:  # each record's value links to the record
                rec = next(r for r in credibility["records"] if f"{r['sub_model']}/{r['check']}/{r['metric']}" == key)
                assert f'href="#{record_anchor(key)}" title="{key}">{fmt_number(rec["value"])}</a>' in row
    assert rows["factor-virtual-patient-generation-equivalency-of-input-parameters"] == "partly met"
    assert rows["factor-virtual-patient-generation-relevance-of-the-validation-activities-to-the-cou"] == "no evidence"


def test_credibility_every_internal_link_resolves_and_numbers_point_at_records(credibility):
    page = credibility["page"]
    missing = sorted({target for target, _ in page.links if target not in page.ids})
    assert missing == []
    record_links = [(t, text) for t, text in page.links if t.startswith("record-")]
    assert len(record_links) > 3 * len(credibility["records"])
    numeric = [text for _, text in record_links if re.fullmatch(r"-?[\d.]+(e-?\d+)?", text.strip())]
    assert numeric, "values must be links to their records"
    # every record has exactly one appendix entry, showing its run id and artifact hash
    for r in credibility["records"]:
        key = f"{r['sub_model']}/{r['check']}/{r['metric']}"
        block = re.search(rf'<article class="record" id="{record_anchor(key)}".*?</article>', credibility["html"],
                          re.S).group(0)
        assert r["run_id"] in block
        assert (r["artifact_sha256"] or "—") in block
    assert "8b1e7d2c9a0f4b6e8d3c5a7f9e1b2d44" in page.text  # the validation run id, from the fixture


def test_credibility_judgements_blank_or_signed(credibility):
    html = credibility["html"]
    blanks = re.findall(r'<div class="judgement blank" id="judgement-([a-z-]+)"', html)
    assert sorted(blanks) == ["adequacy-of-comparator", "reviewer-signoff"]
    assert html.count(BLANK) == 2
    filled = credibility["assessment"]["judgements"]["clinical_relevance_of_margins"]
    box = re.search(r'<div class="judgement" id="judgement-clinical-relevance-of-margins".*?</div>\s*</div>', html,
                    re.S).group(0)
    assert filled["text"] in box and filled["by"] in box and filled["at"] in box


def test_credibility_calibration_is_kept_apart_from_validation(credibility):
    html = credibility["html"]
    factors = html[html.index('id="factors"'):html.index('id="calibration"')]
    calibration = html[html.index('id="calibration"'):html.index('id="categories"')]
    key = "virtual_patient_generation/calibration/calibration_pi90_coverage"
    assert record_anchor(key) not in factors
    assert record_anchor(key) in calibration and "not validation" in calibration


def test_credibility_figures_are_local_numbered_and_hash_checked(credibility):
    page, out = credibility["page"], credibility["out"]
    assert len(page.imgs) == 8  # 7 cited by records (balance shared by 2 records) + 1 supplementary
    for src in page.imgs:
        assert src.startswith("figures/") and (out / src).is_file()
    assert not re.search(r'(src|href)="(https?:)?//', credibility["html"])  # nothing from the network
    warnings = re.findall(r"differs from the record's artifact_sha256", credibility["html"])
    assert len(warnings) == 1  # only the deliberately mismatched Kaplan-Meier figure
    km = re.search(r'<figure id="figure-\d+">(?:(?!</figure>).)*?km_distance.*?</figure>', credibility["html"], re.S)
    assert "differs from the record" in km.group(0)
    assert "Supplementary figures" in page.text
    # the frozen plan text is escaped, not interpreted (YAML '>-' must stay text)
    assert "question_of_interest: &gt;-" in credibility["html"]


def test_credibility_rejects_inconsistent_input(tmp_path):
    assessment, records = _load("assessment_example.json"), _load("records_example.json")
    bad = copy.deepcopy(assessment)
    del bad["plan"]["context_of_use"]
    with pytest.raises(ValueError, match="context_of_use"):
        render_credibility(bad, records, tmp_path)
    with pytest.raises(ValueError, match="not among the records"):
        render_credibility(assessment, records[1:], tmp_path)
    with pytest.raises(ValueError, match="duplicate record key"):
        render_credibility(assessment, records + records[:1], tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        render_credibility(assessment, records, tmp_path, {"x": tmp_path / "missing.png"})
    assert list(tmp_path.iterdir()) == []  # bad input never half-renders: no HTML, no figures/


def test_fixture_records_are_valid_evidence_records():
    for d in _load("records_example.json"):
        r = EvidenceRecord.from_dict(d)
        assert r.to_dict() == d


# ----------------------------------------------------------------------------- simulation

@pytest.fixture(scope="module")
def simulation(tmp_path_factory, figure_files):
    context = _load("simulation_example.json")
    out = tmp_path_factory.mktemp("simulation")
    t0 = time.perf_counter()
    paths = render_simulation(context, out, {"power": figure_files["power"],
                                             "type_i_drift": figure_files["type_i_drift"]})
    seconds = time.perf_counter() - t0
    html = paths["html"].read_text(encoding="utf-8")
    return {"paths": paths, "html": html, "page": _parse(html), "context": context, "seconds": seconds, "out": out}


def test_simulation_report_content(simulation):
    html, text, ctx = simulation["html"], simulation["page"].text, simulation["context"]
    for heading in ("Design and estimand", "Scenarios", "Operating characteristics", "Power and type I error",
                    "Prior effective sample size", "Sample-size savings", "Calibrated decision thresholds",
                    "Reproducibility"):
        assert heading in text, heading
    oc = re.search(r'<table class="compact oc" id="oc-table">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr class=\"kind-", oc)
    assert len(rows) == len(ctx["oc"]) == 24
    # every row shows its replicate count and each OC's MCSE (6 metrics x 24 rows)
    assert oc.count('<span class="mcse">±') == 6 * 24
    assert oc.count(">4000</td>") == 24
    headline = re.search(r'<table class="compact" id="headline">.*?</table>', html, re.S).group(0)
    borrowing = re.search(r"<b>borrowing</b>.*?</tr>", headline, re.S).group(0)
    # hand-picked from the fixture: the worst drift scenario (-0.06) and the flagged target
    assert "0.1524" in borrowing and "drift -0.06" in borrowing
    assert "0.8322" in borrowing and "target, R = 4000" in borrowing
    unadjusted = re.search(r"<b>unadjusted</b>.*?</tr>", headline, re.S).group(0)
    assert unadjusted.count("0.025 ") == 2  # no borrowing: type I error stays nominal under drift
    # savings vs unadjusted: 360 - 290 = 70 patients = 19.4%
    assert re.search(r"<td>borrowing</td><td class=\"num\">290</td><td class=\"num\">360</td>\s*"
                     r"<td class=\"num\">70</td><td class=\"num\">19.4%</td>", html)
    assert "38.6" in text and "0.9862" in text  # robust prior ESS, calibrated threshold
    assert str(ctx["reproducibility"]["seed"]) in text and ctx["reproducibility"]["spec_sha256"] in text
    assert ctx["versions"]["xarray"] in text
    assert html.count(BLANK) == 1  # reviewer sign-off owed
    assert len(simulation["page"].imgs) == 2


def test_simulation_rejects_bad_input(tmp_path):
    ctx = _load("simulation_example.json")
    bad = copy.deepcopy(ctx)
    bad["oc"][0]["scenario"] = "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        render_simulation(bad, tmp_path)
    bad = copy.deepcopy(ctx)
    del bad["reproducibility"]["seed"]
    with pytest.raises(ValueError, match="seed"):
        render_simulation(bad, tmp_path)


# ----------------------------------------------------------------------------- browser and PDF

@pytest.mark.parametrize("report", ["credibility", "simulation"])
def test_reports_open_cleanly_in_chromium(request, report, tmp_path):
    r = request.getfixturevalue(report)
    seen = browse(r["paths"]["html"], tmp_path)
    assert "broken-images" in seen["marks"], "the load event never fired in Chromium"
    assert seen["marks"]["probe-images"] == str(len(r["page"].imgs))
    assert seen["marks"]["broken-images"] == "0"
    assert seen["marks"]["probe-errors"] == "0"
    assert seen["console"] == []  # a static report logs nothing to the console
    shot = seen["screenshot"]
    assert shot.is_file() and shot.stat().st_size > 10_000


def _pdf_pages(pdf: Path, tmp: Path) -> list[np.ndarray]:
    from PIL import Image

    pdftoppm = tool("pdftoppm")
    subprocess.run([pdftoppm, "-r", "50", "-png", str(pdf), str(tmp / "page")], check=True, timeout=120)
    pages = []
    for png in sorted(tmp.glob("page-*.png")):
        with Image.open(png) as im:
            pages.append(np.asarray(im.convert("L")))
    return pages


@pytest.mark.parametrize(("report", "min_pages"), [("credibility", 12), ("simulation", 4)])
def test_pdf_is_a4_numbered_and_has_no_blank_page(request, report, min_pages, tmp_path):
    r = request.getfixturevalue(report)
    pdf = r["paths"]["pdf"]
    pages = _pdf_pages(pdf, tmp_path)
    assert len(pages) >= min_pages
    info = subprocess.run([tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Pages:\s+(\d+)", info).group(1) == str(len(pages))
    assert "(A4)" in info
    for i, px in enumerate(pages, start=1):
        h = px.shape[0]
        body = px[int(0.08 * h):int(0.92 * h)]  # without the running header and footer
        # A4 at 50 dpi is 413 x 585 px; a page holding only a short table (~3 lines) still
        # darkens > 0.5% of its body, an empty page none.
        assert (body < 200).mean() > 0.005, f"{report}.pdf page {i} is blank"
        text = subprocess.run([tool("pdftotext"), "-f", str(i), "-l", str(i), str(pdf), "-"],
                              capture_output=True, text=True, check=True).stdout
        assert f"Page {i} of {len(pages)}" in text


def test_render_leaves_a_self_contained_folder_quickly(credibility, simulation):
    assert credibility["log"] == []  # WeasyPrint loaded every image and understood all CSS it needs
    for r in (credibility, simulation):
        names = {p.name for p in r["paths"]["figures"].iterdir()}
        assert {Path(s).name for s in r["page"].imgs} == names
    # render budget on a CI core: WeasyPrint lays out ~20 A4 pages in ~5 s
    assert credibility["seconds"] < 30 and simulation["seconds"] < 15


def test_figures_leave_the_session_backend_alone(tmp_path):
    """Rendering a figure neither switches matplotlib's backend (a notebook keeps its inline
    figures) nor opens a pyplot figure."""
    import matplotlib

    before = matplotlib.get_backend()
    F.oc_curves(pd.DataFrame({"x": [0.0, 1.0], "y": [0.1, 0.8], "a": ["t", "t"], "e": [0.01, 0.02]}), "x", "y", "a",
                tmp_path / "c.png", "Pr(reject)", err="e")
    assert matplotlib.get_backend() == before
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
