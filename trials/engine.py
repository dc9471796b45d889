"""The simulation engine: scenarios x replicates in chunks on Dask, results as xarray.

Each task simulates one chunk of replicates of one scenario and analyses every
replicate by every method of the design. Its random stream is
``SeedSequence(seed, spawn_key=(scenario, chunk))``: a function of the task's key alone,
so results are bit-identical for any number of workers, any scheduler and any order of
completion. Finished chunks are checkpointed to Zarr; ``resume=True`` reruns only the
chunks that are missing and gives the same final numbers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from . import analyses as kernels
from . import bayesian, survival
from .design import BAYESIAN_METHODS, Family, Method, TrialDesign

FIELDS = ("estimate", "std_error", "lower", "upper", "p_value", "decision", "posterior_prob", "prior_ess",
          "n_patients", "n_events", "stop_stage")


# ---------------------------------------------------------------------- one chunk
@functools.lru_cache(maxsize=4)
def _load_generator(path: str, _mtime: float):
    from insilico.virtual_patients.generator import Generator

    return Generator.load(path)


def load_generator(path: str):
    """A fitted generator, cached per worker process (keyed by path and file time)."""
    p = Path(path) / "posterior.nc"
    return _load_generator(str(Path(path).resolve()), p.stat().st_mtime if p.exists() else 0.0)


def chunk_stream(seed: int, scenario: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(scenario, chunk)))


def simulate_chunk(design_json: str, scenario: int, chunk: int) -> dict:
    """Simulate and analyse one chunk.

    Returns {"truth": {label: (R,) true effect on the analysis scale}, "analyses":
    {label: {field: (R,) array}}}, one label per analysis and treatment-vs-control
    comparison. A group-sequential design analyses every look and reports each
    replicate at the look where it stopped.
    """
    design = TrialDesign.model_validate_json(design_json)
    R = min(design.chunk_size, design.replicates - chunk * design.chunk_size)
    rng = chunk_stream(design.seed, scenario, chunk)
    sc = design.scenarios[scenario]
    effects = arm_effects(design, sc, R, rng)  # (R, arms), analysis scale, control column 0
    data = _patients(design, sc, natural_effect(design, effects), R, rng)
    dec = design.decision
    alpha = design.comparison_alpha
    common = {"alpha": alpha, "sided": dec.sided, "direction": design.direction, "level": dec.interval}
    gsd = _boundaries(design_json)
    data["threshold"] = dec.threshold if dec.threshold is not None else 1 - alpha
    data["statistic_looks"] = gsd is not None  # group-sequential designs are one-sided (validated)
    data["chunk_size"] = min(design.chunk_size, design.replicates)  # MCMC pads short last chunks to this
    views = [_at_look(design, data, k) for k in range(len(design.looks))]
    out, truth = {}, {}
    # MCMC analyses: one sampler seed per chunk, drawn last so that other streams are unchanged
    mcmc_seed = int(rng.integers(2**62)) if any(a.sampler == "mcmc" for a in design.analyses) else None
    for i, (label, a, j) in enumerate(design.analysis_labels()):
        per_look = [_analyse(a, _comparison(v, j, len(design.arms)), common, R,
                             None if mcmc_seed is None else _look_seed(mcmc_seed, i, k))
                    for k, v in enumerate(views)]
        res = per_look[0] if gsd is None else _sequential(per_look, gsd, design.direction)
        out[label] = {k: np.asarray(res[k]) for k in FIELDS}
        truth[label] = effects[:, j] if _collapsible(design) else np.full(R, np.nan)
    return {"truth": truth, "analyses": out}


def _look_seed(chunk_seed: int, analysis: int, look: int) -> int:
    """The sampler seed of one analysis at one look of a chunk."""
    return int(np.random.SeedSequence(chunk_seed, spawn_key=(analysis, look)).generate_state(1)[0])


def arm_effects(design: TrialDesign, sc, R: int, rng: np.random.Generator) -> np.ndarray:
    """Each replicate's true effect of every arm vs control, on the analysis scale
    (column 0, control, is 0): the scenario's effect (or a design-prior draw shared by
    the arms), with named arms overridden by ``arm_effects``."""
    base = scenario_effects(design, sc, R, rng)
    out = np.zeros((R, len(design.arms)))
    for j, arm in enumerate(design.arms[1:], start=1):
        given = (sc.arm_effects or {}).get(arm.name)
        if given is None:
            out[:, j] = base
        else:
            out[:, j] = np.log(given) if _ratio_effect(design) else given
    return out


def _comparison(view: dict, j: int, n_arms: int) -> dict:
    """One look's data restricted to control and treatment arm j (arm coded 0/1)."""
    if n_arms == 2:
        return view
    if "raw_times" in view:
        view = {**view, "comparison": j}
    if "summaries_by_arm" in view:
        s_t, s_c = view["summaries_by_arm"][j], view["summaries_by_arm"][0]
        return {**view, "summaries": {"n_t": s_t[0], "mean_t": s_t[1], "ss_t": s_t[2],
                                      "n_c": s_c[0], "mean_c": s_c[1], "ss_c": s_c[2]}}
    cols = np.flatnonzero((view["arm"] == 0) | (view["arm"] == j))
    out = {**view, "arm": (view["arm"][cols] == j).astype(np.int8)}
    for key in ("y", "score", "time", "event", "X"):
        if key in view:
            out[key] = view[key][:, cols]
    if "entered" in view:
        out["enrolled"] = view["entered"][:, cols].sum(axis=1)
    if "covariates" in view:
        out["covariates"] = lambda names: view["covariates"](names)[:, cols]
    return out


