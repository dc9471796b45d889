"""Privacy of released synthetic cohorts: DCR, share closer to train, exact copies,
membership inference, and the release gate that refuses to write a failing cohort.

Null bands (independent draws, n_synthetic = n_train = n_holdout = 1000):
- share_closer_to_train: each synthetic row is nearer to train or to holdout with
  probability ½ by exchangeability, sd = sqrt(0.25 / 1000) = 0.0158; measured over 40
  seeds 0.0161 (the shared reference sets barely correlate the rows). Band ±0.065 ≈ 4 sd.
- membership AUC: Mann-Whitney null sd = sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.0129
  (measured 0.0115). Band ±0.052 = 4 sd.
- dcr_ratio: a ratio of two medians of 1000 DCRs; measured sd over 40 seeds 0.017.
  Band ±0.08 ≈ 4.5 sd.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.spatial.distance import cdist

from insilico.validation.privacy import (
    PrivacyGateError,
    ReleaseLimits,
    distance_to_closest_record,
    exact_copies,
    export_cohort,
    fit_scaler,
    privacy_metrics,
    release_gate,
)

COLS = {"age": "continuous", "bmi": "continuous", "ldl": "continuous", "n_prior": "count",
        "sex": "binary", "stage": "categorical"}


def draw(n: int, rng: np.random.Generator, rounded: bool = False) -> pd.DataFrame:
    df = pd.DataFrame({"age": rng.normal(60, 10, n), "bmi": rng.normal(27, 4, n), "ldl": rng.normal(3, 1, n),
                       "n_prior": rng.poisson(3, n), "sex": rng.choice(["F", "M"], n),
                       "stage": rng.choice(["I", "II", "III"], n, p=[0.5, 0.3, 0.2])})
    if rounded:  # as recorded: whole years, one decimal of BMI, two of LDL
        df["age"], df["bmi"], df["ldl"] = df["age"].round(0), df["bmi"].round(1), df["ldl"].round(2)
    return df


# ---------------------------------------------------------------------- DCR
HAND_COLS = {"age": "continuous", "sex": "binary", "stage": "categorical"}
TRAIN6 = pd.DataFrame({"age": [50.0, 60.0, 70.0], "sex": ["F", "M", "F"], "stage": ["I", "II", "III"]})
QUERY6 = pd.DataFrame({"age": [55.0, 72.0, 60.0], "sex": ["M", "F", "M"], "stage": ["I", "III", "IV"]})


def test_dcr_matches_hand_computation_and_brute_force():
    scaler = fit_scaler(TRAIN6, HAND_COLS, QUERY6)
    d = distance_to_closest_record(QUERY6, TRAIN6, HAND_COLS, scaler)
    # by hand: age z = (age - 60) / 10 (training mean, sample sd); a sex or stage
    # mismatch adds 1 to the squared distance.
    # q1 (-0.5, M, I): to t1 0.25 + 1 + 0, to t2 0.25 + 0 + 1, to t3 2.25 + 1 + 1 -> sqrt(1.25)
    # q2 (1.2, F, III): to t3 0.04 + 0 + 0 -> 0.2;  q3 (0, M, IV): to t2 0 + 0 + 1 -> 1
    np.testing.assert_allclose(d, [np.sqrt(1.25), 0.2, 1.0], rtol=1e-12)

    # brute force: every pairwise distance with numpy/scipy on features built by hand
    def feats(df):
        stage = np.stack([(df["stage"] == s).to_numpy(float) for s in ["I", "II", "III", "IV"]], axis=1)
        return np.column_stack([(df["age"] - 60) / 10, (df["sex"] == "M").to_numpy(float), stage / np.sqrt(2)])
    brute = cdist(feats(QUERY6), feats(TRAIN6)).min(axis=1)
    np.testing.assert_allclose(d, brute, rtol=1e-12)


def test_dcr_on_2000_rows_matches_brute_force_and_zero_sd_is_safe():
    rng = np.random.default_rng(7)
    train, query = draw(2000, rng), draw(2000, rng)
    train["site"] = 1.0  # constant in training data: sd 0 falls back to 1
    query["site"] = 1.0
    cols = COLS | {"site": "continuous"}
    d = distance_to_closest_record(query, train, cols, fit_scaler(train, cols, query))

    def feats(df):
        num = [(df[c] - train[c].mean()) / train[c].std() for c in ["age", "bmi", "ldl", "n_prior"]]
        stage = [(df["stage"] == s).to_numpy(float) / np.sqrt(2) for s in ["I", "II", "III"]]
        return np.column_stack(num + [(df["sex"] == "M").to_numpy(float)] + stage + [df["site"] - 1.0])
    np.testing.assert_allclose(d, cdist(feats(query), feats(train)).min(axis=1), rtol=1e-10, atol=1e-12)


def test_bad_input_names_the_column():
    bad = QUERY6.copy()
    bad.loc[1, "age"] = np.nan
    with pytest.raises(ValueError, match="'age'"):
        distance_to_closest_record(bad, TRAIN6, HAND_COLS)
    with pytest.raises(ValueError, match="stage"):
        distance_to_closest_record(QUERY6.drop(columns="stage"), TRAIN6, HAND_COLS)
    with pytest.raises(ValueError, match="'age'.*'ordinal'"):
        distance_to_closest_record(QUERY6, TRAIN6, {"age": "ordinal"})


# ---------------------------------------------------------------------- exact copies and the gate
def copying_cohort(rng):
    train = draw(500, rng, rounded=True)
    synth = pd.concat([draw(480, rng), train.sample(20, random_state=3)], ignore_index=True)
    # copies as a generator would emit them: float noise below the recorded resolution,
    # counts as floats, levels as a categorical dtype
    synth.loc[480:, "age"] += 1e-7
    synth["n_prior"] = synth["n_prior"].astype(float)
    synth["sex"] = synth["sex"].astype("category")
    return synth, train, draw(500, rng, rounded=True)


def test_copied_rows_are_counted_and_the_gate_writes_nothing(tmp_path):
    synth, train, holdout = copying_cohort(np.random.default_rng(11))
    flags = exact_copies(synth, train, COLS)
    assert flags.sum() == 20 and flags[480:].all()  # exactly the copied rows, none of the 480 draws
    m = privacy_metrics(synth, train, holdout, COLS, seed=1)
    assert m["exact_copies"] == 20
    assert m["exact_copy_share"] == pytest.approx(20 / 500, abs=0)
    assert (m["n_synthetic"], m["n_train"], m["n_holdout"], m["n_compared"]) == (500, 500, 500, 500)

    assert m["holdout_exact_copies"] == 0 and m["exact_copy_excess"] == pytest.approx(20 / 500, abs=0)
    reasons = release_gate(m, ReleaseLimits())
    assert any(r.startswith("exact copies of training records: 20 synthetic rows (4.0%), 4.0% beyond") for r in reasons)
    out = tmp_path / "cohort.csv"
    with pytest.raises(PrivacyGateError) as err:
        export_cohort(synth, out, m, ReleaseLimits())
    assert err.value.reasons == reasons and "20 synthetic rows" in str(err.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # not even a temporary file

    # a copy that differs by one recorded unit is not an exact copy
    shifted = synth.copy()
    shifted.loc[480:, "age"] += 1.0
    assert exact_copies(shifted, train, COLS).sum() == 0
    # an allowance of 4% excess copies lets this cohort's copies through; an absolute cap of 19 does not
    assert not any(r.startswith("exact") for r in release_gate(m, ReleaseLimits(max_exact_copy_excess=0.04)))
    assert any(r.startswith("exact_copies = 20 > max_exact_copies = 19")
               for r in release_gate(m, ReleaseLimits(max_exact_copy_excess=0.04, max_exact_copies=19)))


def test_chance_coincidences_of_real_patients_are_not_copies():
    """On coarse data real held-out patients match training records too: only the excess counts."""
    rng = np.random.default_rng(3)
    coarse = lambda n: pd.DataFrame({"a": rng.integers(0, 3, n).astype(float), "b": rng.integers(0, 2, n)})  # noqa: E731
    cols = {"a": "count", "b": "binary"}
    synth, train, holdout = coarse(300), coarse(300), coarse(300)
    m = privacy_metrics(synth, train, holdout, cols, seed=0)
    # 6 cells, all present in 300 training rows: every row of every table is a "copy"
    assert m["exact_copy_share"] == 1.0 and m["holdout_copy_share"] == 1.0 and m["exact_copy_excess"] == 0.0
    assert not any(r.startswith("exact") for r in release_gate(m, ReleaseLimits()))


def test_independent_draws_show_no_leak_and_are_exported(tmp_path):
    rng = np.random.default_rng(2026)
    synth, train, holdout = draw(1000, rng), draw(1000, rng), draw(1000, rng)
    m = privacy_metrics(synth, train, holdout, COLS, seed=5)
    assert abs(m["share_closer_to_train"] - 0.5) < 0.065  # 4 sd binomial band (module docstring)
    assert abs(m["membership_inference_auc"] - 0.5) < 0.052  # 4 sd Mann-Whitney null band
    assert abs(m["dcr_ratio"] - 1.0) < 0.08
    assert m["exact_copies"] == 0
    assert m["dcr_ratio"] == pytest.approx(m["dcr_synthetic_train_median"] / m["dcr_holdout_train_median"])
    # the medians against the brute-force DCR
    scaler = fit_scaler(train, COLS, synth, holdout)
    assert m["dcr_synthetic_train_median"] == pytest.approx(
        np.median(distance_to_closest_record(synth, train, COLS, scaler)), rel=1e-12)

    assert release_gate(m, ReleaseLimits()) == []
    out = export_cohort(synth, tmp_path / "cohort.csv", m)
    assert list(tmp_path.iterdir()) == [out]
    back = pd.read_csv(out)
    pd.testing.assert_frame_equal(back, synth, check_exact=False, rtol=1e-15)


def test_memorising_cohort_is_caught():
    rng = np.random.default_rng(3)
    train, holdout = draw(1000, rng), draw(1000, rng)
    synth = train.copy()
    for c, sd in [("age", 10), ("bmi", 4), ("ldl", 1)]:
        synth[c] += rng.normal(0, 0.01 * sd, len(synth))  # 1% of an sd: not a copy, but a twin
    m = privacy_metrics(synth, train, holdout, COLS, seed=0)
    # a member's nearest synthetic row is its own twin at ~0.017 sd; a non-member's is a
    # stranger at the typical holdout-to-train distance (median ~0.67 sd here)
    assert m["membership_inference_auc"] > 0.8
    assert m["share_closer_to_train"] > 0.95
    assert m["dcr_ratio"] < 0.2 < m["dcr_holdout_train_median"]
    assert m["exact_copies"] == 0  # the noise is above the full-precision resolution
    reasons = release_gate(m, ReleaseLimits())
    assert [r.split(" ")[0] for r in reasons] == ["share_closer_to_train", "membership_inference_auc", "dcr_ratio"]


def test_share_closer_subsamples_the_larger_set_to_equal_size():
    rng = np.random.default_rng(4)
    synth, train, holdout = draw(400, rng), draw(1200, rng), draw(300, rng)
    m = privacy_metrics(synth, train, holdout, COLS, seed=9)
    assert m["n_compared"] == 300 and (m["n_train"], m["n_holdout"]) == (1200, 300)
    # without subsampling, the nearest of the 1500 pooled rows would be a train row with
    # probability 1200 / 1500 = 0.8; with it the null band is 4 * sqrt(0.25 / 400) = 0.1
    assert abs(m["share_closer_to_train"] - 0.5) < 0.1
    assert m == privacy_metrics(synth, train, holdout, COLS, seed=9)  # seeded


def test_discrete_ties_count_half():
    # all-discrete data: every synthetic row equals some train and some holdout row, so the
    # DCRs tie at 0; ties count 1/2 and 0/0 medians give a ratio of 1
    cols = {"sex": "binary", "stage": "categorical"}
    rng = np.random.default_rng(0)
    train, holdout, synth = (pd.DataFrame({"sex": rng.choice(["F", "M"], 200),
                                           "stage": rng.choice(["I", "II"], 200)}) for _ in range(3))
    m = privacy_metrics(synth, train, holdout, cols, seed=0)
    assert m["share_closer_to_train"] == 0.5 and m["dcr_ratio"] == 1.0
    assert m["membership_inference_auc"] == 0.5


# ---------------------------------------------------------------------- limits, gate, atomic write
def test_limits_forbid_unknown_fields_and_gate_needs_its_metrics():
    with pytest.raises(ValidationError):
        ReleaseLimits(max_exact_copy=1)
    with pytest.raises(ValidationError):
        ReleaseLimits(max_membership_auc=1.5)
    with pytest.raises(ValueError, match="dcr_ratio"):
        release_gate({"exact_copies": 0, "share_closer_to_train": 0.5, "membership_inference_auc": 0.5})
    ok = {"exact_copies": 0, "exact_copy_share": 0.0, "holdout_copy_share": 0.0, "exact_copy_excess": 0.0,
          "share_closer_to_train": 0.5, "membership_inference_auc": 0.5, "dcr_ratio": 1.0}
    assert release_gate(ok) == []
    assert release_gate(ok | {"dcr_ratio": float("nan")})[0].startswith("dcr_ratio is not a number")
    # limits are inclusive: a value on the limit passes
    assert release_gate(ok | {"share_closer_to_train": 0.6, "membership_inference_auc": 0.6, "dcr_ratio": 0.8}) == []


def test_metrics_of_another_cohort_are_refused(tmp_path):
    ok = {"exact_copies": 0, "exact_copy_share": 0.0, "holdout_copy_share": 0.0, "exact_copy_excess": 0.0,
          "share_closer_to_train": 0.5, "membership_inference_auc": 0.5, "dcr_ratio": 1.0,
          "n_synthetic": 10}
    with pytest.raises(PrivacyGateError, match="another cohort"):
        export_cohort(TRAIN6, tmp_path / "x.csv", ok)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    ok = {"exact_copies": 0, "exact_copy_share": 0.0, "holdout_copy_share": 0.0, "exact_copy_excess": 0.0,
          "share_closer_to_train": 0.5, "membership_inference_auc": 0.5, "dcr_ratio": 1.0}
    out = tmp_path / "cohort.csv"

    def half_then_fail(self, target, **kw):  # half a file written, then the disk fills up
        with open(target, "w") as fh:
            fh.write("age,sex\n50,")
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_cohort(TRAIN6, out, ok)
    assert list(tmp_path.iterdir()) == []


def test_a_cohort_whose_outcomes_alone_leak_is_caught_on_what_is_released(tmp_path):
    """Coarse covariates (sex × stage: six combinations, all in the training data) are not
    identifying: every synthetic and every held-out row matches some training row, so on the
    covariates alone the gate passes. But each synthetic row carries a training patient's
    exact follow-up time and event. The check measures the columns a cohort releases —
    covariates *and* outcome (`insilico.checks.generator.released_columns`) — and there the
    copies show: about 1/6 of synthetic rows equal their donor's record, held-out rows never."""
    from insilico.checks.generator import released_columns
    from insilico.virtual_patients.spec import GeneratorSpec

    spec = GeneratorSpec.from_dict({
        "covariates": [{"name": "sex", "type": "binary"}, {"name": "stage", "type": "categorical"}],
        "outcome": {"family": "weibull", "time": "time", "event": "event"}})
    rng = np.random.default_rng(11)

    def patients(n):
        return pd.DataFrame({"sex": rng.choice(["F", "M"], n), "stage": rng.choice(["I", "II", "III"], n),
                             "time": rng.weibull(1.3, n) * 5.0, "event": rng.integers(0, 2, n)})

    train, holdout = patients(1000), patients(1000)
    donors = rng.integers(0, len(train), 1000)
    synthetic = patients(1000)  # fresh covariates...
    synthetic[["time", "event"]] = train[["time", "event"]].to_numpy()[donors]  # ...a real patient's outcome

    covariates = {c.name: c.type.value for c in spec.covariates}
    assert release_gate(privacy_metrics(synthetic, train, holdout, covariates, seed=1)) == []

    released, left_out = released_columns(spec, train, holdout)
    assert released == {"sex": "binary", "stage": "categorical", "time": "continuous", "event": "binary"}
    assert left_out == []
    m = privacy_metrics(synthetic, train, holdout, released, seed=1)
    # a donor's covariates coincide with its recipient's with probability ~ sum p^2 = 1/6
    assert m["holdout_copy_share"] == 0.0 and abs(m["exact_copy_share"] - 1 / 6) < 4 * np.sqrt(1 / 6 * 5 / 6 / 1000)
    reasons = release_gate(m)
    assert any("exact copies" in r for r in reasons)
    with pytest.raises(PrivacyGateError):
        export_cohort(synthetic, tmp_path / "cohort.csv", m)
    assert not (tmp_path / "cohort.csv").exists()

    # a comparator without outcome columns: the outcome is left out, and named
    assert released_columns(spec, train, holdout.drop(columns=["time", "event"]))[1] == ["time", "event"]
