"""The simulation engine: simulated power against closed forms (within 3 Monte Carlo
standard errors), bit-identical results whatever runs the chunks, resume after an
interruption, and clear errors for bad designs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

from insilico.cli import main
from insilico.common.errors import SpecError
from insilico.trials.analyses import (
    power_t_test,
    power_two_proportions,
    procova_sample_size,
)
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics

BASE = {
    "seed": 20261123,
    "replicates": 10000,
    "chunk_size": 500,
    "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
    "endpoint": {"family": "normal", "sd": 1.0},
    "sample_size": {"total": 200},
    "scenarios": [{"name": "null", "effect": 0.0}, {"name": "target", "effect": 0.35}],
    "analyses": [{"name": "unadjusted", "method": "difference_in_means"}],
    "decision": {"alpha": 0.025, "sided": "one"},
}


def design(**change) -> TrialDesign:
    return TrialDesign.from_dict({**BASE, **change})


def within_3_mcse(simulated: float, mcse: float, expected: float) -> bool:
    return abs(simulated - expected) <= 3 * mcse


def rate_within_3_mcse(cell, name: str, expected: float) -> bool:
    """A simulated proportion against its closed form, with the MCSE the closed form implies
    (sqrt(p(1-p)/R)): the test's false-alarm rate is then 0.27% whatever was simulated."""
    R = int(cell.n_replicates)
    return abs(float(cell[name]) - expected) <= 3 * np.sqrt(expected * (1 - expected) / R)


def test_t_test_power_and_type_one_error_match_closed_form():
    oc = operating_characteristics(run(design(), executor="serial")).sel(analysis="unadjusted")
    for sc, effect in (("null", 0.0), ("target", 0.35)):
        cell = oc.sel(scenario=sc)
        exact = power_t_test(effect, 1.0, 100, 100, 0.025) if effect else 0.025
        assert rate_within_3_mcse(cell, "rejection_rate", exact)
        # the t interval is exact: coverage 95% within 3 MCSE, no bias beyond 3 MCSE
        assert rate_within_3_mcse(cell, "coverage", 0.95)
        assert within_3_mcse(float(cell.bias), float(cell.bias_mcse), 0.0)


def test_unequal_allocation_and_two_proportions():
    d = design(endpoint={"family": "binary", "control_rate": 0.3},
               arms=[{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 2}],
               sample_size={"total": 300},
               scenarios=[{"name": "null", "effect": 0.0}, {"name": "target", "effect": 0.15}],
               analyses=[{"name": "z", "method": "two_proportions"}])
    assert d.arm_sizes() == (100, 200)
    oc = operating_characteristics(run(d, executor="serial")).sel(analysis="z")
    cell = oc.sel(scenario="target")
    # the normal approximation's own error at n = 100/200 is well below one MCSE (0.007)
    assert rate_within_3_mcse(cell, "rejection_rate", power_two_proportions(0.3, 0.45, 100, 200, 0.025))
    assert rate_within_3_mcse(oc.sel(scenario="null"), "rejection_rate", 0.025)


def test_poisson_rate_ratio_estimates_log_rate_ratio():
    d = design(endpoint={"family": "count", "control_rate": 2.0},
               scenarios=[{"name": "half", "effect": 0.5}],
               analyses=[{"name": "rr", "method": "poisson_rate_ratio"}],
               decision={"alpha": 0.025, "sided": "one", "direction": "less"})
    oc = operating_characteristics(run(d, executor="serial")).sel(analysis="rr", scenario="half")
    assert float(oc.true_effect) == pytest.approx(np.log(0.5))
    # log of a Poisson total with mean m is biased by about -1/(2m) (second-order delta
    # method): here m = 100 (treated) and 200 (control), so the log rate ratio's bias is
    # -1/200 + 1/400 = -0.0025, which the simulation must show within 3 MCSE
    assert within_3_mcse(float(oc.bias), float(oc.bias_mcse), -1 / 200 + 1 / 400)
    assert float(oc.rejection_rate) > 0.99  # 200 events vs 100: z ~ 5.8


def test_bit_identical_serial_one_two_workers_and_external_scheduler():
    from dask.distributed import LocalCluster

    d = design(replicates=1200, chunk_size=300)
    serial = run(d, executor="serial")
    assert run(d, workers=1).identical(serial)
    assert run(d, workers=2).identical(serial)
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        assert run(d, scheduler=cluster.scheduler_address).identical(serial)  # threads, distributed scheduler


