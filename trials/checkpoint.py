"""Finished chunks of a simulation on disk, so an interrupted run resumes with the same numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

import xarray as xr

from insilico.common.files import atomic

from .design import TrialDesign


class Checkpoint:
    """Finished chunks as Zarr stores, one per (scenario, chunk), in a folder.

    Each chunk is written under a temporary name and renamed when complete, so an
    interrupted write never looks finished.
    """

    def __init__(self, path: str | Path, design: TrialDesign):
        self.path = Path(path)
        self.design = design

    def reset(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)

    def save(self, key: tuple[int, int], result: dict) -> None:
        ds = xr.Dataset({f"{a}__{f}": ("replicate", v) for a, fields in result["analyses"].items()
                         for f, v in fields.items()})
        for label, v in result["truth"].items():
            ds[f"{label}__truth"] = ("replicate", v)
        ds.attrs["design_sha256"] = self.design.hash()
        with atomic(self.path / f"s{key[0]}_c{key[1]}.zarr", directory=True) as tmp:
            ds.to_zarr(tmp, mode="w", consolidated=False)

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        out = {}
        for store in sorted(self.path.glob("s*_c*.zarr")):
            ds = xr.open_zarr(store, consolidated=False).load()
            if ds.attrs.get("design_sha256") != self.design.hash():
                raise ValueError(f"checkpoint {self.path} belongs to another design (hash "
                                 f"{str(ds.attrs.get('design_sha256'))[:12]}); remove it or run without --resume")
            s, c = (int(x[1:]) for x in store.name.removesuffix(".zarr").split("_"))
            res: dict = {}
            truth: dict = {}
            for name in ds.data_vars:
                a, f = name.rsplit("__", 1)
                if f == "truth":
                    truth[a] = ds[name].values
                else:
                    res.setdefault(a, {})[f] = ds[name].values
            out[(s, c)] = {"truth": truth, "analyses": res}
        return out
