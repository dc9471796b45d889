"""Every bundled design gives the same replicate results, bit for bit, as recorded: SHA-256s
at 300 replicates per scenario, serial executor. A change of one bit in any result variable
of any design fails; a deliberate change of results updates these pins in the same commit,
with the reason in its message.

The designs that draw generator patients use small generators fitted once per test session
from the specs in tests/data/generators (seed 1; `pinned_generators`): a fit is bit-
reproducible (fast-math off, `insilico.common.compilation`), so its posterior is not kept in
git. Their pins were recorded on those fits (7a0476f); the parametric designs' pins are
e3489bc's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from insilico.common.resources import data_dir
from insilico.common.specfile import read_yaml
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run

DRAWS_FROM = {"design_colon_hybrid": "colon_obs", "design_opt_procova": "opt_control", "design_procova": "anorexia"}
PINNED = {  # design -> SHA-256 over the result variables (name, dims, dtype, bytes); generator designs:
    # on the session-fitted generators (7a0476f), the others e3489bc
    "design_colon_hybrid": "6f9ca898ef7c5d1b2713734ca47d9eb91d6682917f0153e6e692f67fe99f5991",
    "design_hybrid_binary": "f8a77a7c228a14c54b1235d91f37cb1ac01dcf74fd973390e7627365ebb04be5",
    "design_means": "153c01e227d4d898e7cec6f24c5052dec5aff896d0008cdaf4859ba8bbc24829",
    "design_opt_procova": "70ee34439459f18aef4738c7a8ba287ac3ad7cd4b91438aef0a8678b77e7bb2b",
    "design_procova": "2b15309df0cdc683253ddbb39de2b13aea660e849612270c3b966ef7a11c36bc",
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


def _pinned_design(name: str, generators: Path) -> TrialDesign:
    path = data_dir("insilico.examples") / f"{name}.yaml"
    spec = read_yaml(path)
    spec["replicates"] = min(300, spec["replicates"])
    if name in DRAWS_FROM:
        spec["patients"]["generator"] = str(generators / DRAWS_FROM[name])
    return TrialDesign.from_dict(spec, source=str(path))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_results_bit_identical_to_the_pins(name, pinned_generators):
    ds = run(_pinned_design(name, pinned_generators), executor="serial")
    assert ds.sizes["replicate"] == 300
    assert results_sha256(ds) == PINNED[name]


@pytest.mark.parametrize("name", ["design_colon_hybrid", "design_survival"])
def test_results_streamed_to_a_store_are_the_pinned_ones(name, tmp_path, pinned_generators):
    """Through a results store (what `insilico simulate` uses at any scale): chunks written to
    Zarr as they finish, Bayesian thresholds calibrated in place (colon_hybrid calibrates on
    its null scenario), read back lazily: the same bits as in memory."""
    ds = run(_pinned_design(name, pinned_generators), executor="serial", store=tmp_path / "store")
    assert ds["estimate"].chunks is not None  # lazy: nothing read until asked
    assert results_sha256(ds) == PINNED[name]
