"""Files: the one atomic-write helper, the one checksum, and reading patient tables.

Every file the package writes goes through `atomic`: the content is written to a
temporary sibling and moved over the target only when complete, so an interrupted or
failed write never leaves half a file (or half a folder) behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import InputError

if TYPE_CHECKING:
    import pandas as pd

TABLE_SUFFIXES = {".parquet": "Parquet", ".pq": "Parquet"}


@contextmanager
def atomic(path: str | Path, *, directory: bool = False, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` when the block succeeds.

    With ``directory=True`` the temporary path is an empty folder and replaces a folder
    (an existing one is removed first). On an exception the temporary path is removed
    and `path` is left as it was. A file is flushed to disk before it replaces `path`;
    ``private`` leaves it readable by its owner only (patient-derived data).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        tmp.chmod(0o777 & ~_umask())
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        if not private:
            tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the target gets the usual mode
    try:
        yield tmp
        if not directory:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if directory:
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        else:
            tmp.replace(path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_csv(df: pd.DataFrame, path: str | Path, *, private: bool = False) -> Path:
    """A table as CSV without its index (``private``: owner-readable only)."""
    with atomic(path, private=private) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(f: BinaryIO) -> tuple[str, int]:
    """SHA-256 and size of a binary stream, read in 1 MiB blocks."""
    h, size = hashlib.sha256(), 0
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
        size += len(block)
    return h.hexdigest(), size


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file (inputs, artifacts, package members)."""
    with open(path, "rb") as f:
        return sha256_stream(f)[0]


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet table, with a clear `InputError` for the usual mistakes."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty (no header, no rows)")
    kind = TABLE_SUFFIXES.get(p.suffix.lower(), "CSV")
    try:
        return pd.read_parquet(p) if kind == "Parquet" else pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise InputError(f"{p}: cannot be read as {kind} ({err})") from err


def load_tree(path: str | Path, groups: tuple[str, ...] | None = None):
    """A NetCDF file's groups as an ``xarray.DataTree``, read into memory and closed.

    ``groups``: read only these top-level groups (KeyError naming a missing one), so a small
    group of a large file is read without the rest. A tree left open keeps its HDF5 handle;
    reopening the same file later in the process (a generator loaded again by the engine
    after a fit) then fails with an HDF error.
    """
    import xarray as xr

    tree = xr.open_datatree(path, engine="netcdf4")
    try:
        if groups is None:
            return tree.load()
        missing = [g for g in groups if g not in tree.children]
        if missing:
            raise KeyError(f"no /{missing[0]} group")
        return xr.DataTree.from_dict({g: tree[g].to_dataset().load() for g in groups})
    finally:
        tree.close()
