"""Real multi-site data: the indomethacin RCT's placebo arm (4 sites, binary outcome).

A cohort for a *new* site carries between-site heterogeneity: across replicate cohorts
its event rate varies more than a fitted site's does (the MAP idea behind synthetic
control arms), and by about the amount the posterior of tau says it should.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import with_sampler

from insilico.validation.diagnostics import mcmc_diagnostics
from insilico.virtual_patients.examples import example_data, example_spec_path
from insilico.virtual_patients.fitting import fit, select_rows
from insilico.virtual_patients.spec import GeneratorSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indo():
    spec = with_sampler(GeneratorSpec.from_yaml(example_spec_path("indo_rct")), draws=1000, tune=1000, chains=4)
    data = select_rows(example_data("indo_rct"), spec)
    return fit(data, spec, seed=3, progress=False), data


def test_converged(indo):
    d = mcmc_diagnostics(indo[0].posterior)
    assert d["max_rhat"] < 1.01 and d["min_ess_bulk"] >= 400 and d["min_ess_tail"] >= 400
    assert d["divergences"] == 0


def test_studies_and_new_study(indo):
    gen, data = indo
    assert gen.studies == sorted(data["site"].unique())
    cohort = gen.sample_cohort(50, seed=1, study="new")
    assert (cohort["site"] == "new").all()
    with pytest.raises(ValueError, match="unknown study"):
        gen.sample_cohort(5, seed=1, study="5_Nowhere")


def test_new_study_cohorts_vary_more(indo):
    """Event-rate spread across 400 replicate cohorts of 2,000 patients: binomial noise
    (sd ~0.008) is small, so the spread is parameter (and for 'new', tau) uncertainty."""
    gen, _ = indo
    rate = {s: np.array([(gen.sample_cohort(2000, seed=r, study=s)["outcome"] == "1_yes").mean()
                         for r in range(400)]) for s in ("new", "2_IU")}
    assert rate["new"].std() > 1.2 * rate["2_IU"].std()
    # the mean event rate of new-site cohorts agrees with the data's overall rate (52/307 = 0.169)
    # within the spread of those cohorts
    assert abs(rate["new"].mean() - 52 / 307) < 2 * rate["new"].std()


def test_prognostic_score_is_a_probability_matching_the_data(indo):
    gen, data = indo
    score = gen.prognostic_score(data)
    assert ((score > 0) & (score < 1)).all()
    # calibration in the large: mean predicted risk vs observed rate, within 2 binomial se (0.043)
    assert abs(score.mean() - 52 / 307) < 2 * np.sqrt(0.169 * 0.831 / 307)
