"""Code verification of the trial engine: closed forms, rpact and RBesT reference values.

The reference values are package data (`insilico.validation.reference`), each JSON file
with the R script or citation that produced it.
"""

from __future__ import annotations

import numpy as np

from insilico.common.resources import reference_values
from insilico.trials.analyses import power_t_test, power_two_proportions
from insilico.trials.borrowing import BetaMixture, ess
from insilico.trials.design import TrialDesign
from insilico.trials.engine import run
from insilico.trials.oc import operating_characteristics
from insilico.trials.survival import schoenfeld_power

from .metrics import Metrics, metric


def verify_engine(replicates: int, seed: int) -> Metrics:
    """The trial engine against closed forms, rpact and RBesT (code verification).

    z = |simulated - reference| / MCSE; for rpact's simulated values the MCSE combines
    both simulations' binomial errors.
    """
    base = {"seed": seed, "replicates": replicates, "chunk_size": max(replicates // 2, 100),
            "arms": [{"name": "control", "allocation": 1}, {"name": "treatment", "allocation": 1}],
            "decision": {"alpha": 0.025, "sided": "one"}}
    checks = []
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "normal", "sd": 1.0}, "sample_size": {"total": 200},
                               "scenarios": [{"name": "e", "effect": 0.35}],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    checks.append(("t test", d, power_t_test(0.35, 1.0, 100, 100, 0.025)))
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "binary", "control_rate": 0.3},
                               "sample_size": {"total": 300}, "scenarios": [{"name": "e", "effect": 0.15}],
                               "analyses": [{"name": "p", "method": "two_proportions"}],
                               "decision": {"alpha": 0.025, "sided": "one", "direction": "greater"}})
    checks.append(("two proportions", d, power_two_proportions(0.3, 0.45, 150, 150, 0.025)))
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "time_to_event", "control_median": 12, "accrual": 24,
                                                    "cutoff": {"events": 200}},
                               "sample_size": {"total": 400}, "scenarios": [{"name": "e", "effect": 0.7}],
                               "analyses": [{"name": "lr", "method": "logrank"}]})
    checks.append(("Schoenfeld", d, schoenfeld_power(0.7, 200, 0.5, 0.025)))
    rows, zs = [], []
    for label, design, exact in checks:
        oc = operating_characteristics(run(design, executor="serial")).isel(scenario=0, analysis=0)
        sim, se = float(oc["rejection_rate"]), float(oc["rejection_rate_mcse"])
        zs.append(abs(sim - exact) / se)
        rows.append({"check": label, "simulated": sim, "mcse": se, "closed_form": exact, "z": zs[-1]})
    out = {"engine_closed_form_max_z": metric("engine_vs_closed_form", max(zs), "trial_decision_model",
                                          detail={"comparisons": rows, "replicates": replicates})}

    ref = reference_values("rpact_gsd.json")["means"]["five_scenarios"]
    d = TrialDesign.from_dict({**base, "endpoint": {"family": "normal", "sd": 1.0},
                               "sample_size": {"stages": [119, 237, 356], "spending": "obrien_fleming",
                                               "information_rates": [1 / 3, 2 / 3, 1.0]},
                               "scenarios": [{"name": f"alt{a}", "effect": a} for a in ref["alternative"]],
                               "analyses": [{"name": "t", "method": "difference_in_means"}]})
    oc = operating_characteristics(run(d, executor="serial")).isel(analysis=0)
    rows, zs = [], []
    for i, (a, theirs) in enumerate(zip(ref["alternative"], ref["reject"], strict=True)):
        ours = float(oc["rejection_rate"].isel(scenario=i))
        se = np.sqrt(ours * (1 - ours) / replicates + theirs * (1 - theirs) / 10_000)
        zs.append(abs(ours - theirs) / se)
        rows.append({"effect": a, "ours": ours, "rpact": theirs, "z": zs[-1]})
    out["engine_rpact_max_z"] = metric("engine_vs_rpact", max(zs), "trial_decision_model",
                                   detail={"comparisons": rows, "reference": "rpact 3.3.4 getSimulationMeans"})

    rb = reference_values("rbest_AS.json")
    comps = np.asarray(rb["map_prior_mixture"]["components_w_a_b"])
    ours = ess(BetaMixture(comps[:, 0], comps[:, 1], comps[:, 2]), "elir")
    out["rbest_ess_abs_difference"] = metric("prior_ess_vs_rbest", abs(ours - rb["effective_sample_size"]["elir"]),
                                         "trial_decision_model",
                                         detail={"ours": ours, "rbest": rb["effective_sample_size"]["elir"]})
    return out
