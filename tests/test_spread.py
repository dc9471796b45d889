"""Run-to-run spread of cohort checks (`insilico.checks.spread`): the SD over fresh seeds, and
none for a metric that no seed moves (it depends on the posterior alone)."""

from __future__ import annotations

import numpy as np
import pytest

from insilico.checks.metrics import metric
from insilico.checks.spread import RERUNS, SEED_STEP, with_spread


def test_spread_is_the_sd_over_fresh_seeds_and_absent_where_no_seed_moves_the_metric():
    def check(seed, _folder=None):
        rng = np.random.default_rng(seed)
        return {"smd": metric("covariate_balance", rng.normal(0.1, 0.02)),
                "c_index": metric("discrimination", 0.61), "none": metric("privacy", None)}

    seeds = []
    out = with_spread(check(7), lambda s, folder: (seeds.append(s), check(s, folder))[1], 7)
    assert seeds == [7 + SEED_STEP * (i + 1) for i in range(RERUNS)]
    values = [check(s)["smd"]["value"] for s in [7, *seeds]]
    assert out["smd"]["detail"]["spread"]["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert out["smd"]["detail"]["spread"]["runs"] == RERUNS + 1
    assert "spread" not in (out["c_index"].get("detail") or {})  # same for every seed
    assert "spread" not in (out["none"].get("detail") or {})
