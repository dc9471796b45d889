"""The replicate results of a simulation as one Zarr store, written chunk by chunk.

Variables have dims (scenario, analysis, replicate), stored in Zarr chunks of one scenario
by one simulation chunk of replicates, so each finished (scenario, chunk) of the engine is
written into its own region and then let go: the process that writes holds one chunk at a
time, never all replicates. A chunk is marked done (an empty file under ``done/``) only
after its region is written, so an interrupted run resumes from the chunks that are marked
and gives the same final numbers. Calibrating Bayesian thresholds rewrites the decisions
in place, one (scenario, analysis) row at a time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from . import scales
from .borrowing import calibrate_threshold
from .design import TrialDesign
from .looks import FIELDS
from .methods import method_of

DIMS = ("scenario", "analysis", "replicate")
VARIABLES = (*FIELDS, "true_effect")


def _dtype(name: str):
    return np.int8 if name == "decision" else np.float64


class ResultsStore:
    """A folder holding the Zarr store of one design's replicate results."""

    def __init__(self, path: str | Path, design: TrialDesign):
        self.path = Path(path)
        self.design = design
        self.labels = [lab for lab, _, _ in design.analysis_labels()]

    # ------------------------------------------------------------------ writing
    def create(self) -> None:
        """An empty store for the design (anything at the path before is removed)."""
        if self.path.exists():
            shutil.rmtree(self.path)
        d = self.design
        S, A, R = len(d.scenarios), len(self.labels), d.replicates
        chunks = (1, A, min(d.chunk_size, R))
        empty = {name: (DIMS, da.zeros((S, A, R), chunks=chunks, dtype=_dtype(name))) for name in VARIABLES}
        ds = xr.Dataset(empty, coords={"scenario": [sc.name for sc in d.scenarios], "analysis": self.labels,
                                       "replicate": np.arange(R),
                                       "scenario_kind": ("scenario", [k.value for k in scales.scenario_kinds(d)])})
        ds.attrs.update({"design_yaml": d.to_yaml(), "design_sha256": d.hash(), "seed": d.seed,
                         "chunk_size": d.chunk_size, "replicates": R})
        # no fill value: a NaN result (e.g. no closed-form truth) is a value, not a missing chunk
        encoding = {name: {"_FillValue": None} for name in VARIABLES}
        ds.to_zarr(self.path / "results.zarr", mode="w", compute=False, consolidated=False, zarr_format=2,
                   encoding=encoding)
        (self.path / "done").mkdir()

    def write(self, key: tuple[int, int], result: dict) -> None:
        """One finished chunk into its region, then marked done."""
        import zarr

        s, c = key
        lo = c * self.design.chunk_size
        group = zarr.open_group(self.path / "results.zarr", mode="r+")
        for name in VARIABLES:
            rows = [result["truth"][lab] if name == "true_effect" else result["analyses"][lab][name]
                    for lab in self.labels]
            block = np.stack([np.asarray(r) for r in rows]).astype(_dtype(name), copy=False)
            group[name][s, :, lo:lo + block.shape[1]] = block
        (self.path / "done" / f"s{s}_c{c}").touch()

    # ------------------------------------------------------------------ reading
    def done(self) -> set[tuple[int, int]]:
        """The (scenario, chunk) keys already written; an error if the store is another design's."""
        if not (self.path / "done").is_dir():
            return set()
        sha = self.open().attrs.get("design_sha256")
        if sha != self.design.hash():
            raise ValueError(f"results store {self.path} belongs to another design (hash {str(sha)[:12]}); "
                             "remove it or run without resume")
        return {tuple(int(x[1:]) for x in p.name.split("_")) for p in (self.path / "done").iterdir()}

    def open(self) -> xr.Dataset:
        """The results, lazily (Dask arrays over the store): reductions read it chunk by chunk."""
        return xr.open_zarr(self.path / "results.zarr", consolidated=False)

    # --------------------------------------------------------------- calibrating
    def calibrate(self) -> None:
        """Thresholds calibrated on the null scenario (`calibrated_thresholds`); the decisions
        of every scenario redone in place, one (scenario, analysis) row at a time."""
        import zarr

        ds = self.open()
        cal = calibrated_thresholds(self.design, lambda s, i: ds.posterior_prob[s, i].values,
                                    list(ds.scenario.values))
        if cal is None:
            return
        thresholds, mcse, calibrated = cal
        group = zarr.open_group(self.path / "results.zarr", mode="r+")
        for i in calibrated:
            for s in range(ds.sizes["scenario"]):
                group["decision"][s, i, :] = (ds.posterior_prob[s, i].values > thresholds[i]).astype(np.int8)
        extra = xr.Dataset({"threshold": ("analysis", thresholds), "threshold_mcse": ("analysis", mcse)})
        extra.to_zarr(self.path / "results.zarr", mode="a", consolidated=False)
        zarr.open_group(self.path / "results.zarr", mode="r+").attrs["calibrated_on"] = self.design.calibration_scenario


def calibrated_thresholds(design: TrialDesign, probs, scenarios: list[str]
                          ) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """(threshold, MCSE, calibrated analyses): each Bayesian analysis's threshold calibrated to
    a one-sided type I error on the null scenario's replicates (`borrowing.calibrate_threshold`),
    NaN for analyses that do not decide by a posterior probability; None without a
    calibration scenario. ``probs(s, i)``: posterior probabilities of scenario s, analysis i."""
    scenario = design.calibration_scenario
    if scenario is None:
        return None
    null = scenarios.index(scenario)
    A = len(design.analysis_labels())
    thresholds, mcse = np.full(A, np.nan), np.full(A, np.nan)
    calibrated = [i for i, (_, a, _) in enumerate(design.analysis_labels()) if method_of(a).decides_by_probability]
    for i in calibrated:
        cal = calibrate_threshold(probs(null, i), design.calibration_alpha)
        thresholds[i], mcse[i] = cal.threshold, cal.mcse
    return thresholds, mcse, calibrated
