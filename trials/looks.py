"""What each analysis sees at each look, and group-sequential stopping.

`survival_looks` gives a time-to-event trial its looks' calendar cut-offs (one sort for
all looks); `at_look` cuts the simulated patients to one look; `comparison` restricts a
look to control and one treatment arm; `sequential` stops each replicate at its first
boundary crossing and reports it at that look.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

from . import analyses as kernels
from . import survival
from .design import TrialDesign
from .methods import method_of

#: what every analysis reports per replicate
FIELDS = ("estimate", "std_error", "lower", "upper", "p_value", "decision", "posterior_prob", "prior_ess",
          "n_patients", "n_events", "stop_stage")


@functools.lru_cache(maxsize=16)
def boundaries(design_json: str):
    """The design's group-sequential boundaries, computed once per worker process."""
    return TrialDesign.model_validate_json(design_json).boundaries()


def survival_looks(design: TrialDesign, data: dict) -> None:
    """Each look's calendar cut-off (one sort for all looks) and what the looks share."""
    cutoffs = []
    for look in design.looks:
        if look == 0:  # a fixed design: the endpoint's (or generator's) cut-off
            cutoffs.append(data["cutoff"] if "cutoff" in data else design.endpoint.cutoff.model_dump(exclude_none=True))
        else:
            cutoffs.append({"events": look})
    data["cuts"] = survival.cutoff_times(data["raw_times"], cutoffs)
    methods = [method_of(a) for a in design.analyses]
    data["observed_needed"] = any(m.uses_follow_up for m in methods)
    # one risk-set computation per comparison serves log-rank and Cox: kept when Cox needs them
    keep = any(m.keeps_risk_sets for m in methods)
    data.update(risk_cache={}, arm_all=data["arm"], comparison=1, stop=None, keep_risk_sets=keep)
    gsd = boundaries(design.model_dump_json())
    if gsd is not None and gsd.sided == 1 and all(m.stops_in_risk_sets for m in methods):
        # stopped trials need no later looks: the risk sets skip them once z = U / sqrt(V)
        # (benefit-signed) crosses a bound by a margin, so `sequential` surely stops there too
        sign, margin = (1.0 if design.direction == "greater" else -1.0), 1e-9
        bounds = (gsd.futility_bounds - margin, gsd.critical_values + margin)
        data["stop"] = bounds if sign > 0 else (-bounds[1], -bounds[0])


def at_look(design: TrialDesign, data: dict, k: int) -> dict:
    """The data an analysis sees at look k: the first n_k patients, or for time to event
    the follow-up at the calendar time of the look's event count."""
    if "look_summaries" in data:
        return {**data, "summaries": data["look_summaries"][k]["pair"],
                "summaries_by_arm": data["look_summaries"][k]["by_arm"]}
    if "raw_times" in data:
        view = {**data, "look": k, "cutoff_time": data["cuts"][:, k]}
        if data["observed_needed"]:  # analyses other than the risk-set tests see each patient's follow-up
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


def comparison(view: dict, j: int, n_arms: int) -> dict:
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


def _t_scale(c: float, df) -> float:
    """A z-scale boundary c on the scale of a t statistic with df degrees of freedom
    (same tail probability), through the upper tail so that large c stay exact."""
    if df is None or not np.isfinite(c):
        return c
    return float(-special.stdtrit(df, special.ndtr(-c)))


def sequential(per_look: list[dict], gsd, direction: str) -> dict:
    """Stop each replicate at its first crossing of an efficacy or futility bound.

    The error-spending boundaries are on the z scale. Looks that report a statistic
    without a p-value (`analyses.finish` with ``p_value=False``) are compared with the
    boundaries carried to the statistic's own scale (t with the look's df: z >= c exactly
    when t >= t_df^-1(Phi(c))), and the p-value is computed at the stopping look only;
    other looks' one-sided p-values are put on the z scale (z = Phi^-1(1 - p)). A two-sided
    design compares |statistic| with its symmetric bounds and reports two-sided p-values.
    Estimates are the naive ones at the stopping look.
    """
    K = len(per_look)
    deferred = "p_value" not in per_look[0]
    two = gsd.sided == 2  # symmetric: |statistic| against the bound, two-sided p-values
    if deferred:
        stat = np.stack([r["statistic"] for r in per_look])  # (K, R)
        dfs = [r["df"] for r in per_look]
        upper = [_t_scale(c, df) for c, df in zip(gsd.critical_values, dfs)]
        lower = [_t_scale(c, df) for c, df in zip(gsd.futility_bounds, dfs)]
    else:
        p = np.stack([np.clip(r["p_value"], 1e-300, 1.0) for r in per_look])
        stat = -special.ndtri(p / 2 if two else p)
        upper, lower = gsd.critical_values, gsd.futility_bounds
    if two:
        stat = np.abs(stat)
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
        out["p_value"] = (2 if two else 1) * kernels.one_sided_p(np.take_along_axis(stat, idx, axis=0)[0], df)
    else:
        out["p_value"] = np.take_along_axis(np.stack([r["p_value"] for r in per_look]), idx, axis=0)[0]
    out["decision"] = rejected.astype(np.int8)
    out["stop_stage"] = stop + 1.0
    return out