@functools.lru_cache(maxsize=16)
def _boundaries(design_json: str):
    """The design's group-sequential boundaries, computed once per worker process."""
    return TrialDesign.model_validate_json(design_json).boundaries()


def _analyse(a, data: dict, common: dict, R: int, seed: int | None = None) -> dict:
    """One analysis method on one look's data (``seed``: an MCMC analysis's sampler seed)."""
    if a.method in BAYESIAN_METHODS:
        summ = data["summaries"] if "summaries" in data else kernels.arm_summaries(data["y"], data["arm"])
        res = bayesian.analyse(a, summ, data["family"], data.get("sigma"), alpha=common["alpha"],
                               direction=common["direction"], level=common["level"],
                               threshold=data["threshold"], exposure=data.get("exposure", 1.0), seed=seed,
                               pad_to=data.get("chunk_size"))
        n = summ["n_t"] + summ["n_c"]
        return {**res, "n_patients": np.full(R, float(n)), "n_events": np.full(R, np.nan), "stop_stage": np.ones(R)}
    if "summaries" in data:  # parametric normal/binary: per-arm sufficient statistics
        kernel = (kernels.difference_in_means_summary if a.method is Method.difference_in_means
                  else kernels.two_proportions_summary)
        # group-sequential one-sided looks: p-values only at the stopping look (`_sequential`)
        res = kernel(data["summaries"], **common, p_value=not data["statistic_looks"])
        n = data["summaries"]["n_t"] + data["summaries"]["n_c"]
        return {**res, "posterior_prob": np.full(R, np.nan), "prior_ess": np.full(R, np.nan),
                "n_patients": np.full(R, float(n)), "n_events": np.full(R, np.nan), "stop_stage": np.ones(R)}
    if a.method is Method.difference_in_means:
        res = kernels.difference_in_means(data["y"], data["arm"], **common)
    elif a.method is Method.ancova:
        res = kernels.ancova(data["y"], data["arm"], data["covariates"](a.covariates), **common)
    elif a.method is Method.procova:
        res = kernels.procova(data["y"], data["arm"], data["score"], **common)
    elif a.method is Method.two_proportions:
        res = kernels.two_proportions(data["y"], data["arm"], **common)
    elif a.method in (Method.logrank, Method.cox_score):
        risk = _risk_sets(data)
        k = data["look"]
        res = (survival.logrank_at(risk, k, **common) if a.method is Method.logrank
               else survival.cox_at(risk, k, **common))
        res["n_patients"] = risk["entered"][:, k].astype(float)
        res["n_events"] = risk["events"][:, k].astype(float)
    elif a.method in (Method.hybrid_power_prior, Method.external_comparison):
        res = _external_analysis(a, data, common)
        if a.method is Method.hybrid_power_prior and common["sided"] == "one":
            # success when Pr(benefit | data) > the decision threshold (default 1 - alpha)
            res["decision"] = (res["posterior_prob"] > data["threshold"]).astype(np.int8)
    else:
        res = kernels.poisson_rate_ratio(data["y"], data["arm"], data["exposure"], **common)
    res.setdefault("posterior_prob", np.full(R, np.nan))
    res.setdefault("prior_ess", np.full(R, np.nan))
    if "n_patients" not in res:
        res["n_patients"] = np.asarray(data.get("enrolled", np.full(R, len(data["arm"]))), dtype=float)
        res["n_events"] = (data["event"].sum(axis=1).astype(float) if "event" in data else np.full(R, np.nan))
    res["stop_stage"] = np.ones(R)
    return res