def test_a_real_cluster_losing_a_worker_mid_run_gives_the_serial_results(dask_processes):
    """`dask scheduler` and two `dask worker` processes; one worker is killed (SIGKILL, no
    nanny to restart it) once the first chunk is in: its queued and held chunks are recomputed
    on the other, and the keyed streams make the results bit-identical to a serial run."""
    d = design(replicates=24000, chunk_size=500)
    serial = run(d, executor="serial")
    killed = []

    def kill_once(done, total):
        if done >= 1 and not killed:
            dask_processes.workers[0].kill()
            killed.append((done, total))

    res = run(d, scheduler=dask_processes.address, progress=kill_once)
    assert killed and killed[0][0] < killed[0][1], killed  # the kill came before the end of the run
    assert dask_processes.workers[0].wait(timeout=10) is not None
    assert res.identical(serial)


def test_chunk_size_is_part_of_the_design():
    a = run(design(replicates=600, chunk_size=300), executor="serial")
    b = run(design(replicates=600, chunk_size=200), executor="serial")
    assert a.attrs["design_sha256"] != b.attrs["design_sha256"]
    assert not np.array_equal(a.estimate.values, b.estimate.values)


def test_resume_after_interruption_gives_the_same_numbers(tmp_path):
    d = design(replicates=2000, chunk_size=250)
    reference = run(d, executor="serial")

    class Interrupted(Exception):
        pass

    def stop_after_five(done, total):
        if done >= 5:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(d, executor="serial", store=tmp_path / "ck", progress=stop_after_five)
    assert len(list((tmp_path / "ck" / "done").iterdir())) == 5
    resumed = run(d, executor="serial", store=tmp_path / "ck", resume=True)
    assert resumed.load().identical(reference)
    with pytest.raises(ValueError, match="another design"):
        run(design(replicates=2000, chunk_size=250, seed=1), executor="serial", store=tmp_path / "ck",
            resume=True)


def test_procova_sample_size_formulas():
    """Guenther-Schouten and noncentral-t agree to a patient or two, and the saving is about rho^2."""
    n = procova_sample_size(effect=0.3, sd=1.0, rho=0.6, alpha=0.025, power=0.9)
    assert abs(n["unadjusted_noncentral_t"] - n["unadjusted_guenther_schouten"]) <= 2
    assert abs(n["procova_noncentral_t"] - n["procova_guenther_schouten"]) <= 2
    assert n["saving_fraction"] == pytest.approx(0.36, abs=0.01)
    # textbook value: 0.3 sd effect, 90% power, one-sided 2.5%: 234 per arm (t test)
    assert n["unadjusted_noncentral_t"] in (468, 469, 470)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"analyses": [{"name": "x", "method": "magic"}]}, "analyses.0.method"),
        ({"arms": [{"name": "c", "allocation": 0}, {"name": "t", "allocation": 1}]}, "arms.0.allocation"),
        ({"analyses": [{"name": "x", "method": "two_proportions"}]}, "does not apply to a normal endpoint"),
        ({"endpoint": {"family": "binary", "control_rate": 0.3},
          "scenarios": [{"name": "s", "effect": 1.5}], "analyses": [{"name": "x", "method": "two_proportions"}]},
         "risk differences"),
        ({"endpoint": {"family": "count", "control_rate": 1.0},
          "scenarios": [{"name": "s", "effect": -0.2}], "analyses": [{"name": "x", "method": "poisson_rate_ratio"}]},
         "rate ratios"),
        ({"replicats": 5}, "replicats: unknown key"),
    ],
)
def test_bad_designs_are_refused(change, message):
    with pytest.raises(SpecError, match=message):
        design(**change)


