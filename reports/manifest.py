"""The submission-package format: a zip whose ``MANIFEST.json`` lists the SHA-256 and size
of every other file, written deterministically and checked file by file."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from insilico.common.errors import InputError
from insilico.common.files import atomic, sha256_file, sha256_stream
from insilico.common.jsonable import jsonable

from .verdict import Row

FORMAT = "insilico-trials submission package"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: the same inputs give the same zip entries


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read {what} ({err})") from err


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False, default=jsonable) + "\n").encode()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def write_package(zip_path: Path, entries: dict[str, Path | bytes], manifest: dict[str, Any]) -> dict[str, dict]:
    """Write the zip (atomically): every entry in path order, then ``MANIFEST.json`` with
    `manifest` plus the format and each entry's SHA-256 and size. Returns the file table."""
    files: dict[str, dict[str, Any]] = {}
    with atomic(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc in sorted(entries):
            files[arc] = write_entry(zf, arc, entries[arc])
        write_entry(zf, MANIFEST, dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                                         "files": files}))
    return files


def write_entry(zf: zipfile.ZipFile, arc: str, source: Path | bytes) -> dict[str, Any]:
    """Write one zip entry, hashing the bytes as they are written (so the manifest matches them)."""
    info = zipfile.ZipInfo(arc, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    h, size = hashlib.sha256(), 0
    big = isinstance(source, Path) and source.stat().st_size >= 2**31 - 2**20
    with zf.open(info, "w", force_zip64=big) as dst:
        if isinstance(source, bytes):
            h.update(source)
            dst.write(source)
            size = len(source)
        else:
            with source.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    dst.write(block)
                    size += len(block)
    return {"sha256": h.hexdigest(), "size": size}


def read_manifest(text: bytes | str, where: str) -> dict:
    try:
        m = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: not a submission package (MANIFEST.json is not valid JSON: {err})") from err
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("files"), dict):
        raise InputError(f"{where}: not a submission package (MANIFEST.json is not an {FORMAT} manifest)")
    return m


def package_files(package: Path) -> tuple[dict, dict[str, tuple[str, int]]]:
    """(manifest, {path: (sha256, size)}) of a package folder or zip."""
    if package.is_dir():
        if not (package / MANIFEST).is_file():
            raise InputError(f"{package}: not a submission package (no MANIFEST.json)")
        manifest = read_manifest((package / MANIFEST).read_bytes(), str(package))
        found = {p.relative_to(package).as_posix(): (sha256_file(p), p.stat().st_size)
                 for p in files_under(package)}
    elif package.is_file() and zipfile.is_zipfile(package):
        found = {}
        with zipfile.ZipFile(package) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
            if MANIFEST not in names:
                raise InputError(f"{package}: not a submission package (no MANIFEST.json)")
            manifest = read_manifest(zf.read(MANIFEST), str(package))
            for name in names:
                with zf.open(name) as f:
                    found[name] = sha256_stream(f)
    elif package.exists():
        raise InputError(f"{package}: not a submission package (neither a folder nor a zip archive)")
    else:
        raise InputError(f"{package}: no such package")
    found.pop(MANIFEST, None)
    return manifest, found


def manifest_rows(manifest: dict, found: dict[str, tuple[str, int]]) -> list[Row]:
    rows = []
    listed = manifest["files"]
    for name in sorted(set(listed) | set(found)):
        exp = listed.get(name)
        got = found.get(name)
        if exp is None:
            rows.append(Row(name, "", "listed in MANIFEST.json", "not listed", "present", "", "FAIL",
                            "file not listed in MANIFEST.json"))
        elif got is None:
            rows.append(Row(name, "", "SHA-256 vs MANIFEST.json", exp.get("sha256", "?")[:16], "missing",
                            "identical", "FAIL", "missing (listed in MANIFEST.json)"))
        elif got[0] != exp.get("sha256") or got[1] != exp.get("size"):
            want = str(exp.get("sha256"))
            rows.append(Row(name, "", "SHA-256 vs MANIFEST.json", f"{want[:16]} ({exp.get('size')} B)",
                            f"{got[0][:16]} ({got[1]} B)", "identical", "FAIL",
                            f"SHA-256 mismatch (manifest {want[:12]}..., file {got[0][:12]}...): "
                            "changed after packaging"))
        else:
            rows.append(Row(name, "", "SHA-256 vs MANIFEST.json", got[0][:16], got[0][:16], "identical", "PASS"))
    return rows


def verify_manifest(package_dir: str | Path) -> list[str]:
    """Problems of a package (folder or zip) against its MANIFEST.json; empty when it is intact.

    Each problem starts with the file's package path: missing files, files not listed,
    SHA-256 or size mismatches.
    """
    manifest, found = package_files(Path(package_dir))
    return [f"{r.file}: {r.note}" for r in manifest_rows(manifest, found) if r.verdict == "FAIL"]


def extract(zip_path: Path, dest: Path) -> None:
    """Unzip, refusing entries that would land outside ``dest``."""
    dest.mkdir(parents=True)
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            if info.filename.startswith(("/", "\\")) or ".." in Path(info.filename).parts or \
                    not target.is_relative_to(root) or target == root:
                raise InputError(f"{zip_path}: not a submission package (unsafe path {info.filename!r} in the zip)")
        try:
            zf.extractall(root)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:  # corrupt members, odd names
            raise InputError(f"{zip_path}: not a submission package (cannot extract: {err})") from None
