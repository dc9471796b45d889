"""The software a result was made with: versions of the distributions that shape the numbers."""

from __future__ import annotations

import platform
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


def environment_lock() -> str:
    """Every installed distribution as ``name==version``, sorted by name (pip requirements syntax)."""
    seen: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    head = (f"# environment of the packaged study: Python {platform.python_version()} "
            f"({platform.python_implementation()}) on {platform.platform()}\n")
    return head + "".join(seen[k] + "\n" for k in sorted(seen))


def parse_lock(text: str) -> dict[str, str]:
    """{lower-case name: version} of an ``environment.lock``."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            out[name.lower()] = version
    return out


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version()}
