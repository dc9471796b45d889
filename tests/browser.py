"""Headless Chromium for the tests: a page opened with a probe that counts JS errors,
failed resources, console warnings and broken images (tests/test_reports.py, tests/test_docs.py).
Chromium is a system tool (`scripts/system-deps`); a test that needs it fails, not skips,
when it is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest


def tool(*names: str) -> str:
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    pytest.fail(f"{names[0]} not found on PATH: run scripts/system-deps (apt-get install chromium poppler-utils)")


PROBE = """<script>
(function () {
  var root = document.documentElement, errors = 0;
  function mark() { root.dataset.probeErrors = errors; }
  window.addEventListener("error", function () { errors++; mark(); }, true);  // JS errors and failed resources
  window.addEventListener("securitypolicyviolation", function () { errors++; mark(); });
  ["error", "warn"].forEach(function (level) {
    var orig = console[level];
    console[level] = function () { errors++; mark(); return orig.apply(console, arguments); };
  });
  window.addEventListener("load", function () {
    var broken = 0;
    for (const img of document.images) { if (!img.complete || img.naturalWidth === 0) broken++; }
    root.dataset.probeImages = document.images.length;
    root.dataset.brokenImages = broken;
    mark();
  });
})();
</script>"""


def browse(html_path: Path, tmp: Path, url: str | None = None) -> dict:
    """Open a page (plus the probe) in headless Chromium: DOM marks, console lines, screenshot.

    The probe is a copy of the page in its own folder (relative links resolve as the page's
    do); ``url`` is the page's folder as a server serves it (default: a file URL)."""
    chromium = tool("chromium", "chromium-browser", "google-chrome")
    probe = html_path.with_name("_probe_" + html_path.name)  # same folder: relative figures/ resolve
    probe.write_text(html_path.read_text(encoding="utf-8").replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    common = [chromium, "--headless=new", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
              "--no-first-run", f"--user-data-dir={tmp / 'profile'}"]
    probe_url = url + probe.name if url else probe.as_uri()
    dom = subprocess.run([*common, "--enable-logging=stderr", "--v=0", "--dump-dom", probe_url],
                         capture_output=True, text=True, timeout=120, check=True)
    shot = tmp / f"{html_path.stem}.png"
    page_url = url + html_path.name if url else html_path.as_uri()
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,4000", page_url],
                   capture_output=True, timeout=120, check=True)
    probe.unlink()
    root = re.search(r"<html[^>]*>", dom.stdout).group(0)
    marks = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', root))
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    return {"marks": marks, "console": console, "screenshot": shot}
