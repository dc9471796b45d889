"""Detached Ed25519 signatures of a package (`insilico keygen`, `insilico sign-package`, checked
by `insilico reproduce`): the case the manifest alone cannot catch — a report edited and its
SHA-256 recomputed in MANIFEST.json — fails the signature; so do a forged signer, another
builder's key and a missing signature when one is required."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from insilico.cli import main
from insilico.reports.manifest import MANIFEST, verify_manifest, write_package
from insilico.reports.signature import generate_key, sign_package, signature_path, signature_rows

REPORT = b"<html><p>type I error 0.025</p></html>"


def _package(path: Path) -> Path:
    write_package(path, {"reports/credibility.html": REPORT, "run.json": b"{}"}, {"study": "s"})
    return path


def _edit_report_and_manifest(src: Path, dst: Path) -> None:
    """What a forger does: change a number in a report and recompute its entry in the manifest."""
    forged = REPORT.replace(b"0.025", b"0.020")
    with zipfile.ZipFile(src) as zin:
        manifest = json.loads(zin.read(MANIFEST))
        manifest["files"]["reports/credibility.html"] = {"sha256": hashlib.sha256(forged).hexdigest(),
                                                         "size": len(forged)}
        with zipfile.ZipFile(dst, "w") as zout:
            for name in zin.namelist():
                data = {"reports/credibility.html": forged, MANIFEST: json.dumps(manifest).encode()}.get(
                    name, zin.read(name))
                zout.writestr(name, data)


def _verdicts(rows) -> list[tuple[str, str]]:
    return [(r.item, r.verdict) for r in rows]


def test_a_signed_package_verifies_and_a_recomputed_manifest_does_not(tmp_path):
    key, pub = generate_key(tmp_path / "builder.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and pub.name == "builder.key.pub"
    pkg = _package(tmp_path / "study.zip")
    sig = sign_package(pkg, key, "A. Builder, statistician")
    assert sig == signature_path(pkg) == tmp_path / "study.zip.sig"
    assert _verdicts(signature_rows(pkg, public_key=pub)) == [
        ("manifest_sha256", "PASS"), ("signature", "PASS"), ("key_id", "PASS")]

    forged = tmp_path / "forged.zip"
    _edit_report_and_manifest(pkg, forged)
    assert verify_manifest(forged) == []  # the manifest alone is satisfied: it was recomputed
    rows = signature_rows(forged, signature=sig, public_key=pub)
    assert ("manifest_sha256", "FAIL") in _verdicts(rows)
    assert "changed after signing" in rows[0].note


def test_forged_signer_other_key_and_missing_signature_fail(tmp_path):
    key, pub = generate_key(tmp_path / "builder.key")
    _, other_pub = generate_key(tmp_path / "other.key")
    pkg = _package(tmp_path / "study.zip")
    sig = sign_package(pkg, key, "A. Builder")

    fields = json.loads(sig.read_text())
    forged_sig = tmp_path / "forged.sig"
    forged_sig.write_text(json.dumps({**fields, "signer": "Somebody Else"}))
    assert ("signature", "FAIL") in _verdicts(signature_rows(pkg, signature=forged_sig))

    assert ("key_id", "FAIL") in _verdicts(signature_rows(pkg, public_key=other_pub))

    unsigned = _package(tmp_path / "unsigned.zip")
    assert _verdicts(signature_rows(unsigned)) == [("", "INFO")]  # shown, not required
    assert _verdicts(signature_rows(unsigned, public_key=pub)) == [("", "FAIL")]  # required by a key


def test_cli_keygen_and_sign_package(tmp_path, capsys):
    pkg = _package(tmp_path / "study.zip")
    key = tmp_path / "me.key"
    assert main(["keygen", str(key)]) == 0
    assert main(["keygen", str(key)]) == 2  # never overwrites a key
    assert "already exists" in capsys.readouterr().err
    assert main(["sign-package", str(pkg), "--key", str(key), "--by", "Me"]) == 0
    assert json.loads(signature_path(pkg).read_text())["signer"] == "Me"
    assert main(["sign-package", str(pkg), "--key", str(tmp_path / "me.key.pub"), "--by", "Me"]) == 2
    assert "not an unencrypted PEM private key" in capsys.readouterr().err
    (tmp_path / "notzip.zip").write_text("x")
    assert main(["sign-package", str(tmp_path / "notzip.zip"), "--key", str(key), "--by", "Me"]) == 2
    assert not (tmp_path / "notzip.zip.sig").exists()


@pytest.mark.parametrize("bad", ["{}", "not json", json.dumps({"format": "insilico-package-signature"})])
def test_an_unreadable_signature_fails_with_a_reason(tmp_path, bad):
    pkg = _package(tmp_path / "study.zip")
    signature_path(pkg).write_text(bad)
    rows = signature_rows(pkg)
    assert _verdicts(rows) == [("", "FAIL")] and rows[0].note
