"""MAP priors derived from historical studies before a design is simulated.

A ``map_from`` prior is a PyMC random-effects meta-analysis of the historical studies
(`trials.borrowing.map_prior_binary` / ``map_prior_normal``, nutpie, seeded with the
design's seed) whose new-study predictive is approximated by a mixture; the design is
returned with the derived components in place of ``map_from``.
"""

from __future__ import annotations

import logging

import numpy as np

from . import borrowing as bw
from .design import TrialDesign

logger = logging.getLogger(__name__)


def resolve_map_priors(design: TrialDesign) -> tuple[TrialDesign, dict]:
    """The design with every ``map_from`` prior replaced by its derived mixture.

    Each MAP prior is a PyMC fit (nutpie, seeded with the design's seed) of the
    historical studies; its diagnostics and summary are returned beside the design so
    the caller can record them. Designs without ``map_from`` come back unchanged.
    """
    data = design.model_dump(mode="json")
    derived = {}
    for a in data["analyses"]:
        prior = a.get("prior")
        if not prior or not prior.get("map_from"):
            continue
        h = prior["map_from"]
        logger.info("deriving the MAP prior of analysis '%s' from %d historical studies (PyMC)", a["name"], len(h["n"]))
        if prior["family"] == "beta_mixture":
            mp = bw.map_prior_binary(h["responders"], h["n"], tau_prior_sd=h["tau_prior_sd"], seed=design.seed)
            comps = np.column_stack([mp.mixture.weights, mp.mixture.a, mp.mixture.b])
        else:
            sigma = design.endpoint.sd if design.endpoint is not None else None
            mp = bw.map_prior_normal(h["means"], h["ses"], sigma=sigma, tau_prior_sd=h["tau_prior_sd"],
                                     seed=design.seed)
            comps = np.column_stack([mp.mixture.weights, mp.mixture.means, mp.mixture.sds])
        a["prior"] = {"family": prior["family"], "components": comps.round(10).tolist()}
        derived[a["name"]] = {"summary": mp.summary, "diagnostics": mp.diagnostics, "source": h}
    if not derived:
        return design, derived
    return TrialDesign.from_dict(data, source="design with derived MAP priors"), derived
