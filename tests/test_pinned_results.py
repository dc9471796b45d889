"""Every bundled design gives the same replicate results, bit for bit, as before the
`insilico` namespace: SHA-256s recorded with e3489bc's code (300 replicates per scenario,
the pinned generators of tests/data/generators, serial executor). A change of one bit in any
result variable of any design fails; a deliberate change of results updates these pins in
the same commit, with the reason in its message."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from insilico.common.resources import data_dir
from insilico.common.specfile import read_yaml
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run

GENERATORS = Path(__file__).parent / "data" / "generators"
DRAWS_FROM = {"design_colon_hybrid": "colon_obs", "design_opt_procova": "opt_control", "design_procova": "anorexia"}
PINNED = {  # design -> SHA-256 over the result variables (name, dims, dtype, bytes), e3489bc
    "design_colon_hybrid": "aeb61a5e6f35f3a5296035c16eb98ba4680b8637e23155621ad29e7beb5c13cc",
    "design_hybrid_binary": "f8a77a7c228a14c54b1235d91f37cb1ac01dcf74fd973390e7627365ebb04be5",
    "design_means": "153c01e227d4d898e7cec6f24c5052dec5aff896d0008cdaf4859ba8bbc24829",
    "design_opt_procova": "2d58f708942a1e82895716e67c05b7356a4bffd7810802137fcec463feeb345c",
    "design_procova": "606ba211fdb661b8558668a6c51866c35421793eca3189078b108be9b98205da",
    # added with the qualification study (9eefe55): design_hybrid_binary at 1,000 replicates, chunks of 250
    "design_qualification": "a34f6b59192be362d7bcb71794d27a20591b5aa6e6a02a4b0bf7b4836826cb12",
    "design_survival": "26834161529fada27d4ae17ccd6141f26dd456118824bd2bbfb1aee3fd4630c8",
}


def results_sha256(ds) -> str:
    h = hashlib.sha256()
    for name in sorted(ds.data_vars):
        values = ds[name].values
        h.update(name.encode() + str(ds[name].dims).encode() + str(values.dtype).encode() + values.tobytes())
    return h.hexdigest()


def test_every_bundled_design_is_pinned():
    bundled = sorted(p.stem for p in (data_dir("insilico.examples")).glob("design_*.yaml"))
    assert bundled == sorted(PINNED)


def _pinned_design(name: str) -> TrialDesign:
    path = data_dir("insilico.examples") / f"{name}.yaml"
    spec = read_yaml(path)
    spec["replicates"] = min(300, spec["replicates"])
    if name in DRAWS_FROM:
        spec["patients"]["generator"] = str(GENERATORS / DRAWS_FROM[name])
    return TrialDesign.from_dict(spec, source=str(path))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_results_bit_identical_to_e3489bc(name):
    ds = run(_pinned_design(name), executor="serial")
    assert ds.sizes["replicate"] == 300
    assert results_sha256(ds) == PINNED[name]


@pytest.mark.parametrize("name", ["design_colon_hybrid", "design_survival"])
def test_results_streamed_to_a_store_are_the_pinned_ones(name, tmp_path):
    """Through a results store (what `insilico simulate` uses at any scale): chunks written to
    Zarr as they finish, Bayesian thresholds calibrated in place (colon_hybrid calibrates on
    its null scenario), read back lazily: the same bits as in memory."""
    ds = run(_pinned_design(name), executor="serial", store=tmp_path / "store")
    assert ds["estimate"].chunks is not None  # lazy: nothing read until asked
    assert results_sha256(ds) == PINNED[name]