def _at_look(design: TrialDesign, data: dict, k: int) -> dict:
    """The data an analysis sees at look k: the first n_k patients, or for time to event
    the follow-up at the calendar time of the look's event count."""
    if "look_summaries" in data:
        return {**data, "summaries": data["look_summaries"][k]["pair"],
                "summaries_by_arm": data["look_summaries"][k]["by_arm"]}
    if "raw_times" in data:
        view = {**data, "look": k, "cutoff_time": data["cuts"][:, k]}
        if data["observed_needed"]:  # analyses other than log-rank / Cox see each patient's follow-up
            view.update(survival.observe_at(data["raw_times"], view["cutoff_time"]))
        if "raw_ext" in data:  # external controls followed to the same calendar time, or for follow_up
            fu = design.external_control.follow_up
            cut = view["cutoff_time"] if fu is None else np.full(len(view["cutoff_time"]), fu)
            ext = survival.observe_at(data["raw_ext"], cut)
            view["time_ext"], view["event_ext"] = ext["time"], ext["event"]
        return view
    if design.sample_size.stages is None:
        return data
    n = design.looks[k]
    view = {**data, "y": data["y"][:, :n], "arm": data["arm"][:n]}
    if "score" in data:
        view["score"] = data["score"][:, :n]
        view["covariates"] = lambda names: data["covariates"](names)[:, :n]
    return view


def _survival_looks(design: TrialDesign, data: dict) -> None:
    """Each look's calendar cut-off (one sort for all looks) and what the looks share."""
    cutoffs = []
    for look in design.looks:
        if look == 0:  # a fixed design: the endpoint's (or generator's) cut-off
            cutoffs.append(data["cutoff"] if "cutoff" in data else design.endpoint.cutoff.model_dump(exclude_none=True))
        else:
            cutoffs.append({"events": look})
    data["cuts"] = survival.cutoff_times(data["raw_times"], cutoffs)
    data["observed_needed"] = any(a.method not in (Method.logrank, Method.cox_score) for a in design.analyses)
    # one risk-set computation per comparison serves log-rank and Cox: kept when Cox needs them
    keep = any(a.method is Method.cox_score for a in design.analyses)
    data.update(risk_cache={}, arm_all=data["arm"], comparison=1, stop=None, keep_risk_sets=keep)
    gsd = _boundaries(design.model_dump_json())
    if gsd is not None and all(a.method is Method.logrank for a in design.analyses):
        # stopped trials need no later looks: the risk sets skip them once z = U / sqrt(V)
        # (benefit-signed) crosses a bound by a margin, so `_sequential` surely stops there too
        sign, margin = (1.0 if design.direction == "greater" else -1.0), 1e-9
        bounds = (gsd.futility_bounds - margin, gsd.critical_values + margin)
        data["stop"] = bounds if sign > 0 else (-bounds[1], -bounds[0])


def _risk_sets(view: dict) -> dict:
    """`survival.risk_sets` of this comparison at every look, computed once per chunk
    and shared by the looks and the log-rank and Cox analyses."""
    j = view["comparison"]
    cache = view["risk_cache"]
    if j not in cache:
        arm = view["arm_all"]
        code = np.where(arm == j, 1, np.where(arm == 0, 0, -1))
        cache[j] = survival.risk_sets(view["raw_times"], view["cuts"], code, view["keep_risk_sets"], view["stop"])
    return cache[j]


def _t_scale(c: float, df) -> float:
    """A z-scale boundary c on the scale of a t statistic with df degrees of freedom
    (same tail probability), through the upper tail so that large c stay exact."""
    from scipy import special

    if df is None or not np.isfinite(c):
        return c
    return float(-special.stdtrit(df, special.ndtr(-c)))


