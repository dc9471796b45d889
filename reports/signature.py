"""Detached Ed25519 signatures of a submission package: who built it, and that nothing changed.

The signature covers the package's ``MANIFEST.json`` (which lists the SHA-256 of every other
file), the signer's name and the time of signing. It lives beside the zip as
``<package>.sig`` (JSON), so signing never rewrites the package. A reviewer who holds the
builder's public key checks both that the signature is valid and that it is that key's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from insilico.common.errors import InputError
from insilico.common.files import atomic, write_bytes

from .manifest import MANIFEST
from .verdict import Row

FORMAT = "insilico-package-signature"
FORMAT_VERSION = 1
SIGNED_FIELDS = ("format", "format_version", "algorithm", "manifest_sha256", "key_id", "signer", "signed_at")


def signature_path(package: Path) -> Path:
    """Where a package's detached signature lives: ``study.zip`` → ``study.zip.sig``."""
    return package.with_name(package.name + ".sig")


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (SHA-256 of its 32 raw bytes, 16 hex digits)."""
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def generate_key(private_path: Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair: the private key (PEM, owner-only) and ``<name>.pub`` beside it."""
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if p.exists():
            raise InputError(f"{p}: already exists; a key is never overwritten")
    key = Ed25519PrivateKey.generate()
    with atomic(private_path, private=True) as tmp:
        tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    write_bytes(public_path, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def _load(path: Path, private: bool):
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read the key ({err.strerror})") from err
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as err:
        raise InputError(f"{path}: not an unencrypted PEM {'private' if private else 'public'} key ({err})") from err
    wanted = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, wanted):
        raise InputError(f"{path}: not an Ed25519 key (insilico keygen writes one)")
    return key


def _manifest_sha256(package: Path) -> str:
    if not package.is_file() or not zipfile.is_zipfile(package):
        raise InputError(f"{package}: not a submission package (not a zip archive)")
    with zipfile.ZipFile(package) as zf:
        if MANIFEST not in zf.namelist():
            raise InputError(f"{package}: not a submission package (no {MANIFEST})")
        return hashlib.sha256(zf.read(MANIFEST)).hexdigest()


def _message(fields: dict) -> bytes:
    return json.dumps({k: fields[k] for k in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def sign_package(package: Path, private_key: Path, signer: str) -> Path:
    """Write ``<package>.sig``: an Ed25519 signature of the manifest, the signer and the time."""
    package = Path(package)
    if not signer.strip():
        raise InputError("the signer's name is empty (--by 'Name, role')")
    key = _load(private_key, private=True)
    fields = {"format": FORMAT, "format_version": FORMAT_VERSION, "algorithm": "Ed25519",
              "manifest_sha256": _manifest_sha256(package), "key_id": key_id(key.public_key()),
              "signer": signer.strip(), "signed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    fields["public_key"] = base64.b64encode(_raw(key.public_key())).decode()
    fields["signature"] = base64.b64encode(key.sign(_message(fields))).decode()
    return write_bytes(signature_path(package), (json.dumps(fields, indent=2) + "\n").encode())


def signature_rows(package: Path, signature: Path | None = None, public_key: Path | None = None) -> list[Row]:
    """The signature check of a package as report rows (an unsigned package is INFO unless a
    public key was given, which makes the signature required)."""
    package = Path(package)
    sig_path = Path(signature) if signature is not None else signature_path(package)
    file = sig_path.name
    if not sig_path.is_file():
        if signature is not None or public_key is not None:
            return [Row(file, "", "detached signature present", "present", "missing", "", "FAIL",
                        "a signature was required (--signature / --public-key) but there is none")]
        return [Row(file, "", "detached signature", "", "none", "shown", "INFO", "the package is not signed")]
    try:
        fields = json.loads(sig_path.read_text())
        missing = [k for k in (*SIGNED_FIELDS, "public_key", "signature") if k not in fields]
        if fields.get("format") != FORMAT or missing:
            raise ValueError(f"not an {FORMAT} file" + (f" (missing {', '.join(missing)})" if missing else ""))
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(fields["public_key"]))
        sig = base64.b64decode(fields["signature"])
    except (ValueError, TypeError, AttributeError) as err:
        return [Row(file, "", "detached signature readable", "valid", "unreadable", "", "FAIL", str(err))]
    rows = []
    manifest = _manifest_sha256(package)
    rows.append(Row(file, "manifest_sha256", f"signed {MANIFEST}", fields["manifest_sha256"][:16], manifest[:16],
                    "identical", "PASS" if manifest == fields["manifest_sha256"] else "FAIL",
                    "" if manifest == fields["manifest_sha256"] else f"{MANIFEST} changed after signing"))
    try:
        public.verify(sig, _message(fields))
        valid = key_id(public) == fields["key_id"]
    except InvalidSignature:
        valid = False
    rows.append(Row(file, "signature", "Ed25519 signature", "valid", "valid" if valid else "invalid", "identical",
                    "PASS" if valid else "FAIL",
                    f"signed by {fields['signer']} at {fields['signed_at']} (key {fields['key_id']})" if valid
                    else "the signature does not match its signed fields"))
    if public_key is not None:
        expected = key_id(_load(public_key, private=False))
        rows.append(Row(file, "key_id", "signed with the expected key", expected, key_id(public), "identical",
                        "PASS" if expected == key_id(public) else "FAIL",
                        "" if expected == key_id(public) else f"signed with another key than {Path(public_key).name}"))
    return rows
