"""The parts of a trial design, as frozen pydantic models: arms, the parametric endpoint or the
generator patients, the sample size (fixed or group-sequential), scenarios, external controls,
and the priors and historical data that Bayesian analyses borrow from."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, model_validator

from insilico.common.specfile import Strict


class Arm(Strict):
    name: str
    allocation: float = Field(..., gt=0, description="Allocation weight (> 0); arms share patients in proportion.")


class Family(str, Enum):
    normal = "normal"
    binary = "binary"
    count = "count"
    time_to_event = "time_to_event"


class Piecewise(Strict):
    cuts: list[float] = Field(..., min_length=1, description="Interval boundaries (time units), increasing.")
    hazards: list[float] = Field(..., description="Control hazard in each interval (len(cuts) + 1), > 0.")

    @model_validator(mode="after")
    def _check(self) -> Piecewise:
        if len(self.hazards) != len(self.cuts) + 1:
            raise ValueError("piecewise: give one more hazard than cuts")
        if any(h <= 0 for h in self.hazards) or any(b <= a for a, b in zip(self.cuts, self.cuts[1:], strict=False)):
            raise ValueError("piecewise: hazards must be > 0 and cuts increasing")
        if self.cuts[0] <= 0:
            raise ValueError("piecewise: cuts must be > 0")
        return self


class Cutoff(Strict):
    events: int | None = Field(None, gt=0, description="Analyse when this many events have occurred.")
    calendar: float | None = Field(None, gt=0, description="Analyse at this calendar time after the first entry.")

    @model_validator(mode="after")
    def _check(self) -> Cutoff:
        if (self.events is None) == (self.calendar is None):
            raise ValueError("cutoff: give exactly one of 'events' or 'calendar'")
        return self


class Endpoint(Strict):
    """Parametric patients (for verification against closed forms)."""

    family: Family
    sd: float = Field(1.0, gt=0, description="normal: outcome sd (both arms).")
    control_mean: float = Field(0.0, description="normal: control-arm mean.")
    control_rate: float | None = Field(None, gt=0, description="binary: control response probability; "
                                       "count: control events per unit exposure.")
    exposure: float = Field(1.0, gt=0, description="count: exposure per patient.")
    control_median: float | None = Field(None, gt=0, description="time_to_event: control median survival "
                                         "(exponential, or Weibull with weibull_shape).")
    weibull_shape: float = Field(1.0, gt=0, description="time_to_event: Weibull shape (1 = exponential).")
    piecewise: Piecewise | None = Field(None, description="time_to_event: piecewise-constant control hazard "
                                        "(instead of control_median).")
    accrual: float = Field(0.0, ge=0, description="time_to_event: uniform accrual duration.")
    entry: Literal["random", "regular"] = Field(
        "random", description="time_to_event: entry times over the accrual, in randomisation order: 'random' "
        "(sorted uniforms, each trial its own) or 'regular' (patient i of n enters at i * accrual / n, "
        "rpact's getSimulationSurvival).")
    dropout_rate: float = Field(0.0, ge=0, description="time_to_event: exponential dropout hazard.")
    cutoff: Cutoff | None = Field(None, description="time_to_event: when the analysis happens.")

    @model_validator(mode="after")
    def _check(self) -> Endpoint:
        if self.family is Family.time_to_event:
            if (self.control_median is None) == (self.piecewise is None):
                raise ValueError("a time_to_event endpoint needs exactly one of control_median or piecewise")
            return self
        if self.family in (Family.binary, Family.count) and self.control_rate is None:
            raise ValueError(f"a {self.family.value} endpoint needs control_rate")
        if self.family is Family.binary and not 0 < self.control_rate < 1:
            raise ValueError("binary control_rate must be in (0, 1)")
        return self


class GeneratorPatients(Strict):
    """Patients drawn from a fitted virtual-patient generator (`insilico fit`)."""

    generator: str = Field(..., description="Folder of a fitted generator.")
    study: str = Field("new", description="Study the trial's patients come from ('new': a new study, MAP).")
    parameters: str = Field("posterior_draw", pattern="^(posterior_draw|posterior_mean)$",
                            description="posterior_draw: each replicate its own posterior draw "
                            "(operating characteristics averaged over the posterior: assurance); "
                            "posterior_mean: every replicate at the posterior mean of the parameters.")
    accrual: float = Field(0.0, ge=0, description="Survival generators: uniform accrual duration (data time unit).")
    dropout_rate: float = Field(0.0, ge=0, description="Survival generators: exponential dropout hazard.")
    cutoff: Cutoff | None = Field(None, description="Survival generators: analysis cut-off (events or calendar).")


#: alpha-spending families by name, and rpact's codes for them (accepted as they are)
SPENDING = {"obrien_fleming": "asOF", "pocock": "asP", "hwang_shih_decani": "asHSD", "kim_demets": "asKD",
            "user": "asUser", "obrien_fleming_constant": "OF", "pocock_constant": "P"}
SPENDING.update({code: code for code in list(SPENDING.values())})
#: beta-spending families for futility: the alpha-spending names, or rpact's bs codes
BETA_SPENDING = {"obrien_fleming": "bsOF", "pocock": "bsP", "hwang_shih_decani": "bsHSD", "kim_demets": "bsKD"}
BETA_SPENDING.update({code: code for code in list(BETA_SPENDING.values())})
_GAMMA = {"asHSD", "asKD", "bsHSD", "bsKD"}


def _check_gamma(code: str, gamma: float | None, where: str) -> None:
    if code in _GAMMA and gamma is None:
        raise ValueError(f"{where}: the {code} family needs its parameter gamma (Hwang-Shih-DeCani gamma, e.g. "
                         "-4; Kim-DeMets rho > 0, e.g. 2)")
    if code in ("asKD", "bsKD") and gamma is not None and gamma <= 0:
        raise ValueError(f"{where}: the Kim-DeMets parameter rho must be > 0, got {gamma}")
    if code not in _GAMMA and gamma is not None:
        raise ValueError(f"{where}: gamma applies to the hwang_shih_decani and kim_demets families only")


class FutilitySpending(Strict):
    """Non-binding futility bounds from a beta-spending function (rpact's typeBetaSpending):
    the type II error ``beta`` spent over the looks, at the drift that gives power 1 - beta."""

    spending: str = Field(..., pattern=f"^({'|'.join(BETA_SPENDING)})$",
                          description="Beta-spending family: obrien_fleming, pocock, hwang_shih_decani, kim_demets "
                          "(or rpact's bsOF, bsP, bsHSD, bsKD).")
    gamma: float | None = Field(None, description="hwang_shih_decani gamma / kim_demets rho.")
    beta: float = Field(0.2, gt=0, lt=0.5, description="Type II error to spend (1 - the design's power).")

    @model_validator(mode="after")
    def _check(self) -> FutilitySpending:
        _check_gamma(BETA_SPENDING[self.spending], self.gamma, "futility")
        return self


class SampleSize(Strict):
    """Fixed sample size, or group-sequential looks with Lan-DeMets error spending."""

    total: int | None = Field(None, gt=1, description="Patients randomised across all arms (default: the last stage).")
    stages: list[int] | None = Field(None, min_length=2, description="Cumulative patients (time to event: "
                                     "events) at each look, increasing.")
    information_rates: list[float] | None = Field(None, description="Information fraction of each look "
                                                  "(default: stages / last stage).")
    spending: str = Field("obrien_fleming", pattern=f"^({'|'.join(SPENDING)})$",
                          description="Alpha spending: obrien_fleming (asOF), pocock (asP), hwang_shih_decani "
                          "(asHSD, with spending_gamma), kim_demets (asKD, with spending_gamma = rho), user (asUser, "
                          "with user_alpha_spending), or the constant boundaries obrien_fleming_constant (OF) and "
                          "pocock_constant (P); rpact's codes are accepted as they are.")
    spending_gamma: float | None = Field(None, description="hwang_shih_decani gamma / kim_demets rho.")
    user_alpha_spending: list[float] | None = Field(None, description="spending: user — the cumulative one-sided "
                                                    "alpha spent at each look, increasing, the last = alpha.")
    futility: list[float] | FutilitySpending | None = Field(
        None, description="Futility: z bounds for looks 1..K-1 (stop when z falls below), or a beta-spending "
        "function ({spending, gamma, beta}).")
    binding_futility: bool = Field(False, description="Fixed futility bounds are binding: the efficacy bounds are "
                                   "computed as if every trial stops at them, which lowers them (rpact's "
                                   "bindingFutility).")

    @model_validator(mode="after")
    def _check(self) -> SampleSize:
        if self.total is None and self.stages is None:
            raise ValueError("give 'total' or 'stages'")
        if self.stages is not None:
            if any(b <= a for a, b in zip(self.stages, self.stages[1:], strict=False)) or self.stages[0] < 2:
                raise ValueError(f"stages must increase (and start at >= 2), got {self.stages}")
            rates = self.information_rates
            if rates is not None and (len(rates) != len(self.stages) or abs(rates[-1] - 1) > 1e-9
                                      or any(b <= a for a, b in zip(rates, rates[1:], strict=False)) or rates[0] <= 0):
                raise ValueError("information_rates: one per stage, increasing, in (0, 1], the last 1")
            if isinstance(self.futility, list) and len(self.futility) != len(self.stages) - 1:
                raise ValueError(f"futility needs one bound per interim look ({len(self.stages) - 1})")
            code = SPENDING[self.spending]
            _check_gamma(code, self.spending_gamma, "sample_size.spending")
            user = self.user_alpha_spending
            if (code == "asUser") != (user is not None):
                raise ValueError("spending: user and user_alpha_spending go together")
            if user is not None and (len(user) != len(self.stages) or user[0] <= 0
                                     or any(b <= a for a, b in zip(user, user[1:], strict=False))):
                raise ValueError(f"user_alpha_spending: one cumulative alpha per stage ({len(self.stages)}), "
                                 f"positive and increasing, got {user}")
            if self.binding_futility and not isinstance(self.futility, list):
                raise ValueError("binding_futility needs futility z bounds (beta-spending bounds are non-binding)")
            if self.binding_futility and code in ("OF", "P"):
                raise ValueError("binding_futility needs an alpha-spending family, not constant boundaries")
        elif self.futility is not None or self.binding_futility or self.user_alpha_spending is not None:
            raise ValueError("futility, binding_futility and user_alpha_spending need group-sequential stages")
        elif self.spending_gamma is not None:
            raise ValueError("spending_gamma needs group-sequential stages")
        return self


class EffectPrior(Strict):
    """A design prior on the effect: each replicate draws its own true effect (assurance)."""

    mean: float = Field(..., description="Mean on the analysis scale (difference, or log ratio for ratio effects).")
    sd: float = Field(..., gt=0, description="Normal sd on the analysis scale.")


class Scenario(Strict):
    name: str
    effect: float = Field(0.0, description="Treatment effect on the family's natural scale (see module docs).")
    control_shift: float = Field(0.0, description="Drift of current controls from history (natural scale).")
    effect_prior: EffectPrior | None = Field(
        None, description="Assurance: draw each replicate's effect from this normal design prior instead of "
        "fixing it at `effect` (on the analysis scale: difference, or log rate/hazard ratio).")
    arm_effects: dict[str, float] | None = Field(
        None, description="Multi-arm designs: effect of named treatment arms (natural scale); the others get "
        "`effect` (or the design prior's draw).")


class ExternalControl(Strict):
    """External (historical or real-world) controls beside the randomised trial.

    They come from the historical population: the endpoint's control parameters without
    the scenario's ``control_shift`` (parametric), or the generator's fitted population
    under the replicate's own posterior draw (``source: generator``) — so drift scenarios
    show what borrowing costs. Time-to-event external controls are censored like the
    trial's patients unless ``follow_up`` says otherwise.
    """

    n: int = Field(..., gt=0, description="External control patients per replicate.")
    source: str = Field("parametric", pattern="^(parametric|generator)$",
                        description="parametric (endpoint) or generator (the design's patients generator).")
    follow_up: float | None = Field(None, gt=0, description="Time to event: every external patient's "
                                    "administrative follow-up (data time unit), besides dropout. Default: "
                                    "followed like the trial's patients (entry uniform over the accrual, the "
                                    "same dropout, censored at the replicate's analysis time), so that "
                                    "external and current controls differ only by drift.")


class HistoricalStudies(Strict):
    """Study-level historical control data from which to derive a MAP prior."""

    n: list[float] = Field(..., min_length=2, description="Patients per historical study.")
    responders: list[float] | None = Field(None, description="binary: responders per study.")
    means: list[float] | None = Field(None, description="normal: mean outcome per study.")
    ses: list[float] | None = Field(None, description="normal: standard error of each study's mean.")
    tau_prior_sd: float = Field(1.0, gt=0, description="Half-normal scale of the between-study sd.")

    @model_validator(mode="after")
    def _check(self) -> HistoricalStudies:
        for name in ("responders", "means", "ses"):
            v = getattr(self, name)
            if v is not None and len(v) != len(self.n):
                raise ValueError(f"historical studies: {name} needs one value per study ({len(self.n)})")
        if self.responders is None and (self.means is None or self.ses is None):
            raise ValueError("historical studies: give responders (binary) or means and ses (normal)")
        return self


class PriorSpec(Strict):
    """A conjugate mixture prior: components as RBesT writes them, or a MAP prior derived
    from historical studies (binomial-logit or normal random-effects meta-analysis with
    PyMC, its new-study predictive approximated by a mixture; `borrowing.map_prior_*`)."""

    family: str = Field(..., pattern="^(beta_mixture|normal_mixture|gamma_mixture|logit_normal_mixture|"
                        "log_normal_mixture)$",
                        description="Conjugate: beta_mixture (rates: [w, a, b]), normal_mixture (means: "
                        "[w, mean, sd]), gamma_mixture (event rates: [w, shape, rate]). Not conjugate (analysis "
                        "sampler: mcmc): logit_normal_mixture (rates, on the log-odds: [w, mean, sd]), "
                        "log_normal_mixture (event rates, on the log scale: [w, mean, sd]).")
    components: list[list[float]] | None = Field(None, min_length=1,
                                                 description="One [weight, p1, p2] row per component.")
    map_from: HistoricalStudies | None = Field(None, description="Derive a MAP prior from these studies "
                                               "before simulating (the derived components are recorded).")

    @model_validator(mode="after")
    def _check(self) -> PriorSpec:
        if (self.components is None) == (self.map_from is None):
            raise ValueError("a prior needs exactly one of 'components' or 'map_from'")
        if self.map_from is not None:
            if self.family not in ("beta_mixture", "normal_mixture"):
                raise ValueError("map_from derives beta (binary) or normal MAP priors")
            if (self.family == "beta_mixture") != (self.map_from.responders is not None):
                raise ValueError("map_from: a beta_mixture needs responders, a normal_mixture means and ses")
            return self
        if any(len(c) != 3 for c in self.components):
            raise ValueError("each prior component is [weight, parameter 1, parameter 2]")
        w = [c[0] for c in self.components]
        if any(x < 0 for x in w):
            raise ValueError(f"prior weights must be >= 0, got {w}")
        if abs(sum(w) - 1) > 1e-6:
            raise ValueError(f"prior weights must sum to 1, got {sum(w):.6g}")
        if any(c[2] <= 0 or (self.family in ("beta_mixture", "gamma_mixture") and c[1] <= 0) for c in self.components):
            raise ValueError("prior parameters must be > 0 (sd, or both beta/gamma parameters)")
        return self


class Historical(Strict):
    """Historical control data summarised for a power or commensurate prior."""

    n: float = Field(..., gt=0, description="Historical patients (count: total exposure).")
    responders: float | None = Field(None, ge=0, description="binary: historical responders.")
    mean: float | None = Field(None, description="normal: historical mean.")
    events: float | None = Field(None, ge=0, description="count: historical events.")