def _sequential(per_look: list[dict], gsd, direction: str) -> dict:
    """Stop each replicate at its first crossing of an efficacy or futility bound.

    The error-spending boundaries are on the z scale. Looks that report a statistic
    without a p-value (`analyses._finish` with ``p_value=False``) are compared with the
    boundaries carried to the statistic's own scale (t with the look's df: z >= c exactly
    when t >= t_df^-1(Phi(c))), and the p-value is computed at the stopping look only;
    other looks' one-sided p-values are put on the z scale (z = Phi^-1(1 - p)).
    Estimates are the naive ones at the stopping look.
    """
    from scipy import special

    K = len(per_look)
    deferred = "p_value" not in per_look[0]
    if deferred:
        stat = np.stack([r["statistic"] for r in per_look])  # (K, R)
        dfs = [r["df"] for r in per_look]
        upper = [_t_scale(c, df) for c, df in zip(gsd.critical_values, dfs)]
        lower = [_t_scale(c, df) for c, df in zip(gsd.futility_bounds, dfs)]
    else:
        stat = np.stack([-special.ndtri(np.clip(r["p_value"], 1e-300, 1.0)) for r in per_look])
        upper, lower = gsd.critical_values, gsd.futility_bounds
    R = stat.shape[1]
    stop = np.full(R, K - 1)
    rejected = np.zeros(R, dtype=bool)
    open_ = np.ones(R, dtype=bool)
    for k in range(K):
        eff = open_ & (stat[k] >= upper[k])
        fut = open_ & ~eff & (stat[k] < lower[k]) if k < K - 1 else np.zeros(R, dtype=bool)
        rejected |= eff
        stop = np.where(eff | fut, k, stop)
        open_ &= ~(eff | fut)
    idx = stop[None, :]
    out = {f: np.take_along_axis(np.stack([np.asarray(r[f], dtype=float) for r in per_look]), idx, axis=0)[0]
           for f in FIELDS if f not in ("decision", "stop_stage", "p_value")}
    if deferred:
        df = None if dfs[0] is None else np.asarray(dfs, dtype=float)[stop]
        out["p_value"] = kernels.one_sided_p(np.take_along_axis(stat, idx, axis=0)[0], df)
    else:
        out["p_value"] = np.take_along_axis(np.stack([r["p_value"] for r in per_look]), idx, axis=0)[0]
    out["decision"] = rejected.astype(np.int8)
    out["stop_stage"] = stop + 1.0
    return out


def _external_analysis(a, data: dict, common: dict) -> dict:
    """Hybrid (weighted power prior) or purely external comparisons (`trials.external`)."""
    from . import external

    X, X_ext = (data.get("X"), data.get("X_ext")) if a.weighting == "propensity" else (None, None)
    # without covariates (parametric patients, or weighting: none) every external patient weighs 1
    w = None if X is not None else np.ones((data["time_ext"] if "time_ext" in data else data["y_ext"]).shape)
    family = data["family"]
    if family not in ("normal", "binary", "time_to_event") or (
            a.method is Method.external_comparison and family != "normal"):
        raise ValueError(f"analysis '{a.name}': {a.method.value} does not apply to a {family} outcome")
    if family == "time_to_event":
        return external.hybrid_exponential(data["time"], data["event"], data["arm"], data["time_ext"],
                                           data["event_ext"], X, X_ext, a0=a.a0, weights=w, **common)
    if a.method is Method.external_comparison:
        treated = data["arm"] == 1
        return external.external_normal(data["y"][:, treated], data["y_ext"],
                                        X[:, treated] if X is not None else None, X_ext, weights=w, **common)
    if data["family"] == "binary":
        return external.hybrid_binary(data["y"], data["arm"], data["y_ext"], X, X_ext, a0=a.a0, weights=w,
                                      **common)
    return external.hybrid_normal(data["y"], data["arm"], data["y_ext"], X, X_ext, a0=a.a0,
                                  sigma=data["sigma"], weights=w, **common)


def scenario_effects(design: TrialDesign, sc, R: int, rng: np.random.Generator) -> np.ndarray:
    """Each replicate's true effect on the analysis scale: fixed, or drawn (assurance)."""
    if sc.effect_prior is not None:
        return sc.effect_prior.mean + sc.effect_prior.sd * rng.standard_normal(R)
    return np.full(R, true_effect(design, sc))


def natural_effect(design: TrialDesign, truth: np.ndarray) -> np.ndarray:
    """Analysis-scale effects back on the natural scale the simulation uses."""
    return np.exp(truth) if _ratio_effect(design) else truth


def _ratio_effect(design: TrialDesign) -> bool:
    """Effects given as ratios (rate, hazard, or for generator patients also odds ratios)."""
    if design.endpoint is not None:
        return design.endpoint.family in (Family.count, Family.time_to_event)
    return generator_family(design) != "normal"


def _collapsible(design: TrialDesign) -> bool:
    """Whether the simulated (conditional) effect is also what the analyses estimate.

    Generator patients with a binary or survival outcome get a conditional odds or hazard
    ratio; unadjusted analyses estimate a marginal risk difference or an attenuated
    marginal hazard ratio, which has no closed form: their truth is NaN, so bias and
    coverage are not reported (rejection rates are).
    """
    return design.patients is None or generator_family(design) in ("normal", "count")


