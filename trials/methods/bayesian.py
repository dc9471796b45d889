"""Bayesian two-arm analyses with a borrowing prior on the control arm (`trials.bayesian`).

Each method differs only in how it builds the control arm's prior: a given mixture
(``bayesian``), the same robustified (``robust_map``), a fixed power prior or a
commensurate prior on historical controls. The update, the posterior probability of
benefit and the decision are shared (`trials.bayesian.analyse`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from .. import bayesian
from .. import borrowing as bw
from .base import AnalysisMethod, fmt, register, summary_counts

#: the conjugate prior family of each endpoint family, and the one only MCMC can update
CONJUGATE = {"binary": "beta_mixture", "normal": "normal_mixture", "count": "gamma_mixture"}
NON_CONJUGATE = {"binary": "logit_normal_mixture", "count": "log_normal_mixture"}
ELIR = "ELIR (Neuenschwander et al. 2020)"


def sigma_of(design: Any) -> float | None:
    """The known outcome sd of a normal parametric endpoint (None otherwise)."""
    return design.endpoint.sd if design.endpoint is not None else None


def historical_text(h: Any) -> str:
    parts = [f"n = {fmt(h.n)}"]
    for k in ("responders", "mean", "events"):
        if getattr(h, k) is not None:
            parts.append(f"{k} = {fmt(getattr(h, k))}")
    return "historical controls: " + ", ".join(parts)


def mixture_text(mix: Any) -> str:
    """'0.8 Beta(17, 83) + 0.2 Beta(1, 1)' for a `trials.borrowing` mixture."""
    w = np.ravel(mix.weights)
    if isinstance(mix, bw.BetaMixture):
        parts = [f"Beta({fmt(a)}, {fmt(b)})" for a, b in zip(np.ravel(mix.a), np.ravel(mix.b), strict=True)]
    elif isinstance(mix, bw.GammaMixture):
        parts = [f"Gamma({fmt(a)}, {fmt(b)})" for a, b in zip(np.ravel(mix.shapes), np.ravel(mix.rates), strict=True)]
    else:
        parts = [f"N({fmt(m)}, {fmt(s)}²)" for m, s in zip(np.ravel(mix.means), np.ravel(mix.sds), strict=True)]
    if len(parts) == 1:
        return parts[0]
    return " + ".join(f"{fmt(wk)} {p}" for wk, p in zip(w, parts, strict=True))


class _Borrowing(AnalysisMethod):
    """A conjugate (or MCMC) posterior-probability analysis of per-arm summaries."""

    families = frozenset({"normal", "binary", "count"})
    decides_by_probability = True
    borrows = True
    parametric_only = True
    mcmc = True
    runs_on_summaries = True
    _cache: dict[tuple, tuple] = {}

    @abstractmethod
    def control_prior(self, analysis: Any, family: str, sigma: float | None) -> tuple[Any, float]:
        """(control prior mixture, its ESS) of this method."""

    def priors(self, analysis: Any, family: str, sigma: float | None) -> tuple[Any, Any, float]:
        """(control prior, treatment prior, control prior ESS), built once per worker."""
        key = (analysis.model_dump_json(), family, sigma)
        if key not in self._cache:
            control, ess = self.control_prior(analysis, family, sigma)
            treatment = (bayesian.mixture(analysis.treatment_prior, sigma) if analysis.treatment_prior is not None
                         else bayesian.vague_prior(family, sigma))
            self._cache[key] = (control, treatment, float(ess))
        return self._cache[key]

    def check(self, analysis, design, family):
        fam = design.endpoint.family.value if design.endpoint is not None else "normal"
        label = f"analysis '{analysis.name}'"
        for what, prior in (("prior", analysis.prior), ("treatment_prior", analysis.treatment_prior)):
            if prior is None or fam not in CONJUGATE or prior.family == CONJUGATE[fam]:
                continue
            if prior.family != NON_CONJUGATE.get(fam):
                allowed = " or ".join(f for f in (CONJUGATE[fam], NON_CONJUGATE.get(fam)) if f)
                raise ValueError(f"{label}: a {fam} endpoint takes a {allowed} {what}, not {prior.family}")
            if analysis.sampler != "mcmc":
                raise ValueError(f"{label}: a {prior.family} {what} is not conjugate: set sampler: mcmc")
            if self.name == "robust_map" and what == "prior":
                raise ValueError(f"{label}: robust_map robustifies a conjugate {CONJUGATE[fam]}; "
                                 f"give the {prior.family} its own wide component (method: bayesian)")
        super().check(analysis, design, family)

    def analyse(self, analysis, data, common, R, seed=None):
        from .. import analyses as kernels

        summ = data["summaries"] if "summaries" in data else kernels.arm_summaries(data["y"], data["arm"])
        control, treatment, ess = self.priors(analysis, data["family"], data.get("sigma"))
        res = bayesian.analyse(control, treatment, ess, summ, data["family"], data.get("sigma"),
                               sampler=analysis.sampler, direction=common["direction"], level=common["level"],
                               threshold=data["threshold"], exposure=data.get("exposure", 1.0), seed=seed,
                               pad_to=data.get("chunk_size"))
        return summary_counts(res, summ, R, bayesian=True)

    def prior_text(self, analysis: Any, design: Any, family: str) -> str:
        if analysis.prior is not None and analysis.prior.map_from is not None:
            return f"MAP prior derived from {len(analysis.prior.map_from.n)} historical studies at simulation time"
        found = self.prior_ess(analysis, design, family)
        return mixture_text(found[0]) if found is not None else "—"

    def prior_ess(self, analysis, design, family):
        if analysis.prior is not None and analysis.prior.map_from is not None:
            return None
        control, _, ess = self.priors(analysis, family, sigma_of(design))
        return control, ess, ELIR

    def prior_source(self, analysis: Any, design: Any) -> str:
        if analysis.historical is not None:
            return historical_text(analysis.historical)
        if analysis.prior is not None and analysis.prior.map_from is not None:
            h = analysis.prior.map_from
            return f"MAP prior from {len(h.n)} historical studies (n = {', '.join(fmt(x) for x in h.n)})"
        return f"prior components as specified in the design (analysis '{analysis.name}')"

    def details(self, analysis, design, family):
        out = []
        if analysis.prior is not None:
            out.append("control prior " + self.prior_text(analysis, design, family))
        elif analysis.historical is not None:
            out.append(historical_text(analysis.historical))
        if analysis.a0 is not None:
            out.append(f"a0 = {fmt(analysis.a0)}")
        if analysis.kappa is not None:
            out.append(f"κ = {fmt(analysis.kappa)}")
        return out


def _elir(prior: Any, family: str, sigma: float | None) -> float:
    if not isinstance(prior, bw.BetaMixture | bw.NormalMixture | bw.GammaMixture):
        return float("nan")  # ELIR is defined here for the conjugate families only
    return float(bw.ess(prior, "elir", sigma=sigma) if family == "normal" else bw.ess(prior, "elir"))


@register
class Bayesian(_Borrowing):
    name = "bayesian"
    title = "Bayesian (conjugate)"
    parameters = frozenset({"prior", "treatment_prior", "sampler"})
    required = {"prior": "a prior"}

    def control_prior(self, analysis, family, sigma):
        prior = bayesian.mixture(analysis.prior, sigma)
        return prior, _elir(prior, family, sigma)


@register
class RobustMap(_Borrowing):
    name = "robust_map"
    title = "robust MAP prior"
    parameters = frozenset({"prior", "robust_weight", "treatment_prior", "sampler"})
    required = {"prior": "a prior", "robust_weight": "robust_weight"}

    def control_prior(self, analysis, family, sigma):
        prior = bayesian.mixture(analysis.prior, sigma).robustify(analysis.robust_weight)
        return prior, _elir(prior, family, sigma)


class _Historical(_Borrowing):
    """Borrowing from one historical control arm summarised in ``historical``."""

    families = frozenset({"normal", "binary"})
    #: the summary of the historical arm each endpoint family needs besides n
    needs = {"binary": "responders", "normal": "mean", "count": "events"}

    def check(self, analysis, design, family):
        fam = design.endpoint.family.value if design.endpoint is not None else "normal"
        need = self.needs.get(fam)
        h = analysis.historical
        if h is None or (need and getattr(h, need) is None):
            raise ValueError(f"analysis '{analysis.name}': {self.name} needs historical: {{n, {need}}}")
        super().check(analysis, design, family)


@register
class PowerPrior(_Historical):
    name = "power_prior"
    title = "power prior"
    families = frozenset({"normal", "binary", "count"})
    parameters = frozenset({"historical", "a0", "treatment_prior", "sampler"})
    required = {"a0": "a0"}

    def control_prior(self, analysis, family, sigma):
        h = analysis.historical
        if family == "binary":
            prior = bw.power_prior_binary(h.responders, h.n, analysis.a0)
        elif family == "count":  # n is the historical arm's total exposure
            prior = bw.power_prior_count(h.events, h.n, analysis.a0)
        else:
            prior = bw.power_prior_normal(h.mean, h.n, analysis.a0, sigma)
        return prior, float(bw.power_prior_ess(analysis.a0, h.n))

    def prior_ess(self, analysis, design, family):
        control, _, ess = self.priors(analysis, family, sigma_of(design))
        return control, ess, "a0 · n_h (power prior)"


@register
class Commensurate(_Historical):
    name = "commensurate"
    title = "commensurate prior"
    parameters = frozenset({"historical", "kappa", "treatment_prior", "sampler"})
    required = {"kappa": "kappa"}

    def control_prior(self, analysis, family, sigma):
        h = analysis.historical
        if family == "binary":
            prior = bw.commensurate_prior_binary(h.responders, h.n, analysis.kappa)
        else:
            prior = bw.commensurate_prior_normal(h.mean, h.n, sigma, analysis.kappa, sigma=sigma)
        return prior, _elir(prior, family, sigma)
