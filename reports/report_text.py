"""The text of a rendered report, for comparing a packaged report with the re-run's.

A manifest proves a file is the one packaged, not that its content is true: a number edited
in ``credibility.html`` with its SHA-256 recomputed passes the manifest. So ``reproduce``
compares each packaged report's text with the report the re-run rendered from its own
records. What legitimately differs between two runs is masked: MLflow run ids (and any
other run of 32+ hex digits, e.g. hashes, which the manifest already checks), ISO
timestamps and wall times (record-detail keys naming seconds). Whitespace is dropped before
masking because PDF text extraction breaks lines (inside long ids and timestamps too)
wherever the layout does.

When the re-run's posterior draws are bit-identical to the package's, every other character
must match. When they are not (another platform), MCMC-derived numbers legitimately move
within their tolerances, so digits are masked too: the wording, structure and verdicts must
still match, and the numbers are held to the evidence-record comparison instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from .verdict import Row

# matched after whitespace is dropped: a PDF may break a line inside a timestamp (after a
# hyphen), and where it breaks depends on the width of the run id before it
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T?\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_HEX = re.compile(r"[0-9a-f]{32,}")
# wall times a check reports beside its value (e.g. SBC's "seconds_per_replicate"), as the
# report prints a record's detail: JSON keys naming seconds, whitespace already dropped
_WALL_TIME = re.compile(r'("[A-Za-z_]*seconds[A-Za-z_]*":)-?[0-9.]+(?:[eE][-+]?[0-9]+)?')
# a number however it is written: 118 and 180.4, 1,000 and 1000, 1.2e-05
_NUMBER = re.compile(r"[-+−]?[0-9][0-9,]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_SPACE = re.compile(r"\s+")
# a PDF's page-margin boxes (the run id, "Page 3 of 20"), one line per page in content order:
# where they fall in the text depends on where pages break, which a wall time can move
_MARGIN = re.compile(r"^\s*(?:run [0-9a-f]{32}\s*(?:Page \d+ of \d+)?|Page \d+ of \d+)\s*$", re.MULTILINE)


class _Text(HTMLParser):
    """Visible text of an HTML document (no scripts, no styles)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden = max(self._hidden - 1, 0)

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def pdf_tool() -> str | None:
    """poppler's ``pdftotext``, when installed."""
    return shutil.which("pdftotext")


def raw_text(path: Path) -> str:
    """The visible text of an HTML report or (through poppler's ``pdftotext``) a PDF report."""
    if path.suffix == ".pdf":
        tool = pdf_tool()
        if tool is None:
            raise FileNotFoundError("pdftotext (poppler) is not installed")
        # -raw: text in the order the PDF draws it (WeasyPrint: document order). The default
        # mode regroups a table's cells into columns by their positions, and it grouped one OC
        # table two ways for two renderings of the same HTML (false FAILs in two qualification re-runs)
        text = subprocess.run([tool, "-q", "-raw", str(path), "-"], capture_output=True, check=True, timeout=120,
                              text=True).stdout
        return _MARGIN.sub("", text)
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return "".join(parser.parts)


def masked_text(path: Path, *, numbers: bool = False) -> str:
    """The report's text with whitespace dropped, timestamps and run ids masked (and digits with ``numbers``)."""
    text = _TIME.sub("<time>", _SPACE.sub("", raw_text(path)))
    text = _WALL_TIME.sub(r"\1<seconds>", _HEX.sub("<id>", text))
    return _NUMBER.sub("#", text) if numbers else text


def _first_difference(a: str, b: str, width: int = 40) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"at character {i}: packaged '…{a[max(i - 10, 0):i + width]}…', re-run '…{b[max(i - 10, 0):i + width]}…'"


def compare_reports(packaged: Path, rerun: Path, *, exact: bool) -> list[Row]:
    """One row per packaged report (``reports/*.html``, ``*.pdf``) against the re-run's of the same name.

    ``exact``: the re-run drew the package's very posterior, so only run ids and timestamps may differ.
    """
    rows = []
    rule = "text identical but run ids and times" if exact else "text identical but run ids, times and digits"
    for path in sorted(packaged.glob("*.html")) + sorted(packaged.glob("*.pdf")):
        file = f"reports/{path.name}"
        other = rerun / path.name
        if not other.is_file():
            rows.append(Row(file, "", "re-rendered by the re-run", "present", "missing", rule, "FAIL",
                            f"the re-run rendered no {path.name}"))
            continue
        if path.suffix == ".pdf" and pdf_tool() is None:
            rows.append(Row(file, "", "report text", "", "not read", rule, "SKIP",
                            "pdftotext (poppler) is not installed: the PDF's text was not compared"))
            continue
        try:
            a, b = masked_text(path, numbers=not exact), masked_text(other, numbers=not exact)
        except subprocess.CalledProcessError as err:
            rows.append(Row(file, "", "report text", "readable", "unreadable", rule, "FAIL",
                            f"pdftotext could not read {Path(err.cmd[2]).name}: {(err.stderr or '').strip()[:200]}"))
            continue
        if a == b:
            rows.append(Row(file, "", "report text", f"{len(a)} characters", "identical", rule, "PASS"))
        else:
            rows.append(Row(file, "", "report text", f"{len(a)} characters", f"{len(b)} characters, differ", rule,
                            "FAIL", "the packaged report says something the re-run's records do not: "
                            + _first_difference(a, b)))
    return rows