def test_bad_design_on_the_command_line(tmp_path, capsys):
    bad = tmp_path / "design.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "arms": [{"name": "c", "allocation": -1}, {"name": "t", "allocation": 1}]}))
    code = main(["simulate", "--design", str(bad), "--out", str(tmp_path / "r.nc"), "--serial", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "arms.0.allocation" in err and "Traceback" not in err
    assert not (tmp_path / "r.nc").exists()


def test_simulate_and_oc_commands(tmp_path, capsys):
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump({**BASE, "replicates": 1000}))
    out = tmp_path / "r.nc"
    assert main(["simulate", "--design", str(path), "--out", str(out), "--serial", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["oc", str(out), "--format", "json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert {r["scenario"] for r in rows} == {"null", "target"} and rows[0]["n_replicates"] == 1000
    assert not (tmp_path / "r.nc.store").exists()  # the results store is gone once the file is written
    # the file, written chunk by chunk from the store, holds the numbers an in-memory run gives
    from insilico.stages.simulate import read_results

    replicates, oc = read_results(out)
    memory = run(design(replicates=1000), executor="serial")
    for name in memory.data_vars:
        np.testing.assert_array_equal(replicates[name].values, memory[name].values, err_msg=name)
    assert replicates["decision"].dtype == np.int8
    xr.testing.assert_equal(oc.rejection_rate, operating_characteristics(memory).rejection_rate)


def test_assurance_averages_power_over_the_design_prior():
    """Probability of success with effect ~ N(0.3, 0.15): the closed-form power averaged
    over the prior (Gauss-Hermite, 40 nodes: exact to 1e-8) within 3 MCSE."""
    d = design(scenarios=[{"name": "pos", "effect_prior": {"mean": 0.3, "sd": 0.15}}])
    res = run(d, executor="serial")
    assert float(res.true_effect.std()) == pytest.approx(0.15, rel=0.03)  # 10,000 draws: se 0.7%
    oc = operating_characteristics(res).sel(scenario="pos", analysis="unadjusted")
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    pos = sum(w * power_t_test(0.3 + 0.15 * x, 1.0, 100, 100, 0.025) for x, w in zip(nodes, weights, strict=True))
    pos /= weights.sum()
    assert rate_within_3_mcse(oc, "rejection_rate", pos)
    assert within_3_mcse(float(oc.bias), float(oc.bias_mcse), 0.0)  # bias against each replicate's own truth


def test_hybrid_power_prior_type_one_error_with_and_without_drift():
    """Known-sd normal hybrid control with power prior a0 on 200 external controls (weights
    1): the decision statistic is normal, so its type I error has a closed form —
    Z = (ybar_t - mu_c_tilde) / sqrt(v_post) with mu_c_tilde = (n_c ybar_c + E ybar_ext) / (n_c + E),
    E = a0 n_ext; under drift d of the current trial, E[Z numerator] = d E / (n_c + E)."""
    from scipy import stats

    a0, n_ext, n_c, n_t, d = 0.5, 200, 100, 100, 0.25
    des = design(external_control={"n": n_ext},
                 scenarios=[{"name": "null", "effect": 0.0}, {"name": "drift", "effect": 0.0, "control_shift": d}],
                 analyses=[{"name": "hybrid", "method": "hybrid_power_prior", "a0": a0, "weighting": "none"}])
    oc = operating_characteristics(run(des, executor="serial")).sel(analysis="hybrid")
    E = a0 * n_ext
    v_post = 1 / n_t + 1 / (n_c + E)
    v_true = 1 / n_t + (n_c + a0**2 * n_ext) / (n_c + E) ** 2
    z = stats.norm.ppf(0.975)
    for sc, shift in (("null", 0.0), ("drift", d * E / (n_c + E))):
        exact = float(stats.norm.sf((z * np.sqrt(v_post) - shift) / np.sqrt(v_true)))
        assert rate_within_3_mcse(oc.sel(scenario=sc), "rejection_rate", exact), (sc, exact)
    res = run(des.model_copy(update={"replicates": 10}), executor="serial")
    assert np.all(res.prior_ess.values == E)
    assert np.all((res.posterior_prob >= 0) & (res.posterior_prob <= 1))


@pytest.mark.parametrize("name", ["design_means", "design_survival"])
def test_example_designs_run(name):
    from insilico.virtual_patients.examples import examples_dir

    d = TrialDesign.from_yaml(examples_dir() / f"{name}.yaml")
    res = run(d.model_copy(update={"replicates": 200, "chunk_size": 100}), executor="serial")
    assert res.sizes == {"scenario": len(d.scenarios), "analysis": len(d.analyses), "replicate": 200}
    assert np.isfinite(res.estimate.values).all()


def test_generator_patients_on_a_cluster_that_does_not_see_the_generator_folder(dask_processes, tmp_path,
                                                                               pinned_generators):
    """The client ships the generator's files to the workers once (Dask scatter): the folder the
    design names is deleted before any chunk runs, so a worker that read it would fail; the
    results are bit-identical to a serial run that read the folder."""
    import shutil

    from insilico.common.resources import data_dir
    from insilico.common.specfile import read_yaml
    from insilico.virtual_patients.generator import generator_files

    folder = tmp_path / "generator"
    shutil.copytree(pinned_generators / "anorexia", folder)
    spec = read_yaml(data_dir("insilico.examples") / "design_procova.yaml")
    spec.update(replicates=400, chunk_size=100)
    spec["patients"]["generator"] = str(folder)
    d = TrialDesign.from_dict(spec)
    serial = run(d, executor="serial")
    files = generator_files(folder)

    def delete_folder(done, total):
        if folder.exists():
            shutil.rmtree(folder)  # before the client submits a chunk

    res = run(d, scheduler=dask_processes.address, progress=delete_folder, generator=files)
    assert not folder.exists()
    assert res.identical(serial)