def generator_family(design: TrialDesign) -> str:
    return GENERATOR_FAMILY[load_generator(design.patients.generator).family]


def _patients(design: TrialDesign, sc, effects: np.ndarray, R: int, rng: np.random.Generator) -> dict:
    """Simulated patients of R trials; ``effects`` (R, arms) on the natural scale
    (control column: 0 for differences, 1 for ratios). Time-to-event trials also get
    their looks' cut-offs."""
    data = _draw_patients(design, sc, effects, R, rng)
    if "raw_times" in data:
        _survival_looks(design, data)
    return data


def _draw_patients(design: TrialDesign, sc, effects: np.ndarray, R: int, rng: np.random.Generator) -> dict:
    arm = design.arm_vector()
    n = len(arm)
    if _summaries_suffice(design):
        ep = design.endpoint
        return {"look_summaries": _look_summaries(design, sc, effects, R, rng), "arm": arm,
                "family": ep.family.value, "sigma": ep.sd}
    # each patient's arm effect, (R, n); a broadcast view when every replicate has the same effects
    same = bool((effects == effects[:1]).all())
    effect = np.broadcast_to(effects[0, arm], (R, n)) if same else effects[:, arm]
    if design.endpoint is not None:
        ep = design.endpoint
        if ep.family is Family.normal:
            y = ep.control_mean + sc.control_shift + effect + ep.sd * rng.standard_normal((R, n))
        elif ep.family is Family.binary:
            p = np.clip(ep.control_rate + sc.control_shift + effect, 0.0, 1.0)  # prior draws may leave [0, 1]
            y = (rng.random((R, n)) < p).astype(np.int8)
        elif ep.family is Family.time_to_event:
            hr = (effect[0] if same else effect) * np.exp(sc.control_shift)  # (n,) or (R, n)
            model = hazard_model(ep)
            raw = survival.draw_times(R, arm, hr, model, ep.accrual, ep.dropout_rate, rng, ep.entry)
            data = {"raw_times": raw, "arm": arm, "family": ep.family.value}
            if design.external_control is not None:  # historical controls: the control hazard, no drift
                m = design.external_control.n
                ext = survival.draw_times(R, np.zeros(m, dtype=np.int8), np.ones(m), model, ep.accrual,
                                          ep.dropout_rate, rng, ep.entry)
                data["raw_ext"] = _external_follow_up(design, ext)
            return data
        else:
            rate = (ep.control_rate + sc.control_shift) * effect
            y = rng.poisson(rate * ep.exposure, size=(R, n))
        data = {"y": y, "arm": arm, "exposure": ep.exposure, "family": ep.family.value, "sigma": ep.sd}
        if design.external_control is not None:  # historical controls: no drift
            m = design.external_control.n
            if ep.family is Family.normal:
                data["y_ext"] = ep.control_mean + ep.sd * rng.standard_normal((R, m))
            else:
                data["y_ext"] = (rng.random((R, m)) < ep.control_rate).astype(np.int8)
        return data
    return _generator_patients(design, sc, effect, R, rng, arm)  # effect: (R, n) per patient


def _summaries_suffice(design: TrialDesign) -> bool:
    """Parametric normal/binary patients analysed only by difference in means / two
    proportions: per-arm sufficient statistics replace patient-level data."""
    ep = design.endpoint
    return (ep is not None and ep.family in (Family.normal, Family.binary) and design.external_control is None
            and all(a.method in (Method.difference_in_means, Method.two_proportions) or a.method in BAYESIAN_METHODS
                    for a in design.analyses))


