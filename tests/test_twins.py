"""Wiring of twins, prognostic scores and save/load on generators with a fake posterior.

The generators here skip MCMC only: `make_generator` learns the encoders and outcome
scale from a data frame exactly as `virtual_patients.generator.fit` does and puts known
parameter values in a DataTree shaped like the sampler's output. These tests check
arithmetic identities (common random numbers, effect formulas, closed-form scores), so
their tolerances are floating-point rounding only; statistical checks use real fits
(tests/test_recovery.py, tests/test_reference_lifelines.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special

from insilico.virtual_patients.effects import TreatmentEffect
from insilico.virtual_patients.encoding import learn_encoders
from insilico.virtual_patients.fitting import MissingReport, _outcome_internal, generator_meta
from insilico.virtual_patients.generator import (
    META_FILE,
    POSTERIOR_FILE,
    SPEC_FILE,
    Generator,
    GeneratorLoadError,
)
from insilico.virtual_patients.spec import GeneratorSpec

CHAINS, DRAWS = 2, 5  # ten fake posterior draws
N_DRAWS = CHAINS * DRAWS


# ---------------------------------------------------------------------- helpers
def make_generator(spec: GeneratorSpec, df: pd.DataFrame, params: dict[str, np.ndarray],
                   meta_overrides: dict | None = None) -> Generator:
    """A Generator whose posterior holds `params` (each shaped (N_DRAWS, ...)), no MCMC.

    Encoders, design summaries and outcome scale are learned from `df` as `fit` learns
    them; `meta_overrides` replaces top-level meta keys (or keys of ``outcome_scale``
    when given as ``{"outcome_scale": {...}}``, merged).
    """
    encoders = learn_encoders(df, spec)
    _, scale = _outcome_internal(df, spec)
    data_vars = {}
    for name, v in params.items():
        v = np.asarray(v, dtype=float)
        assert v.shape[0] == N_DRAWS, f"{name}: first axis must hold the {N_DRAWS} draws"
        extra = v.shape[1:]
        dims = ("chain", "draw", *(("predictor",) if name == "beta" else
                                   tuple(f"{name}_dim_{i}" for i in range(len(extra)))))
        data_vars[name] = (dims, v.reshape(CHAINS, DRAWS, *extra))
    post = xr.Dataset(data_vars, coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((CHAINS, DRAWS), dtype=bool))})
    posterior = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    posterior.attrs["spec_hash"] = spec.hash()
    meta = generator_meta(df, spec, encoders, scale, MissingReport(len(df), len(df)), seed=0, data_sha256=None)
    for key, value in (meta_overrides or {}).items():
        meta[key] = {**meta[key], **value} if key == "outcome_scale" else value
    return Generator(spec, posterior, meta)


def draws(rng: np.random.Generator, centre, spread: float = 0.1) -> np.ndarray:
    """N_DRAWS posterior draws scattered around `centre` (so draw averages matter)."""
    centre = np.asarray(centre, dtype=float)
    return centre + spread * rng.standard_normal((N_DRAWS, *centre.shape))


def two_covariate_spec(outcome: dict, **extra) -> GeneratorSpec:
    """Spec with a continuous `x` and a binary `g` (levels a/b) and the given outcome."""
    return GeneratorSpec.from_dict({
        "covariates": [{"name": "x", "type": "continuous"}, {"name": "g", "type": "binary", "levels": ["a", "b"]}],
        "outcome": outcome,
        **extra,
    })


def two_covariate_frame(n: int, seed: int, **outcome_cols) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(60.0, 8.0, n), "g": np.where(rng.random(n) < 0.4, "b", "a")})
    for name, make in outcome_cols.items():
        df[name] = make(rng, n)
    return df


def two_covariate_params(rng: np.random.Generator, outcome: dict) -> dict[str, np.ndarray]:
    """Covariate-model draws for `two_covariate_spec`, plus the given outcome draws."""
    return {
        "cov_x_intercept": draws(rng, 0.0),
        "cov_x_coef": np.zeros((N_DRAWS, 0)),
        "cov_x_sigma": draws(rng, 1.0, 0.02),
        "cov_g_intercept": draws(rng, -0.4),
        "cov_g_coef": draws(rng, [0.3]),
        **outcome,
    }


@pytest.fixture
def normal_gen() -> tuple[Generator, pd.DataFrame]:
    """Normal outcome y = 100 + ... (sd ~ 15) generator and its fitting data."""
    spec = two_covariate_spec({"family": "normal", "column": "y"})
    df = two_covariate_frame(300, 1, y=lambda r, n: r.normal(100.0, 15.0, n))
    rng = np.random.default_rng(2)
    params = two_covariate_params(rng, {"mu": draws(rng, 0.2), "beta": draws(rng, [0.5, -0.3]),
                                        "sigma": draws(rng, 0.8, 0.05)})
    return make_generator(spec, df, params), df


@pytest.fixture
def weibull_gen() -> tuple[Generator, pd.DataFrame, float]:
    """Weibull generator (shape k in every draw) with no censoring in practice."""
    k = 1.7
    spec = two_covariate_spec({"family": "weibull", "time": "t", "event": "e",
                               "censoring": {"administrative": 1e12}})
    df = two_covariate_frame(200, 3, t=lambda r, n: r.weibull(k, n) * 365.0, e=lambda r, n: np.ones(n, int))
    rng = np.random.default_rng(4)
    params = two_covariate_params(rng, {"mu": draws(rng, -0.5), "beta": draws(rng, [0.4, 0.6]),
                                        "log_shape": np.full(N_DRAWS, np.log(k)), "shape": np.full(N_DRAWS, k)})
    return make_generator(spec, df, params), df, k


# ---------------------------------------------------------------------- twins
def test_normal_link_shift_is_the_exact_twin_difference(normal_gen):
    """Common random numbers: y_treated - y_control is the effect, for every patient."""
    gen, df = normal_gen
    out = gen.counterfactual(df, TreatmentEffect(kind="link_shift", value=2.0), seed=5)
    diff = out["y_treated"].to_numpy() - out["y_control"].to_numpy()
    # exact up to rounding of y_mean + y_sd * eta with |y| ~ 100 (ulp ~ 1.4e-14)
    np.testing.assert_allclose(diff, 2.0, rtol=0, atol=1e-10)
    assert out["y_control"].std() > 1.0  # the shared noise is really there
    np.testing.assert_array_equal(out["effect_link"], 2.0)
    # same seed, same twins (bit for bit)
    assert out.equals(gen.counterfactual(df, TreatmentEffect(kind="link_shift", value=2.0), seed=5))


def test_weibull_hazard_ratio_scales_every_time_by_hr_to_the_minus_one_over_k(weibull_gen):
    """PH with shared Exp(1) noise: t_treated / t_control = HR^(-1/k), no event lost."""
    gen, df, k = weibull_gen
    out = gen.counterfactual(df, TreatmentEffect(kind="hazard_ratio", value=0.5), seed=6)
    ratio = out["t_treated"].to_numpy() / out["t_control"].to_numpy()
    # t = (E e^-eta)^(1/k): the ratio is exp(-log(0.5)/k); rounding of exp/pow only
    np.testing.assert_allclose(ratio, 0.5 ** (-1 / k), rtol=1e-12)
    assert (out["e_control"] == 1).all() and (out["e_treated"] == 1).all()  # follow-up 1e12 never binds
    np.testing.assert_allclose(out["effect_link"], np.log(0.5), rtol=1e-15)


def test_emax_effect_link_follows_the_dose_response(normal_gen):
    """effect_link = e0 + emax d^h / (ed50^h + d^h) of each patient's dose."""
    gen, df = normal_gen
    df = df.assign(dose=np.linspace(0.0, 40.0, len(df)))
    effect = TreatmentEffect(kind="emax", e0=0.1, emax=-1.2, ed50=5.0, hill=2.0)
    out = gen.counterfactual(df, effect, seed=7)
    d = df["dose"].to_numpy()
    expected = 0.1 - 1.2 * d**2 / (5.0**2 + d**2)
    np.testing.assert_allclose(out["effect_link"], expected, rtol=1e-14, atol=1e-15)  # same formula, rounding only
    assert out["effect_link"].iloc[0] == 0.1  # dose 0 gives e0
    # normal outcome: the effect is in outcome units, so it is also the twin difference
    np.testing.assert_allclose(out["y_treated"] - out["y_control"], expected, rtol=0, atol=1e-10)


