"""The re-run check's report: one row per comparison, and the verdict over them."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field


def num(x: float | None) -> str:
    if x is None:
        return "none"
    return repr(float(x)) if math.isfinite(x) else str(x)


def short(x: float) -> str:
    return f"{x:.3g}"


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
        cells = [[clip(c, 70) for c in row] for row in cells]
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


def clip(text: str, n: int) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."
