r"""Time-to-event trials, vectorised over replicates: patient times with staggered entry,
dropout and a calendar or event-driven cut-off; log-rank and Cox analyses.

Event times come from inverting the control cumulative hazard H_c (exponential,
Weibull or piecewise-constant): a patient with hazard ratio h (treatment effect times
drift) has :math:`T = H_c^{-1}(E / h)`, :math:`E \sim \mathrm{Exp}(1)`.

The log-rank statistic (no tied event times with continuous data) over the event times
:math:`t_j` with :math:`n_{1j}, n_{0j}` at risk in the two arms is

.. math::  U = \sum_j (d_{1j} - n_{1j}/n_j), \qquad V = \sum_j n_{1j} n_{0j} / n_j^2,

:math:`Z = U/\sqrt V` — also the Cox model's score test at :math:`\beta = 0`. ``logrank``
reports Peto's one-step log hazard ratio U/V (se :math:`1/\sqrt V`); ``cox_score`` the
Cox partial-likelihood maximum (Newton, all replicates at once) with its Wald interval,
and the score test's p-value.
"""

from __future__ import annotations

import numpy as np

from .analyses import _finish


def cumulative_hazard_inverse(target: np.ndarray, model: dict) -> np.ndarray:
    """t with H_c(t) = target for the control hazard model (dict from `hazard_model`)."""
    kind = model["kind"]
    if kind == "exponential":
        return target / model["rate"]
    if kind == "weibull":  # H(t) = rate * t^k, rate chosen so that the median matches
        return (target / model["rate"]) ** (1.0 / model["shape"])
    from virtual_patients.kernels import piecewise_inverse

    return piecewise_inverse(target, np.log(np.asarray(model["hazards"], float)), np.asarray(model["cuts"], float))