def test_effect_modifiers_centre_continuous_at_the_fitting_mean(normal_gen):
    """A continuous modifier adds m (x - mean of x in the FITTING data); binary adds m * 1[level 2]."""
    gen, fit_df = normal_gen
    new = two_covariate_frame(50, 8)  # other patients: their own mean of x must not be used
    effect = TreatmentEffect(kind="link_shift", value=0.5, modifiers={"x": 0.03, "g": -0.2})
    out = gen.counterfactual(new, effect, seed=9)
    expected = 0.5 + 0.03 * (new["x"] - fit_df["x"].mean()) - 0.2 * (new["g"] == "b")
    np.testing.assert_allclose(out["effect_link"], expected, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="not a covariate"):
        gen.individual_effect(new, TreatmentEffect(kind="link_shift", value=0.5, modifiers={"age": 1.0}))


# ---------------------------------------------------------------------- prognostic score
def hand_design(fit_df: pd.DataFrame, df: pd.DataFrame) -> np.ndarray:
    """Design of `two_covariate_spec` written out: standardised x (fitting mean/sd), 1[g == b]."""
    z = (df["x"] - fit_df["x"].mean()) / fit_df["x"].std(ddof=1)
    return np.column_stack([z, (df["g"] == "b").astype(float)])


def test_prognostic_score_normal_is_the_posterior_mean_outcome(normal_gen):
    gen, df = normal_gen
    D = hand_design(df, df)
    P = gen.params
    y_mean, y_sd = df["y"].mean(), df["y"].std(ddof=1)
    expected = y_mean + y_sd * (P["mu"].mean() + D @ P["beta"].mean(axis=0))
    # linear in the parameters, so the posterior-mean plug-in is exact; rounding only
    np.testing.assert_allclose(gen.prognostic_score(df), expected, rtol=1e-12)


