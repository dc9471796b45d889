"""The software a result was made with: versions of the distributions that shape the numbers."""

from __future__ import annotations

import os
import platform
import re
import site
import sysconfig
from importlib.metadata import PackageNotFoundError, distributions, version

#: distributions whose versions every run records (the numerics, the stores, this package)
RECORDED = ("insilico-trials", "pymc", "pytensor", "nutpie", "arviz", "numpy", "scipy", "pandas", "xarray",
            "great-expectations", "mlflow", "dask")


def package_versions(names: tuple[str, ...] = RECORDED) -> dict[str, str]:
    """Installed version of each distribution ("not installed" if absent) and of Python."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Great_Expectations`` → ``great-expectations``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install_dirs() -> list[str]:
    """The environment's site-packages folders: where installed distributions live.

    Not ``sys.path``, which changes with what was imported (setuptools puts its vendored
    distributions on it) and with the working directory (a checkout's ``*.egg-info``).
    """
    paths = sysconfig.get_paths()
    found = {paths["purelib"], paths["platlib"]}
    if site.ENABLE_USER_SITE:
        found.add(site.getusersitepackages())
    return sorted(d for d in found if os.path.isdir(d))


def environment_lock() -> str:
    """Every distribution installed in this environment as ``name==version``, sorted by
    canonical name (pip requirements syntax); independent of imports and working directory."""
    seen: dict[str, str] = {}
    for dist in distributions(path=install_dirs()):
        name = dist.metadata["Name"]
        if name and canonical_name(name) not in seen:
            seen[canonical_name(name)] = f"{name}=={dist.version}"
    head = (f"# environment of the packaged study: Python {platform.python_version()} "
            f"({platform.python_implementation()}) on {platform.platform()}\n")
    return head + "".join(seen[k] + "\n" for k in sorted(seen))


def parse_lock(text: str) -> dict[str, str]:
    """{canonical name: version} of an ``environment.lock``."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            out[canonical_name(name)] = version
    return out


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version()}
