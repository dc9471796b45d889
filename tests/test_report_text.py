"""Report text as `insilico reproduce` compares it (`insilico.reports.report_text`): run ids and
timestamps masked, every other character compared; digits masked too only when the re-run's
posterior legitimately differs. The slow end-to-end case (a report edited inside a real
package, its manifest entry recomputed) is in tests/test_pipeline.py."""

from __future__ import annotations

from insilico.reports.report_text import compare_reports, masked_text

PAGE = ("<html><head><style>p {{color: red}}</style><script>var t = 1;</script></head><body>"
        "<p>Assessment run <code>{run}</code> · created {time}</p>"
        "<table><tr><td>type I error</td><td>{value}</td></tr></table><p>{verdict}</p>"
        '<pre>{{"seconds_per_replicate": {wall}, "replicates": 10}}</pre></body></html>')


def _write(folder, run="a76b6bd7558f48e48743127e85747a11", time="2026-12-03T14:13:07+00:00", value="0.025",
           verdict="adequate", wall="3.41"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "credibility.html").write_text(PAGE.format(run=run, time=time, value=value, verdict=verdict, wall=wall))
    return folder


def _verdicts(rows):
    return [(r.file, r.verdict) for r in rows]


def test_run_ids_times_and_layout_whitespace_are_masked_and_nothing_else(tmp_path):
    text = masked_text(_write(tmp_path / "a") / "credibility.html")
    assert text == ('Assessmentrun<id>·created<time>typeIerror0.025adequate'  # no style, no script
                    '{"seconds_per_replicate":<seconds>,"replicates":10}')
    assert masked_text(tmp_path / "a" / "credibility.html", numbers=True) == \
        'Assessmentrun<id>·created<time>typeIerror#adequate{"seconds_per_replicate":<seconds>,"replicates":#}'


def test_a_timestamp_or_run_id_broken_across_lines_is_masked_whole(tmp_path):
    """A PDF breaks a line after a hyphen of a timestamp, at a place that moves with the width
    of the run id before it: seen as a false FAIL of a qualification's simulation.pdf."""
    broken = masked_text(_write(tmp_path / "a", run="a76b6bd7558f48e4874\n3127e85747a11",
                                time="2026-\n12-03 14:13:07+00:00") / "credibility.html")
    assert broken == masked_text(_write(tmp_path / "b") / "credibility.html")
    assert "<time>" in broken and "<id>" in broken


def test_another_run_of_the_same_records_passes_and_an_edited_number_fails(tmp_path):
    pkg = _write(tmp_path / "pkg")
    rerun = _write(tmp_path / "rerun", run="3c6ea9293b074b429274ff23fe84f858", time="2026-12-04T09:00:00Z",
                   wall="3.8317468554509104")
    assert _verdicts(compare_reports(pkg, rerun, exact=True)) == [("reports/credibility.html", "PASS")]
    forged = _write(tmp_path / "forged", value="0.020")
    rows = compare_reports(forged, rerun, exact=True)
    assert _verdicts(rows) == [("reports/credibility.html", "FAIL")] and "0.020" in rows[0].note


def test_on_another_platform_numbers_may_move_but_words_and_verdicts_may_not(tmp_path):
    rerun = _write(tmp_path / "rerun", value="26")  # 0.025 printed another way: a number all the same
    assert _verdicts(compare_reports(_write(tmp_path / "pkg"), rerun, exact=False)) == \
        [("reports/credibility.html", "PASS")]
    forged = _write(tmp_path / "forged", verdict="not adequate")
    assert _verdicts(compare_reports(forged, rerun, exact=False)) == [("reports/credibility.html", "FAIL")]


def test_a_report_the_rerun_did_not_render_fails(tmp_path):
    rows = compare_reports(_write(tmp_path / "pkg"), tmp_path / "empty", exact=True)
    assert _verdicts(rows) == [("reports/credibility.html", "FAIL")] and "rendered no" in rows[0].note


def test_pdf_text_is_compared_through_poppler(tmp_path):
    """poppler is a test dependency (scripts/system-deps installs it)."""
    from insilico.reports.render import html_to_pdf

    for name, value in (("pkg", "0.025"), ("rerun", "0.025"), ("forged", "0.020")):
        folder = _write(tmp_path / name, value=value, run="3c6ea9293b074b429274ff23fe84f858" if name == "rerun"
                        else "a76b6bd7558f48e48743127e85747a11")
        html_to_pdf(folder / "credibility.html", folder / "credibility.pdf")
        (folder / "credibility.html").unlink()
    assert _verdicts(compare_reports(tmp_path / "pkg", tmp_path / "rerun", exact=True)) == \
        [("reports/credibility.pdf", "PASS")]
    assert _verdicts(compare_reports(tmp_path / "forged", tmp_path / "rerun", exact=True)) == \
        [("reports/credibility.pdf", "FAIL")]


def test_a_pdf_poppler_cannot_read_fails_with_its_message(tmp_path):
    for name in ("pkg", "rerun"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "credibility.pdf").write_bytes(b"%PDF-1.7 not really")
    rows = compare_reports(tmp_path / "pkg", tmp_path / "rerun", exact=True)
    assert _verdicts(rows) == [("reports/credibility.pdf", "FAIL")] and "pdftotext could not read" in rows[0].note