def test_prognostic_score_bernoulli_averages_probabilities_over_draws():
    """No study hierarchy: mean over draws of expit(mu + D beta), not expit of the mean."""
    spec = two_covariate_spec({"family": "bernoulli", "column": "r"})
    df = two_covariate_frame(400, 10, r=lambda r, n: (r.random(n) < 0.3).astype(int))
    rng = np.random.default_rng(11)
    params = two_covariate_params(rng, {"mu": draws(rng, -0.8, 0.6), "beta": draws(rng, [1.0, -0.7], 0.6)})
    gen = make_generator(spec, df, params)
    assert not gen.hierarchical
    D = hand_design(df, df)
    expected = special.expit(params["mu"][None, :] + D @ params["beta"].T).mean(axis=1)
    np.testing.assert_allclose(gen.prognostic_score(df), expected, rtol=1e-12)  # rounding only
    # the draws are spread widely enough that averaging order matters (the test can fail)
    plug_in = special.expit(params["mu"].mean() + D @ params["beta"].mean(axis=0))
    assert np.abs(expected - plug_in).max() > 1e-3


# ---------------------------------------------------------------------- save / load
def rich_generator() -> tuple[Generator, pd.DataFrame]:
    """Every covariate type and transform, a study hierarchy and a frailty survival outcome."""
    spec = GeneratorSpec.from_dict({
        "covariates": [
            {"name": "age", "type": "continuous", "range": [18, 100]},
            {"name": "sex", "type": "binary", "levels": ["F", "M"]},
            {"name": "size", "type": "continuous", "transform": "log", "range": [1, 200]},
            {"name": "stage", "type": "categorical", "levels": ["I", "II", "III"]},
            {"name": "visits", "type": "count"},
            {"name": "lab", "type": "continuous", "transform": "quantile"},
        ],
        "outcome": {"family": "piecewise_exponential", "time": "t", "event": "e", "frailty": True,
                    "intervals": 3, "censoring": {"dropout_rate": 0.0005}},
        "study": "site",
        "id": "pid",
    })
    rng = np.random.default_rng(12)
    n = 300
    df = pd.DataFrame({
        "pid": np.arange(n),
        "site": rng.choice(["s1", "s2", "s3"], n),
        "age": rng.normal(60, 9, n).round(),
        "sex": rng.choice(["F", "M"], n),
        "size": rng.lognormal(3.0, 0.5, n).clip(1, 200),
        "stage": rng.choice(["I", "II", "III"], n),
        "visits": rng.poisson(3.0, n),
        "lab": np.where(rng.random(n) < 0.3, 0.0, rng.gamma(2.0, 10.0, n)),
        "t": rng.exponential(700.0, n),
        "e": (rng.random(n) < 0.6).astype(int),
    })
    # covariate j's coefficients act on the design columns of covariates < j (1+1+1+2+1 = 6)
    params = {
        "cov_age_intercept": draws(rng, 0.0), "cov_age_coef": np.zeros((N_DRAWS, 0)),
        "cov_age_sigma": draws(rng, 1.0, 0.02),
        "cov_sex_intercept": draws(rng, 0.1), "cov_sex_coef": draws(rng, [0.2]),
        "cov_size_intercept": draws(rng, 0.0), "cov_size_coef": draws(rng, [0.1, -0.2]),
        "cov_size_sigma": draws(rng, 0.9, 0.02),
        "cov_stage_intercept": draws(rng, [0.3, -0.5]), "cov_stage_coef": draws(rng, np.full((3, 2), 0.2)),
        "cov_visits_intercept": draws(rng, np.log(3.0)), "cov_visits_coef": draws(rng, [0.0, 0.1, 0.1, 0.2, 0.0]),
        "cov_visits_phi": draws(rng, 5.0, 0.5),
        "cov_lab_intercept": draws(rng, 0.0), "cov_lab_coef": draws(rng, np.full(6, 0.05)),
        "cov_lab_sigma": draws(rng, 1.0, 0.02),
        "mu": draws(rng, -0.3), "tau": np.abs(draws(rng, 0.3)), "study_z": draws(rng, [0.5, -1.0, 0.2], 0.3),
        "beta": draws(rng, np.full(7, 0.1)),
        "baseline_steps": draws(rng, [0.2, -0.1]), "log_baseline": draws(rng, [0.0, 0.1, 0.05], 0.05),
        "frailty_var": np.abs(draws(rng, 0.5)),
    }
    return make_generator(spec, df, params), df


