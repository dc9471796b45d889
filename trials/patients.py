"""Simulated patients of R trials at once: parametric endpoints or a fitted generator.

`draw` returns a dict of arrays with a leading replicate axis (patients in columns) that
`insilico.trials.looks` cuts into what each analysis sees at each look. Effects arrive
on the natural scale (`insilico.trials.scales`), per arm and replicate; a scenario's
``control_shift`` moves the current patients (both arms) away from the historical
population that external controls come from.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from insilico.virtual_patients.generator import POSTERIOR_FILE, located

from . import looks, survival
from .design import Family, TrialDesign
from .methods import method_of


@functools.lru_cache(maxsize=4)
def _load_generator(path: str, _mtime: float):
    from insilico.virtual_patients.generator import Generator

    return Generator.load(path)


def load_generator(path: str):
    """A fitted generator, cached per worker process (keyed by path and file time); the shipped
    copy when the client sent one (`insilico.virtual_patients.generator.receive_files`)."""
    path = located(path)
    p = Path(path) / POSTERIOR_FILE
    return _load_generator(str(Path(path).resolve()), p.stat().st_mtime if p.exists() else 0.0)


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
            out[:, j] = design.scale.to_analysis(given)
    return out


def scenario_effects(design: TrialDesign, sc, R: int, rng: np.random.Generator) -> np.ndarray:
    """Each replicate's true effect on the analysis scale: fixed, or drawn (assurance)."""
    if sc.effect_prior is not None:
        return sc.effect_prior.mean + sc.effect_prior.sd * rng.standard_normal(R)
    return np.full(R, true_effect(design, sc))


def natural_effect(design: TrialDesign, truth: np.ndarray) -> np.ndarray:
    """Analysis-scale effects back on the natural scale the simulation uses."""
    return design.scale.to_natural(truth)


def true_effect(design: TrialDesign, sc) -> float:
    """A scenario's fixed effect on the scale the analyses estimate."""
    return float(design.scale.to_analysis(sc.effect))


def draw(design: TrialDesign, sc, effects: np.ndarray, R: int, rng: np.random.Generator) -> dict:
    """Simulated patients of R trials; ``effects`` (R, arms) on the natural scale
    (control column: 0 for differences, 1 for ratios). Time-to-event trials also get
    their looks' cut-offs."""
    data = _draw_patients(design, sc, effects, R, rng)
    if "raw_times" in data:
        looks.survival_looks(design, data)
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
    """Parametric normal/binary patients analysed only by methods that run on per-arm
    sufficient statistics: those replace patient-level data."""
    ep = design.endpoint
    return (ep is not None and ep.family in (Family.normal, Family.binary) and design.external_control is None
            and all(method_of(a).runs_on_summaries for a in design.analyses))


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


def _generator_patients(design: TrialDesign, sc, effect: np.ndarray, R: int, rng, arm: np.ndarray) -> dict:
    """R trials of generator patients. The effect (and drift) shift each patient's linear
    predictor: a mean difference (normal), log odds ratio, log rate ratio or log hazard
    ratio (natural-scale effects arrive here as ratios and are logged)."""
    gen = load_generator(design.patients.generator)
    family = design.scale.family
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
    return gen.params_at(int(rng.integers(gen.n_draws)))


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
