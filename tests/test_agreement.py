"""Twin-vs-observed agreement: hand-worked examples, scipy/sklearn references, a Monte
Carlo coverage check of the Bland-Altman limit CIs, and the CSV join's errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score

from insilico.validation.agreement import (
    binary_agreement,
    continuous_agreement,
    read_twin_pair,
    wilson_interval,
)


def test_continuous_agreement_hand_example():
    # observed 1..5, predicted 1.5 2 2.5 4.5 6: d = 0.5 0 -0.5 0.5 1, bias 0.3,
    # squared deviations .04 .09 .64 .04 .49 -> sd = sqrt(1.3/4) = 0.570088;
    # limits 0.3 -/+ 1.959964 sd; se of a limit = sd sqrt(3/5), CI with t_{0.975,4} = 2.776445;
    # MAE = 2.5/5 = 0.5, RMSE = sqrt(1.75/5).
    y = np.array([1, 2, 3, 4, 5.0])
    p = np.array([1.5, 2, 2.5, 4.5, 6])
    a = continuous_agreement(y, p)
    sd = np.sqrt(1.3 / 4)
    assert a["n"] == 5 and a["bias"] == pytest.approx(0.3) and a["sd_difference"] == pytest.approx(sd)
    assert a["loa_lower"] == pytest.approx(0.3 - 1.959964 * sd, abs=1e-6)
    assert a["loa_upper"] == pytest.approx(0.3 + 1.959964 * sd, abs=1e-6)
    half = 2.776445 * sd * np.sqrt(3 / 5)
    assert a["loa_upper_ci"] == pytest.approx((a["loa_upper"] - half, a["loa_upper"] + half), abs=1e-6)
    assert a["loa_lower_ci"] == pytest.approx((a["loa_lower"] - half, a["loa_lower"] + half), abs=1e-6)
    assert a["bias_ci"] == pytest.approx((0.3 - 2.776445 * sd / np.sqrt(5), 0.3 + 2.776445 * sd / np.sqrt(5)), abs=1e-6)
    assert a["mae"] == pytest.approx(0.5) and a["rmse"] == pytest.approx(np.sqrt(0.35))
    assert a["pearson_r"] == pytest.approx(stats.pearsonr(y, p).statistic)
    ref = stats.linregress(p, y)
    assert a["calibration"]["slope"] == pytest.approx(ref.slope)
    assert a["calibration"]["intercept"] == pytest.approx(ref.intercept)
    np.testing.assert_allclose(a["plot"]["mean"], (y + p) / 2)
    np.testing.assert_allclose(a["plot"]["difference"], p - y)


def test_limit_of_agreement_ci_covers_the_true_limit():
    # d ~ N(0.3, 1): true upper limit 0.3 + 1.96. Over 1000 samples of n = 50 the
    # approximate 95% CI (Bland & Altman 1999) should cover it ~95% of the time
    # (binomial se 0.007; the approximation itself is good to ~0.5% at n = 50): band 0.93-0.97.
    rng = np.random.default_rng(0)
    target = 0.3 + stats.norm.ppf(0.975)
    hits = 0
    for _ in range(1000):
        y = rng.normal(size=50)
        a = continuous_agreement(y, y + rng.normal(0.3, 1, 50))
        hits += a["loa_upper_ci"][0] <= target <= a["loa_upper_ci"][1]
    assert 0.93 <= hits / 1000 <= 0.97


def test_binary_agreement_hand_example():
    # y 1 1 1 0 0 0 0 1, p .9 .7 .4 .6 .2 .1 .3 .8. At 0.5: TP 3 (p .9 .7 .8), FN 1 (.4),
    # FP 1 (.6), TN 3 -> sensitivity = specificity = PPV = NPV = 3/4.
    # AUC: of 16 positive-negative pairs only .4 < .6 is discordant -> 15/16.
    # Brier: (.01 + .09 + .36 + .36 + .04 + .01 + .09 + .04) / 8 = 0.125.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.7, 0.4, 0.6, 0.2, 0.1, 0.3, 0.8])
    b = binary_agreement(y, p, thresholds=(0.5, 0.75))
    assert b["auc"] == pytest.approx(15 / 16) == pytest.approx(roc_auc_score(y, p))
    assert b["brier"] == pytest.approx(0.125) == pytest.approx(brier_score_loss(y, p))
    t = b["thresholds"].set_index(["threshold", "measure"])
    lo, hi = stats.binomtest(3, 4).proportion_ci(0.95, method="wilson")
    for m in ("sensitivity", "specificity", "ppv", "npv"):
        row = t.loc[(0.5, m)]
        assert row["value"] == 0.75 and row["k"] == 3 and row["n"] == 4
        assert (row["ci_lower"], row["ci_upper"]) == pytest.approx((lo, hi))
    # at 0.75 only .9 and .8 are positive: sensitivity 2/4, specificity 4/4, PPV 2/2, NPV 4/6
    assert t.loc[(0.75, "sensitivity"), "value"] == 0.5 and t.loc[(0.75, "specificity"), "value"] == 1.0
    assert t.loc[(0.75, "ppv"), "value"] == 1.0 and t.loc[(0.75, "npv"), "value"] == pytest.approx(4 / 6)
    assert b["calibration"]["kind"] == "binary" and np.isfinite(b["calibration"]["slope"])


def test_wilson_interval_matches_scipy_and_edges():
    for k, n in [(0, 10), (8, 10), (10, 10), (37, 120)]:
        ref = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)
    # nothing predicted positive at threshold 1: PPV undefined, not 0
    b = binary_agreement([0, 1, 1, 0], [0.1, 0.4, 0.6, 0.2], thresholds=(1.0,))
    ppv = b["thresholds"].set_index("measure").loc["ppv"]
    assert ppv["n"] == 0 and np.isnan(ppv["value"]) and np.isnan(ppv["ci_lower"])


def test_binary_agreement_input_errors():
    with pytest.raises(ValueError, match="observed"):
        binary_agreement([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="predicted_probability"):
        binary_agreement([0, 1, 1], [0.1, 1.2, 0.3])
    with pytest.raises(ValueError, match="thresholds"):
        binary_agreement([0, 1, 1], [0.1, 0.2, 0.3], thresholds=(1.5,))


# ---------------------------------------------------------------------- CSV join
def _write(path, text):
    path.write_text(text)
    return path


def test_read_twin_pair_joins_by_id(tmp_path):
    pred = _write(tmp_path / "pred.csv", "id,pred\n007,1.5\nB,2.0\nC, 3.25\n")
    obs = _write(tmp_path / "obs.csv", "id,obs\nC,3\n007,1\nB,2.5\n")
    df = read_twin_pair(pred, obs)
    assert list(df.columns) == ["id", "predicted", "observed"]
    assert df["id"].tolist() == ["007", "B", "C"]  # ids stay strings: "007" is not 7
    assert df["predicted"].tolist() == [1.5, 2.0, 3.25]
    assert df["observed"].tolist() == [1.0, 2.5, 3.0]
    wide = _write(tmp_path / "wide.csv", "id,site,y\n007,x,1\nB,x,2\nC,y,3\n")
    df = read_twin_pair(pred, wide, value_column=("pred", "y"))
    assert df["observed"].tolist() == [1.0, 2.0, 3.0]


def test_read_twin_pair_errors(tmp_path):
    good = _write(tmp_path / "good.csv", "id,v\nA,1\nB,2\n")
    cases = {
        "no id column 'id'": "pid,v\nA,1\nB,2\n",
        "duplicated id": "id,v\nA,1\nA,2\n",
        "non-numeric": "id,v\nA,1\nB,two\n",
        "missing or non-numeric": "id,v\nA,1\nB,\n",
        "empty file": "",
        "no rows": "id,v\n",
        "one value column": "id,v,w\nA,1,1\nB,2,2\n",
    }
    for message, text in cases.items():
        bad = _write(tmp_path / "bad.csv", text)
        with pytest.raises(ValueError, match=message):
            read_twin_pair(good, bad)
    extra = _write(tmp_path / "extra.csv", "id,v\nA,1\nB,2\nC,3\nD,4\n")
    with pytest.raises(ValueError, match="2 id\\(s\\) only in the observations"):
        read_twin_pair(good, extra)
    with pytest.raises(ValueError, match="2 id\\(s\\) only in the predictions"):
        read_twin_pair(extra, good)
