"""The simulation engine: scenarios x replicates in chunks on Dask, results as xarray.

Each task simulates one chunk of replicates of one scenario (`insilico.trials.patients`)
and analyses every replicate by every method of the design (`insilico.trials.methods`)
at every look (`insilico.trials.looks`). Its random stream is
``SeedSequence(seed, spawn_key=(scenario, chunk))``: a function of the task's key alone,
so results are bit-identical for any number of workers, any scheduler and any order of
completion. With a results store (`insilico.trials.store`) each finished chunk goes to Zarr
and is let go, so memory stays bounded, and ``resume=True`` reruns only the chunks that are
missing, giving the same final numbers.
The results carry each scenario's kind (coordinate ``scenario_kind``, `insilico.trials.scales`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from insilico.virtual_patients.generator import generator_files, receive_files

from . import looks, multiplicity, patients, scales
from .design import STEPWISE, TrialDesign, check_runnable
from .looks import FIELDS
from .methods import method_of
from .store import ResultsStore, calibrated_thresholds

__all__ = ["FIELDS", "assemble", "calibrate", "chunk_stream", "make_client", "run", "simulate_chunk"]


def chunk_stream(seed: int, scenario: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(scenario, chunk)))


def simulate_chunk(design_json: str, scenario: int, chunk: int, generator: dict[str, bytes] | None = None) -> dict:
    """Simulate and analyse one chunk.

    Returns {"truth": {label: (R,) true effect on the analysis scale}, "analyses":
    {label: {field: (R,) array}}}, one label per analysis and treatment-vs-control
    comparison. A group-sequential design analyses every look and reports each
    replicate at the look where it stopped.
    """
    design = TrialDesign.model_validate_json(design_json)
    if generator is not None:  # shipped by the client: this worker need not see its filesystem
        receive_files(design.patients.generator, generator)
    R = min(design.chunk_size, design.replicates - chunk * design.chunk_size)
    rng = chunk_stream(design.seed, scenario, chunk)
    sc = design.scenarios[scenario]
    effects = patients.arm_effects(design, sc, R, rng)  # (R, arms), analysis scale, control column 0
    data = patients.draw(design, sc, patients.natural_effect(design, effects), R, rng)
    dec = design.decision
    alpha = design.comparison_alpha
    common = {"alpha": alpha, "sided": dec.sided, "direction": design.direction, "level": dec.interval}
    gsd = looks.boundaries(design_json)
    data["threshold"] = dec.threshold if dec.threshold is not None else 1 - alpha
    data["statistic_looks"] = gsd is not None  # looks compare statistics with the bounds (|z| when two-sided)
    data["chunk_size"] = min(design.chunk_size, design.replicates)  # MCMC pads short last chunks to this
    views = [looks.at_look(design, data, k) for k in range(len(design.looks))]
    out, truth = {}, {}
    collapsible = design.scale.collapsible
    # MCMC analyses: one sampler seed per chunk, drawn last so that other streams are unchanged
    mcmc_seed = int(rng.integers(2**62)) if any(a.sampler == "mcmc" for a in design.analyses) else None
    for i, (label, a, j) in enumerate(design.analysis_labels()):
        method = method_of(a)
        per_look = [method.analyse(a, looks.comparison(v, j, len(design.arms)), common, R,
                                   None if mcmc_seed is None else _look_seed(mcmc_seed, i, k))
                    for k, v in enumerate(views)]
        res = per_look[0] if gsd is None else looks.sequential(per_look, gsd, design.direction)
        out[label] = {k: np.asarray(res[k]) for k in FIELDS}
        truth[label] = effects[:, j] if collapsible else np.full(R, np.nan)
    if dec.multiplicity in STEPWISE:
        _decide_together(design, out)
    return {"truth": truth, "analyses": out}


def _decide_together(design: TrialDesign, out: dict) -> None:
    """Each analysis's comparisons decided together on their p-values (`trials.multiplicity`)."""
    dec = design.decision
    procedure = getattr(multiplicity, dec.multiplicity)
    extra = (dec.graph.weights, dec.graph.transitions) if dec.multiplicity == "graph" else ()
    for a in design.analyses:
        labels = [label for label, b, _ in design.analysis_labels() if b is a]
        p = np.stack([out[label]["p_value"] for label in labels], axis=1)
        rejected = procedure(p, dec.alpha, *extra)
        for i, label in enumerate(labels):
            out[label]["decision"] = rejected[:, i]


def _look_seed(chunk_seed: int, analysis: int, look: int) -> int:
    """The sampler seed of one analysis at one look of a chunk."""
    return int(np.random.SeedSequence(chunk_seed, spawn_key=(analysis, look)).generate_state(1)[0])