def _look_summaries(design: TrialDesign, sc, effect: np.ndarray, R: int, rng) -> list[dict]:  # effect (R, arms)
    """Cumulative per-arm n, mean and sum of squares at each look, from stage increments:
    a normal stage of m patients has mean ~ N(mu, sd^2/m) and within-stage sum of squares
    ~ sd^2 chi2(m - 1), independently; a binary stage has a binomial count."""
    ep = design.endpoint
    arm = design.arm_vector()
    looks = design.looks
    groups = range(effect.shape[1])
    if ep.family is Family.binary:
        mu = {g: np.clip(ep.control_rate + sc.control_shift + effect[:, g], 0.0, 1.0) for g in groups}
    else:
        mu = {g: ep.control_mean + sc.control_shift + effect[:, g] for g in groups}
    state = {g: (0, np.zeros(R), np.zeros(R)) for g in groups}  # n, mean, ss
    out, start = [], 0
    for stop in looks:
        for g in groups:
            m = int((arm[start:stop] == g).sum())
            n0, mean0, ss0 = state[g]
            if m == 0:
                continue
            if ep.family is Family.normal:
                m_mean = mu[g] + ep.sd / np.sqrt(m) * rng.standard_normal(R)
                m_ss = ep.sd**2 * rng.chisquare(m - 1, R) if m > 1 else np.zeros(R)
            else:
                k = rng.binomial(m, mu[g])
                m_mean, m_ss = k / m, k * (1 - k / m)
            n1 = n0 + m
            mean1 = mean0 + (m_mean - mean0) * m / n1
            ss1 = ss0 + m_ss + (m_mean - mean0) ** 2 * n0 * m / n1  # parallel-axis (Chan et al.)
            state[g] = (n1, mean1, ss1)
        start = stop
        out.append({"by_arm": dict(state), "pair": {"n_t": state[1][0], "mean_t": state[1][1], "ss_t": state[1][2],
                                                     "n_c": state[0][0], "mean_c": state[0][1], "ss_c": state[0][2]}})
    return out


def hazard_model(ep) -> dict:
    """The control hazard of a time-to-event endpoint as a dict for `survival`."""
    if ep.piecewise is not None:
        return {"kind": "piecewise", "cuts": ep.piecewise.cuts, "hazards": ep.piecewise.hazards}
    # Weibull H(t) = rate t^k with median m: rate = log 2 / m^k (k = 1: exponential)
    rate = np.log(2) / ep.control_median**ep.weibull_shape
    if ep.weibull_shape == 1.0:
        return {"kind": "exponential", "rate": rate}
    return {"kind": "weibull", "rate": rate, "shape": ep.weibull_shape}


GENERATOR_FAMILY = {"normal": "normal", "bernoulli": "binary", "poisson": "count",
                    "weibull": "time_to_event", "piecewise_exponential": "time_to_event"}


def _generator_patients(design: TrialDesign, sc, effect: np.ndarray, R: int, rng, arm: np.ndarray) -> dict:
    """R trials of generator patients. The effect (and drift) shift each patient's linear
    predictor: a mean difference (normal), log odds ratio, log rate ratio or log hazard
    ratio (natural-scale effects arrive here as ratios and are logged)."""
    gen = load_generator(design.patients.generator)
    family = GENERATOR_FAMILY[gen.family]
    sc_ = gen.meta["outcome_scale"]
    if family == "normal":
        shift = (sc.control_shift + effect) / sc_["y_sd"]  # outcome sd units, (R, n)
    else:
        shift = sc.control_shift + np.log(effect)
    fixed = gen.posterior_mean() if design.patients.parameters == "posterior_mean" else None
    # one parameter set per replicate, shared by its trial and its external controls: absent
    # drift both come from the same population (drawn where draw_trial would draw it: same stream)
    params, draws = [], []
    for r in range(R):
        params.append(fixed if fixed is not None else _posterior_draw(gen, rng))
        draws.append(gen.draw_trial(len(arm), shift[r], design.patients.study, rng, params[r]))
    y = np.stack([d[1] for d in draws])
    D = np.stack([d[2] for d in draws])
    score = gen.prognostic_score_design(D.reshape(-1, D.shape[2])).reshape(R, len(arm))

    def covariates(names: list[str]) -> np.ndarray:
        cols = [i for i, nm in enumerate(gen.meta["design_names"]) if nm.split("[")[0] in names]
        return D[:, :, cols]

    data = {"arm": arm, "score": score, "covariates": covariates, "family": family, "X": D,
            "sigma": sc_.get("y_sd")}
    if family == "time_to_event":
        p = design.patients
        if p.cutoff is None and design.sample_size.stages is None:
            raise ValueError("a survival generator's trial needs patients.cutoff ({events: N} or {calendar: T}) "
                             "or group-sequential stages (events)")
        data["raw_times"] = _generator_times(y * sc_["time_unit"], design.patients, rng)
        if p.cutoff is not None:
            data["cutoff"] = p.cutoff.model_dump(exclude_none=True)
    else:
        data["y"] = sc_["y_mean"] + sc_["y_sd"] * y if family == "normal" else y
    if design.external_control is not None:  # the fitted (historical) population, no drift
        m = design.external_control.n
        ext = [gen.draw_trial(m, np.zeros(m), None, rng, params[r]) for r in range(R)]
        y_ext = np.stack([e[1] for e in ext])
        if family == "time_to_event":
            raw = _generator_times(y_ext * sc_["time_unit"], design.patients, rng)
            data["raw_ext"] = _external_follow_up(design, raw)
        else:
            data["y_ext"] = sc_["y_mean"] + sc_["y_sd"] * y_ext if family == "normal" else y_ext
        data["X_ext"] = np.stack([e[2] for e in ext])
    return data


