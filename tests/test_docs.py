"""The documentation site: built with warnings as errors (`mkdocs build --strict`: the API
reference from the docstrings, the executed walkthrough and tutorials), every internal
link, anchor and image resolving to a file of the built site, and the pages served by
`python -m http.server` opening in headless Chromium without errors or broken images."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from browser import browse

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["index.html", "your-own-data/index.html", "oc-columns/index.html",
         "tutorials/simulate-a-design/index.html", "tutorials/hybrid-control/index.html",
         "tutorials/generator/index.html", "tutorials/studies/index.html",
         "architecture/index.html", "reference/trials/index.html"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    # --strict fails on warnings it knows; this also catches plugins that only log them
    assert not re.search(r"^WARNING\b", done.stderr, re.MULTILINE), done.stderr[-4000:]
    return out


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key):
                self.refs.append(a[key])
        if tag == "img":
            self.imgs.append(a.get("src", ""))


def _parse(page: Path) -> _Refs:
    refs = _Refs()
    refs.feed(page.read_text(encoding="utf-8"))
    return refs


def _target(site: Path, page: Path, ref: str) -> tuple[Path, str] | None:
    """The file and anchor a same-site reference points to, or None for other sites."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith(("mailto:", "data:", "javascript:")):
        return None
    base = "/" + page.relative_to(site).as_posix()
    path = unquote(urlsplit(urljoin(base, parts.path)).path) if parts.path else base
    file = site / path.lstrip("/")
    if path.endswith("/") or file.is_dir():
        file = file / "index.html"
    return file, parts.fragment


def test_every_page_is_built(site):
    for page in PAGES:
        assert (site / page).is_file(), page
    api = (site / "reference/trials/index.html").read_text(encoding="utf-8")
    # the API reference is generated from the numpydoc docstrings of the namespace
    assert "insilico.trials.engine" in api and "simulate_chunk" in api
    assert "insilico.trials.methods" in api


def test_no_broken_links_anchors_or_images(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= len(PAGES)
    parsed = {p: _parse(p) for p in pages}
    broken = []
    for page, refs in parsed.items():
        for ref in refs.refs:
            hit = _target(site, page, ref)
            if hit is None:
                continue
            file, anchor = hit
            if not file.is_file():
                broken.append(f"{page.relative_to(site)}: {ref} (no file)")
            elif anchor and file.suffix == ".html":
                ids = parsed[file].ids if file in parsed else _parse(file).ids
                if unquote(anchor) not in ids:
                    broken.append(f"{page.relative_to(site)}: {ref} (no anchor)")
        for src in refs.imgs:
            assert src, f"{page.relative_to(site)}: an image without src"
    assert broken == []
    external = {r for refs in parsed.values() for r in refs.refs if urlsplit(r).netloc}
    # the site works offline: no fonts, scripts or styles from other hosts
    assert not [r for r in external if r.endswith((".js", ".css", ".woff2"))], external


@pytest.fixture(scope="module")
def server(site):
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(site)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # the request log goes to stderr (dropped, so a full pipe never blocks the server)
    line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    port = re.search(r"port (\d+)", line)
    assert port, line
    yield f"http://127.0.0.1:{port.group(1)}/"
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_in_chromium(site, server, page, tmp_path):
    folder = page.rsplit("/", 1)[0] + "/" if "/" in page else ""
    start = time.time()
    seen = browse(site / page, tmp_path, url=server + folder)
    assert "broken-images" in seen["marks"], f"{page}: the load event never fired ({time.time() - start:.0f} s)"
    assert seen["marks"]["broken-images"] == "0", page
    assert seen["marks"]["probe-errors"] == "0", (page, seen["console"])
    shot = seen["screenshot"]
    assert shot.is_file() and shot.stat().st_size > 10_000