# ---------------------------------------------------------------------- running
def make_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: the given scheduler address (or DASK_SCHEDULER_ADDRESS), else a
    local cluster of single-threaded worker processes sized to the machine."""
    import dask
    from dask.distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        return Client(address)
    n = workers or os.cpu_count() or 1

    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands every large NumPy
    # buffer back to the OS and each chunk page-faults its arrays in again: chunks ran 2x
    # slower in a worker than in this process (106 vs 49 ms). Unset, the allocator reuses them.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        # silence_logs: a worker that takes a moment to exit at shutdown is killed and logged
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
    return Client(cluster)


def run(design: TrialDesign, *, workers: int | None = None, scheduler: str | None = None,
        store: str | Path | None = None, resume: bool = False,
        progress: Callable[[int, int], None] | None = None, executor: str = "dask",
        generator: dict[str, bytes] | None = None) -> xr.Dataset:
    """Simulate every (scenario, chunk); return the replicate-level Dataset.

    Without ``store`` the chunks are assembled in memory (what small runs and checks want).
    With ``store`` (a folder, `store.ResultsStore`) each finished chunk is written into a Zarr
    store and let go, so memory stays bounded at any number of replicates; the Dataset
    returned reads the store lazily (reductions such as `oc.operating_characteristics` go
    chunk by chunk), and ``resume=True`` completes an interrupted run from the chunks it
    finished, with the same final numbers. ``executor="dask"`` (default) uses a Dask client
    (`make_client`); ``"serial"`` runs in this process — the same numbers, by construction of
    the streams. A design drawing generator patients ships the generator's files to every
    worker once (``generator``: `patients.generator_files`, read from the design's path when
    not given), so workers need not share the client's filesystem.
    """
    if any(a.prior is not None and a.prior.map_from is not None for a in design.analyses):
        raise ValueError("the design has map_from priors: derive them first (trials.map_priors.resolve_map_priors; "
                         "'insilico simulate' does this)")
    if generator is not None:  # the given files are the generator, here as on every worker
        receive_files(design.patients.generator, generator)
    check_runnable(design)
    keys = [(s, c) for s in range(len(design.scenarios)) for c in range(design.n_chunks)]
    chunks: dict = {}
    results = ResultsStore(store, design) if store is not None else None
    done = results.done() if (results and resume) else set()
    if results and not done:
        results.create()
    keep = results.write if results else chunks.__setitem__
    todo = [k for k in keys if k not in done]
    payload = design.model_dump_json()
    total, finished = len(keys), len(done)
    if progress:
        progress(finished, total)
    if executor == "serial":
        for k in todo:
            keep(k, simulate_chunk(payload, *k, generator))
            finished += 1
            if progress:
                progress(finished, total)
    else:
        from dask.distributed import as_completed

        client = make_client(workers, scheduler)
        try:
            shipped = None
            if design.patients is not None and todo:
                files = generator if generator is not None else generator_files(design.patients.generator)
                shipped = client.scatter([files], broadcast=True)[0]  # one copy per worker, not per chunk
            futures = {client.submit(simulate_chunk, payload, s, c, shipped, key=f"chunk-{design.hash()[:8]}-{s}-{c}",
                                     pure=False): (s, c) for s, c in todo}
            for fut in as_completed(futures):
                keep(futures.pop(fut), fut.result())  # popped: the worker lets the chunk go
                finished += 1
                if progress:
                    progress(finished, total)
        finally:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    if results is None:
        return calibrate(design, assemble(design, chunks))
    results.calibrate()
    return results.open()


def calibrate(design: TrialDesign, ds: xr.Dataset) -> xr.Dataset:
    """Bayesian thresholds calibrated on the null scenario (`store.calibrated_thresholds`);
    decisions of every scenario redone."""
    cal = calibrated_thresholds(design, lambda s, i: ds.posterior_prob[s, i].values, list(ds.scenario.values))
    if cal is None:
        return ds
    thresholds, mcse, calibrated = cal
    for i in calibrated:
        ds["decision"][:, i, :] = (ds.posterior_prob.isel(analysis=i) > thresholds[i]).astype(np.int8).values
    ds["threshold"] = ("analysis", thresholds)
    ds["threshold_mcse"] = ("analysis", mcse)
    ds.attrs["calibrated_on"] = design.calibration_scenario
    return ds


def assemble(design: TrialDesign, chunks: dict) -> xr.Dataset:
    """Chunk results -> Dataset with dims (scenario, analysis, replicate)."""
    labels = [lab for lab, _, _ in design.analysis_labels()]
    S, A, R = len(design.scenarios), len(labels), design.replicates
    arrays = {f: np.empty((S, A, R)) for f in FIELDS}
    truth = np.empty((S, A, R))
    for (s, c), res in chunks.items():
        lo = c * design.chunk_size
        for a, label in enumerate(labels):
            v = res["truth"][label]
            truth[s, a, lo:lo + len(v)] = v
            for f in FIELDS:
                v = res["analyses"][label][f]
                arrays[f][s, a, lo:lo + len(v)] = v
    arrays["decision"] = arrays["decision"].astype(np.int8)
    arrays["true_effect"] = truth
    dims = ("scenario", "analysis", "replicate")
    # every variable in the constructor: each later assignment re-aligns the whole Dataset
    ds = xr.Dataset({name: (dims, v) for name, v in arrays.items()},
                    coords={"scenario": [sc.name for sc in design.scenarios], "analysis": labels,
                            "replicate": np.arange(R),
                            "scenario_kind": ("scenario", [k.value for k in scales.scenario_kinds(design)])})
    ds.attrs.update({"design_yaml": design.to_yaml(), "design_sha256": design.hash(), "seed": design.seed,
                     "chunk_size": design.chunk_size, "replicates": R})
    return ds