def draw_times(R: int, arm: np.ndarray, hazard_ratio: np.ndarray, model: dict, accrual: float,
               dropout_rate: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Entry (uniform over [0, accrual]), follow-up to event or dropout, and whether it
    ends in an event, for R trials of len(arm) patients; ``hazard_ratio`` per patient
    (n,) or per replicate and patient (R, n)."""
    n = len(arm)
    entry = rng.random((R, n)) * accrual  # entry independent of arm: randomised order
    t_event = cumulative_hazard_inverse(rng.standard_exponential((R, n)) / np.broadcast_to(hazard_ratio, (R, n)),
                                        model)
    t_drop = rng.exponential(1.0 / dropout_rate, (R, n)) if dropout_rate > 0 else np.full((R, n), np.inf)
    follow = np.minimum(t_event, t_drop)
    return {"entry": entry, "follow": follow, "is_event": t_event <= t_drop}


def observe(raw: dict[str, np.ndarray], cutoff: dict) -> dict[str, np.ndarray]:
    """What an analysis sees at the cut-off: {"events": d} (calendar time of the d-th
    event) or {"calendar": t}. Patients not yet entered get time 0 and no event (never at
    risk). Returns time, event (R, n), the calendar cut-off and the number enrolled (R,)."""
    entry, follow, is_event = raw["entry"], raw["follow"], raw["is_event"]
    if "events" in cutoff:
        d = int(cutoff["events"])
        calendar_event = np.where(is_event, entry + follow, np.inf)
        cut = np.partition(calendar_event, d - 1, axis=1)[:, d - 1]
        if not np.isfinite(cut).all():
            raise ValueError(f"fewer than {d} events can ever occur with {entry.shape[1]} patients; lower the events")
    else:
        cut = np.full(entry.shape[0], float(cutoff["calendar"]))
    return observe_at(raw, cut)


def observe_at(raw: dict[str, np.ndarray], cut: np.ndarray) -> dict[str, np.ndarray]:
    """`observe` at given calendar cut-offs, one per replicate (R,): also how external
    controls are followed up to the trial's own analysis time."""
    entry, follow, is_event = raw["entry"], raw["follow"], raw["is_event"]
    cut = np.asarray(cut, dtype=float)
    available = np.clip(cut[:, None] - entry, 0.0, None)
    time = np.minimum(follow, available)
    # compare calendar times, as the cut-off was found: cut - entry can round below follow
    event = (is_event & (entry + follow <= cut[:, None]) & (available > 0)).astype(np.int8)
    entered = entry < cut[:, None]
    return {"time": time, "event": event, "cutoff_time": cut, "enrolled": entered.sum(axis=1), "entered": entered}


def simulate_times(R: int, arm: np.ndarray, hazard_ratio: np.ndarray, model: dict, accrual: float,
                   dropout_rate: float, cutoff: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`draw_times` then `observe` at one cut-off."""
    return observe(draw_times(R, arm, hazard_ratio, model, accrual, dropout_rate, rng), cutoff)


def _sorted_by_time(time: np.ndarray, event: np.ndarray, arm: np.ndarray):
    """Per replicate, in time order: treated flags, event flags, and the treated share of
    each risk set.

    One in-place sort: the (arm, event) flags ride in the two lowest bits of the int64
    view of the non-negative times (whose order is the floats' order; times within 3 ulp
    could swap, which continuous data never produce), so no argsort and no gathers.
    Patients not yet enrolled have time 0 and sort first, so position j has exactly the
    n - j patients at positions >= j at risk.
    """
    R, n = time.shape
    key = np.ascontiguousarray(time, dtype=np.float64).view(np.int64) & ~np.int64(3)
    key |= event.astype(np.int64)
    key |= np.broadcast_to(arm, (R, n)).astype(np.int64) << 1
    key.sort(axis=1)
    trt = ((key >> 1) & 1).astype(np.int32)
    ev = (key & 1).astype(np.float64)
    share = np.cumsum(trt[:, ::-1], axis=1, dtype=np.int32)[:, ::-1] * (1.0 / (n - np.arange(n)))
    return trt, ev, share


def _event_risk_sets(time: np.ndarray, event: np.ndarray, arm: np.ndarray):
    """The events only, packed per replicate as (R, max events) arrays: treated flag,
    treated share of the risk set, and a 0/1 mask (for the Newton iterations of Cox)."""
    trt, ev, share_all = _sorted_by_time(time, event, arm)
    R = time.shape[0]
    rows, cols = np.nonzero(ev)
    counts = np.bincount(rows, minlength=R)
    width = max(int(counts.max(initial=0)), 1)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    share = np.zeros((R, width))
    treated = np.zeros((R, width))
    mask = np.zeros((R, width))
    share[rows, slot] = share_all[rows, cols]
    treated[rows, slot] = trt[rows, cols]
    mask[rows, slot] = 1.0
    return treated, share, mask


def logrank(time: np.ndarray, event: np.ndarray, arm: np.ndarray, **d) -> dict[str, np.ndarray]:
    trt, ev, f = _sorted_by_time(time, event, arm)
    U = np.einsum("ij,ij->i", ev, trt.astype(np.float64)) - np.einsum("ij,ij->i", ev, f)
    V = np.einsum("ij,ij->i", ev, f) - np.einsum("ij,ij,ij->i", ev, f, f)
    V = np.where(V > 0, V, np.nan)
    return _finish(U / V, 1 / np.sqrt(V), None, **d)


def cox_score(time: np.ndarray, event: np.ndarray, arm: np.ndarray, iterations: int = 25,
              **d) -> dict[str, np.ndarray]:
    """Cox PH log hazard ratio (Newton from 0) with Wald interval; p-value of the score test.

    With f the treated share of a risk set, the treated share weighted by the hazard
    ratio r = e^beta is p = r f / (1 - f + r f); score = sum(d_1 - p), information =
    sum p (1 - p), over the events.
    """
    treated, f, mask = _event_risk_sets(time, event, arm)
    beta = np.zeros(time.shape[0])
    for _ in range(iterations):
        r = np.exp(beta)[:, None]
        p = r * f / (1 - f + r * f)
        score = (treated - p * mask).sum(axis=1)
        info = (p * (1 - p) * mask).sum(axis=1)
        step = np.where(info > 0, score / np.where(info > 0, info, 1.0), 0.0)
        beta = np.clip(beta + step, -20, 20)  # bounded: an arm without events has no finite MLE
        if np.all(np.abs(step) < 1e-10):
            break
    r = np.exp(beta)[:, None]
    p = r * f / (1 - f + r * f)
    info = (p * (1 - p) * mask).sum(axis=1)
    out = _finish(beta, 1 / np.sqrt(np.where(info > 0, info, np.nan)), None, **d)
    U = (treated - f * mask).sum(axis=1)  # the score test at beta = 0 is the log-rank test
    V = (f * (1 - f) * mask).sum(axis=1)
    score_test = _finish(U / np.where(V > 0, V, np.nan), 1 / np.sqrt(np.where(V > 0, V, np.nan)), None, **d)
    out["p_value"], out["decision"] = score_test["p_value"], score_test["decision"]
    return out


def schoenfeld_power(hazard_ratio: float, events: int, allocation: float, alpha: float) -> float:
    """Schoenfeld's approximation: Phi(sqrt(d p (1 - p)) |log HR| - z_{1-alpha}), p = share treated."""
    from scipy import stats

    p = allocation
    return float(stats.norm.cdf(np.sqrt(events * p * (1 - p)) * abs(np.log(hazard_ratio)) - stats.norm.ppf(1 - alpha)))