def _posterior_draw(gen, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One random posterior draw of a generator's parameters (as `Generator.draw_trial` takes it)."""
    return gen._params_at(int(rng.integers(gen.n_draws)))


def _generator_times(t: np.ndarray, patients, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Entry (sorted uniforms over the accrual: randomisation order), follow-up to event or
    dropout, and whether it ends in an event, for a generator's event times t (data time unit)."""
    drop = (rng.exponential(1.0 / patients.dropout_rate, t.shape) if patients.dropout_rate > 0
            else np.full(t.shape, np.inf))
    entry = survival.entry_times(*t.shape, patients.accrual, rng)
    return {"entry": entry, "follow": np.minimum(t, drop), "is_event": t <= drop}


def _external_follow_up(design: TrialDesign, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """External controls' raw times as `_at_look` observes them: entered like the trial's
    patients (observed at the trial's analysis time), or all at time 0 when a fixed
    ``follow_up`` is given (observed at that time)."""
    if design.external_control.follow_up is None:
        return raw
    return {**raw, "entry": np.zeros_like(raw["entry"])}


# ---------------------------------------------------------------------- running
def make_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: the given scheduler address (or DASK_SCHEDULER_ADDRESS), else a
    local cluster of single-threaded worker processes sized to the machine."""
    from dask.distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        return Client(address)
    n = workers or os.cpu_count() or 1
    import logging

    # a worker that takes a moment to exit at shutdown is killed and logged: not the user's concern
    logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
    import dask

    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands every large NumPy
    # buffer back to the OS and each chunk page-faults its arrays in again: chunks ran 2x
    # slower in a worker than in this process (106 vs 49 ms). Unset, the allocator reuses them.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def run(design: TrialDesign, *, workers: int | None = None, scheduler: str | None = None,
        checkpoint: str | Path | None = None, resume: bool = False,
        progress: Callable[[int, int], None] | None = None, executor: str = "dask") -> xr.Dataset:
    """Simulate every (scenario, chunk) and assemble the replicate-level Dataset.

    ``executor="dask"`` (default) uses a Dask client (`make_client`); ``"serial"`` runs
    in this process — the same numbers, by construction of the streams.
    """
    if any(a.prior is not None and a.prior.map_from is not None for a in design.analyses):
        raise ValueError("the design has map_from priors: derive them first (trials.bayesian.resolve_map_priors; "
                         "'insilico simulate' does this)")
    keys = [(s, c) for s in range(len(design.scenarios)) for c in range(design.n_chunks)]
    store = _Checkpoint(checkpoint, design) if checkpoint else None
    done: dict = store.load() if (store and resume) else {}
    if store and not resume:
        store.reset()
    todo = [k for k in keys if k not in done]
    payload = design.model_dump_json()
    total = len(keys)
    if progress:
        progress(len(done), total)
    if executor == "serial":
        for k in todo:
            done[k] = simulate_chunk(payload, *k)
            if store:
                store.save(k, done[k])
            if progress:
                progress(len(done), total)
    else:
        from dask.distributed import as_completed

        client = make_client(workers, scheduler)
        try:
            futures = {client.submit(simulate_chunk, payload, s, c, key=f"chunk-{design.hash()[:8]}-{s}-{c}",
                                     pure=False): (s, c) for s, c in todo}
            for fut in as_completed(futures):
                k = futures[fut]
                done[k] = fut.result()
                if store:
                    store.save(k, done[k])
                if progress:
                    progress(len(done), total)
        finally:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    return calibrate(design, assemble(design, done))


def calibrate(design: TrialDesign, ds: xr.Dataset) -> xr.Dataset:
    """Bayesian thresholds calibrated to a one-sided type I error on the null scenario's
    replicates (`borrowing.calibrate_threshold`); decisions of every scenario redone."""
    scenario = design.calibration_scenario
    if scenario is None:
        return ds
    from .borrowing import calibrate_threshold

    thresholds = np.full(ds.sizes["analysis"], np.nan)
    mcse = np.full(ds.sizes["analysis"], np.nan)
    for i, (_, a, _) in enumerate(design.analysis_labels()):
        if a.method not in BAYESIAN_METHODS and a.method is not Method.hybrid_power_prior:
            continue
        probs = ds.posterior_prob.isel(analysis=i)
        k = len(design.arms) - 1
        target = design.decision.calibrate_to_alpha / (k if design.decision.multiplicity == "bonferroni" else 1)
        cal = calibrate_threshold(probs.sel(scenario=scenario).values, target)
        thresholds[i], mcse[i] = cal.threshold, cal.mcse
        ds["decision"][:, i, :] = (probs > cal.threshold).astype(np.int8).values
    ds["threshold"] = ("analysis", thresholds)
    ds["threshold_mcse"] = ("analysis", mcse)
    ds.attrs["calibrated_on"] = scenario
    return ds


def assemble(design: TrialDesign, chunks: dict) -> xr.Dataset:
    """Chunk results -> Dataset with dims (scenario, analysis, replicate)."""
    labels = [lab for lab, _, _ in design.analysis_labels()]
    S, A, R = len(design.scenarios), len(labels), design.replicates
    arrays = {f: np.empty((S, A, R)) for f in FIELDS}
    truth = np.empty((S, A, R))
    for (s, c), res in chunks.items():
        lo = c * design.chunk_size
        for a, label in enumerate(labels):
            v = res["truth"][label]
            truth[s, a, lo:lo + len(v)] = v
            for f in FIELDS:
                v = res["analyses"][label][f]
                arrays[f][s, a, lo:lo + len(v)] = v
    arrays["decision"] = arrays["decision"].astype(np.int8)
    arrays["true_effect"] = truth
    dims = ("scenario", "analysis", "replicate")
    # every variable in the constructor: each later assignment re-aligns the whole Dataset
    ds = xr.Dataset({name: (dims, v) for name, v in arrays.items()},
                    coords={"scenario": [sc.name for sc in design.scenarios], "analysis": labels,
                            "replicate": np.arange(R)})
    ds.attrs.update({"design_yaml": design.to_yaml(), "design_sha256": design.hash(), "seed": design.seed,
                     "chunk_size": design.chunk_size, "replicates": R})
    return ds


def true_effect(design: TrialDesign, sc) -> float:
    """The estimand on the scale the analyses estimate (NaN where it has no closed form)."""
    if _ratio_effect(design):
        return float(np.log(sc.effect))
    return float(sc.effect)


class _Checkpoint:
    """Finished chunks as Zarr stores, one per (scenario, chunk), in a folder.

    Each chunk is written under a temporary name and renamed when complete, so an
    interrupted write never looks finished.
    """

    def __init__(self, path: str | Path, design: TrialDesign):
        self.path = Path(path)
        self.design = design

    def reset(self) -> None:
        import shutil

        if self.path.exists():
            shutil.rmtree(self.path)

    def save(self, key: tuple[int, int], result: dict) -> None:
        ds = xr.Dataset({f"{a}__{f}": ("replicate", v) for a, fields in result["analyses"].items()
                         for f, v in fields.items()})
        for label, v in result["truth"].items():
            ds[f"{label}__truth"] = ("replicate", v)
        ds.attrs["design_sha256"] = self.design.hash()
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / f"s{key[0]}_c{key[1]}.zarr"
        tmp = self.path / f".s{key[0]}_c{key[1]}.zarr.tmp"
        ds.to_zarr(tmp, mode="w", consolidated=False)
        tmp.rename(final)

    def load(self) -> dict:
        if not self.path.exists():
            return {}
        out = {}
        for store in sorted(self.path.glob("s*_c*.zarr")):
            ds = xr.open_zarr(store, consolidated=False).load()
            if ds.attrs.get("design_sha256") != self.design.hash():
                raise ValueError(f"checkpoint {self.path} belongs to another design (hash "
                                 f"{str(ds.attrs.get('design_sha256'))[:12]}); remove it or run without --resume")
            s, c = (int(x[1:]) for x in store.name.removesuffix(".zarr").split("_"))
            res: dict = {}
            truth: dict = {}
            for name in ds.data_vars:
                a, f = name.rsplit("__", 1)
                if f == "truth":
                    truth[a] = ds[name].values
                else:
                    res.setdefault(a, {})[f] = ds[name].values
            out[(s, c)] = {"truth": truth, "analyses": res}
        return out
