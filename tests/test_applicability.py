"""Applicability of a validated generator to the context-of-use population.

Closed forms used (reference N(0, I₃), n = 2000; target n = 2000):
- Mahalanobis depth: for a target drawn like the reference, d² ~ χ²₃, so the share below
  the reference's 99% quantile is 0.99; for a target shifted by 3 sd in each coordinate,
  d² ~ noncentral χ²₃(λ = 27) and the share is ncx2.cdf(χ²₃,₀.₉₉, 3, 27) = 0.0193.
  Estimated mean, covariance and threshold add noise: measured sd over 30 seeds 0.0033
  (same population) and 0.0047 (shifted); bands 0.013 and 0.02 are ≈ 4 sd.
- ranges: given the reference sample's min/max, a target row N(3, 1) per coordinate is
  inside with probability ∏ⱼ [Φ(maxⱼ − 3) − Φ(minⱼ − 3)]; binomial band 4 sd.
- propensity: the target-vs-reference score is monotone in the projection on (1, 1, 1),
  on which the groups are 3√3 sd apart, so the share of the target below the reference's
  99th percentile is Φ(2.326 − 5.196) = 0.0021 (measured 0.0018, sd 0.0011); bound 0.01.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from insilico.validation.applicability import (
    applicability,
    covariate_support,
    extrapolated_subgroups,
    mahalanobis_sq,
)

COLS = {"a": "continuous", "b": "continuous", "c": "continuous", "sex": "binary", "stage": "categorical"}
CONT = {"a": "continuous", "b": "continuous", "c": "continuous"}
N = 2000


def draw(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    df = pd.DataFrame(rng.normal(shift, 1.0, (n, 3)), columns=["a", "b", "c"])
    df["sex"] = rng.choice(["F", "M"], n)
    df["stage"] = rng.choice(["I", "II", "III"], n, p=[0.5, 0.3, 0.2])
    return df


@pytest.fixture(scope="module")
def reference():
    return draw(N, np.random.default_rng(42))


def test_target_equal_to_reference_is_inside(reference):
    m = applicability(reference, reference, COLS, seed=0)
    assert m["share_in_ranges"] == 1.0
    # 1980 of 2000 distinct distances lie at or below their own linear-interpolated 99% quantile
    assert abs(m["share_in_mahalanobis_support"] - 0.99) <= 1 / N
    # identical rows get identical propensities; the 1st-99th percentile range holds >= 98%
    assert m["propensity_overlap"] >= 0.98
    assert (m["per_covariate"]["share_outside"] == 0).all()
    assert extrapolated_subgroups(reference, reference, COLS) == []


def test_mahalanobis_kernel_matches_scipy_and_chi2():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(N, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]])
    x = rng.normal(size=(50, 3))
    vi = np.linalg.inv(np.cov(ref, rowvar=False))
    want = cdist(x, ref.mean(axis=0)[None, :], "mahalanobis", VI=vi)[:, 0] ** 2
    np.testing.assert_allclose(mahalanobis_sq(x, ref), want, rtol=1e-10)
    # a collinear copy of a column changes nothing (pseudo-inverse drops the null direction)
    ref4, x4 = np.column_stack([ref, ref[:, 0] + ref[:, 1]]), np.column_stack([x, x[:, 0] + x[:, 1]])
    np.testing.assert_allclose(mahalanobis_sq(x4, ref4), want, rtol=1e-8)


def test_mahalanobis_support_closed_forms():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame(rng.normal(size=(N, 3)), columns=["a", "b", "c"])
    same = pd.DataFrame(rng.normal(size=(N, 3)), columns=["a", "b", "c"])
    shifted = pd.DataFrame(rng.normal(3.0, 1.0, (N, 3)), columns=["a", "b", "c"])
    assert abs(applicability(same, ref, CONT, seed=0)["share_in_mahalanobis_support"] - 0.99) < 0.013
    expected = stats.ncx2.cdf(stats.chi2.ppf(0.99, 3), 3, 27)  # 0.0193
    m = applicability(shifted, ref, CONT, seed=0)
    assert abs(m["share_in_mahalanobis_support"] - expected) < 0.02
    # threshold is the reference's own 99% quantile of d^2 (chi2_3: 11.34, sd ~0.5)
    assert abs(m["mahalanobis_threshold"] - stats.chi2.ppf(0.99, 3)) < 2.0


def test_target_shifted_by_3_sd_is_outside_and_flagged(reference):
    target = draw(N, np.random.default_rng(3), shift=3.0)
    m = applicability(target, reference, COLS, seed=0)
    lo, hi = reference[["a", "b", "c"]].min(), reference[["a", "b", "c"]].max()
    p_in = float(np.prod(stats.norm.cdf(hi - 3) - stats.norm.cdf(lo - 3)))
    assert abs(m["share_in_ranges"] - p_in) < 4 * np.sqrt(p_in * (1 - p_in) / N)
    assert m["share_in_mahalanobis_support"] < 0.05
    assert m["propensity_overlap"] < 0.01

    flags = {f["covariate"]: f for f in extrapolated_subgroups(target, reference, COLS)}
    assert set(flags) == {"a", "b", "c"}  # levels unchanged: only the numeric covariates
    for c in "abc":
        p_out = 1 - stats.norm.cdf(hi[c] - 3) + stats.norm.cdf(lo[c] - 3)
        assert flags[c]["kind"] == "outside_range"
        assert abs(flags[c]["share"] - p_out) < 4 * np.sqrt(p_out * (1 - p_out) / N)
        assert flags[c]["share"] == pytest.approx(m["per_covariate"].loc[c, "share_outside_range"])
        assert c in flags[c]["message"]


def test_new_and_rare_levels_are_flagged(reference):
    rng = np.random.default_rng(4)
    extra = reference.iloc[:100].copy()
    extra["stage"] = "IV"
    target = pd.concat([reference.iloc[:1000], extra], ignore_index=True)
    m = applicability(target, reference, COLS, seed=0)
    assert m["share_in_ranges"] == pytest.approx(1000 / 1100, abs=1e-15)  # numbers copied: in range
    row = m["per_covariate"].loc["stage"]
    assert row["unseen_levels"] == "IV" and row["share_unseen_levels"] == pytest.approx(100 / 1100)
    flags = extrapolated_subgroups(target, reference, COLS)
    assert [(f["covariate"], f["kind"], f["level"]) for f in flags] == [("stage", "unseen_level", "IV")]
    assert flags[0]["share"] == pytest.approx(100 / 1100) and flags[0]["reference_share"] == 0.0

    # a level that is 10 of 2000 = 0.5% of the reference is rare (< 1%), not unseen
    ref_rare = reference.copy()
    ref_rare.loc[rng.choice(N, 10, replace=False), "stage"] = "IV"
    flags = extrapolated_subgroups(target, ref_rare, COLS)
    assert [(f["kind"], f["level"], f["reference_share"]) for f in flags] == [("rare_level", "IV", 0.005)]
    assert extrapolated_subgroups(target, ref_rare, COLS, rare_share=0.005) == []


def test_per_covariate_by_hand():
    cols = {"age": "continuous", "sex": "binary"}
    ref = pd.DataFrame({"age": [40.0, 50.0, 60.0], "sex": [0, 1, 1]})
    # CSV round trip: 1.0 and True are the level 1 of the reference
    tgt = pd.DataFrame({"age": [35.0, 45.0, 65.0, 70.0], "sex": [1.0, True, 0, 1]})
    t = covariate_support(tgt, ref, cols)
    assert t.loc["age", ["share_below_min", "share_above_max", "share_outside_range"]].tolist() == [0.25, 0.5, 0.75]
    assert t.loc["sex", "share_unseen_levels"] == 0.0
    assert applicability(tgt, ref, cols, seed=0)["share_in_ranges"] == 0.25
    flags = extrapolated_subgroups(tgt, ref, cols)
    assert [(f["covariate"], f["share"]) for f in flags] == [("age", 0.75)]
    # min_share: 1 of 100 outside is not flagged at 5%, is at 1%
    tgt100 = pd.DataFrame({"age": [45.0] * 99 + [80.0], "sex": [1] * 100})
    assert extrapolated_subgroups(tgt100, ref, cols) == []
    assert [f["share"] for f in extrapolated_subgroups(tgt100, ref, cols, min_share=0.01)] == [0.01]


def test_bad_input_is_named():
    ref = pd.DataFrame({"age": [40.0, 50.0, 60.0]})
    with pytest.raises(ValueError, match="depth_quantile"):
        applicability(ref, ref, {"age": "continuous"}, seed=0, depth_quantile=1.0)
    with pytest.raises(ValueError, match="target lacks.*'weight'"):
        applicability(ref, ref.assign(weight=1.0), {"age": "continuous", "weight": "continuous"}, seed=0)
    with pytest.raises(ValueError, match="'age'"):
        extrapolated_subgroups(pd.DataFrame({"age": ["old"]}), ref, {"age": "continuous"})
    with pytest.raises(ValueError, match="min_share"):
        extrapolated_subgroups(ref, ref, {"age": "continuous"}, min_share=2)