def test_save_load_round_trip_gives_bit_identical_cohorts(tmp_path):
    gen, df = rich_generator()
    before = gen.sample_cohort(500, seed=13, parameter_draws=4)
    path = gen.save(tmp_path / "gen")
    loaded = Generator.load(path)
    after = loaded.sample_cohort(500, seed=13, parameter_draws=4)
    assert before.equals(after)  # values and dtypes, bit for bit
    assert list(before.columns) == ["pid", "site", "age", "sex", "size", "stage", "visits", "lab", "t", "e"]
    assert loaded.spec == gen.spec and loaded.encoders == gen.encoders
    # JSON has no tuples (encoder ranges come back as lists); otherwise the meta is unchanged
    assert loaded.meta == json.loads(json.dumps(gen.meta, default=list))
    for name, v in gen.params.items():
        np.testing.assert_array_equal(loaded.params[name], v)
    # a fitted study as well as a new one, and the twins, survive the round trip too
    assert gen.sample_cohort(50, seed=1, study="s2").equals(loaded.sample_cohort(50, seed=1, study="s2"))
    effect = TreatmentEffect(kind="hazard_ratio", value=0.7)
    assert gen.counterfactual(df, effect, seed=2).equals(loaded.counterfactual(df, effect, seed=2))


def test_editing_the_saved_spec_is_refused(tmp_path):
    gen, _ = rich_generator()
    path = gen.save(tmp_path / "gen")
    spec_file = path / SPEC_FILE
    text = spec_file.read_text()
    assert "coefficient_sd: 1.0" in text
    spec_file.write_text(text.replace("coefficient_sd: 1.0", "coefficient_sd: 2.0"))  # still a valid spec
    with pytest.raises(GeneratorLoadError, match="does not match the posterior"):
        Generator.load(path)


@pytest.mark.parametrize("missing", [SPEC_FILE, POSTERIOR_FILE, META_FILE])
def test_an_incomplete_saved_generator_is_refused(tmp_path, normal_gen, missing):
    gen, _ = normal_gen
    path = gen.save(tmp_path / "gen")
    (path / missing).unlink()
    with pytest.raises(GeneratorLoadError, match=f"{missing} is missing"):
        Generator.load(path)
