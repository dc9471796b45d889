r"""Time-to-event trials, vectorised over replicates: patient times with staggered entry,
dropout and a calendar or event-driven cut-off; log-rank and Cox analyses.

Event times come from inverting the control cumulative hazard H_c (exponential,
Weibull or piecewise-constant): a patient with hazard ratio h (treatment effect times
drift) has :math:`T = H_c^{-1}(E / h)`, :math:`E \sim \mathrm{Exp}(1)`.

Risk sets at every look come from `risk_sets` (one sort per trial, a merge per look).
The log-rank statistic over the distinct event times :math:`t_j` with :math:`d_j` events
(:math:`d_{1j}` treated) and :math:`n_{1j}, n_{0j}` at risk is

.. math::  U = \sum_j (d_{1j} - d_j n_{1j}/n_j), \qquad
           V = \sum_j d_j \frac{n_{1j} n_{0j}}{n_j^2} \frac{n_j - d_j}{n_j - 1},

:math:`Z = U/\sqrt V` (without ties, :math:`d_j = 1`: also the Cox score test at
:math:`\beta = 0`). ``logrank`` / ``logrank_at`` report Peto's one-step log hazard ratio
U/V (se :math:`1/\sqrt V`); ``cox_score`` / ``cox_at`` the Cox partial-likelihood maximum
(Newton, Breslow ties, all replicates at once) with its Wald interval and the score test's
p-value.
"""

from __future__ import annotations

import numba
import numpy as np

from .analyses import finish


def cumulative_hazard_inverse(target: np.ndarray, model: dict, out: np.ndarray | None = None) -> np.ndarray:
    """t with H_c(t) = target for the control hazard model (dict from `hazard_model`);
    ``out=target`` computes in place where the model allows."""
    kind = model["kind"]
    if kind == "exponential":
        return np.divide(target, model["rate"], out=out)
    if kind == "weibull":  # H(t) = rate * t^k, rate chosen so that the median matches
        t = np.divide(target, model["rate"], out=out)
        return np.power(t, 1.0 / model["shape"], out=t)
    from insilico.virtual_patients.kernels import piecewise_inverse

    return piecewise_inverse(target, np.log(np.asarray(model["hazards"], float)), np.asarray(model["cuts"], float))


def draw_times(R: int, arm: np.ndarray, hazard_ratio: np.ndarray, model: dict, accrual: float,
               dropout_rate: float, rng: np.random.Generator, entry: str = "random") -> dict[str, np.ndarray]:
    """Entry, follow-up to event or dropout, and whether it ends in an event, for R trials
    of len(arm) patients; ``hazard_ratio`` per patient (n,) or per replicate and patient
    (R, n). Patients enter in randomisation order (``arm`` is that order): ``entry`` is
    "random" (sorted uniforms over [0, accrual], (R, n)) or "regular" (i * accrual / n,
    one (n,) grid for every trial, as rpact's getSimulationSurvival)."""
    n = len(arm)
    start = entry_times(R, n, accrual, rng) if entry == "random" else np.arange(1, n + 1) * (accrual / n)
    t_event = rng.standard_exponential((R, n))
    t_event /= hazard_ratio
    t_event = cumulative_hazard_inverse(t_event, model, out=t_event)
    if dropout_rate <= 0:
        return {"entry": start, "follow": t_event, "is_event": np.ones((R, n), dtype=bool)}
    t_drop = rng.exponential(1.0 / dropout_rate, (R, n))
    return {"entry": start, "follow": np.minimum(t_event, t_drop), "is_event": t_event <= t_drop}


def entry_times(R: int, n: int, accrual: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform entry over [0, accrual], sorted: the i-th patient randomised enters i-th."""
    entry = rng.random((R, n))
    entry.sort(axis=1)
    entry *= accrual
    return entry


def _entries(raw: dict[str, np.ndarray]) -> np.ndarray:
    """Entry times as (R, n): a shared (n,) grid is broadcast (a view, not a copy)."""
    return np.broadcast_to(raw["entry"], raw["follow"].shape)


def cutoff_times(raw: dict[str, np.ndarray], cutoffs: list[dict]) -> np.ndarray:
    """Calendar time of each cut-off, (R, len(cutoffs)): ``{"events": d}`` is the time of
    the d-th event (one sort of the calendar event times serves every look),
    ``{"calendar": t}`` is t."""
    entry, follow, is_event = _entries(raw), raw["follow"], raw["is_event"]
    R, n = follow.shape
    out = np.empty((R, len(cutoffs)))
    events = [int(c["events"]) for c in cutoffs if "events" in c]
    if events and max(events) > n:
        raise ValueError(f"fewer than {max(events)} events can ever occur with {n} patients; lower the events")
    for rows in _blocks(R, n) if events else ():
        calendar_event = np.where(is_event[rows], entry[rows] + follow[rows], np.inf)
        calendar_event.sort(axis=1)  # SIMD sort: faster than a multi-k partition here
        for k, c in enumerate(cutoffs):
            if "events" in c:
                out[rows, k] = calendar_event[:, int(c["events"]) - 1]
    for k, c in enumerate(cutoffs):
        if "events" in c:
            if not np.isfinite(out[:, k]).all():
                raise ValueError(f"fewer than {c['events']} events can ever occur with {n} patients; lower the events")
        else:
            out[:, k] = float(c["calendar"])
    return out


def observe(raw: dict[str, np.ndarray], cutoff: dict) -> dict[str, np.ndarray]:
    """What an analysis sees at the cut-off: {"events": d} (calendar time of the d-th
    event) or {"calendar": t}. Patients not yet entered get time 0 and no event (never at
    risk). Returns time, event (R, n), the calendar cut-off and the number enrolled (R,)."""
    return observe_at(raw, cutoff_times(raw, [cutoff])[:, 0])


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


# ---------------------------------------------------------------------- risk sets
@numba.njit(cache=True, nogil=True)
def _risk_set_kernel(entry, follow, is_event, keys, code, cuts, keep, upper, lower):  # pragma: no cover
    """Log-rank sums and risk sets of every replicate at every cut-off (see `risk_sets`);
    ``keys`` are the sorted follow-up keys of `_follow_up_order`; a replicate whose
    log-rank z leaves (lower, upper) at a look skips the later ones (NaN there)."""
    R, n = entry.shape
    K = cuts.shape[1]
    width = n if keep else 0
    U = np.full((R, K), np.nan)
    V = np.full((R, K), np.nan)
    events = np.zeros((R, K), np.int64)
    entered = np.zeros((R, K), np.int64)
    treated = np.zeros((R, K, width))
    share = np.zeros((R, K, width))
    mask = 1
    while mask < n:
        mask <<= 1
    mask -= 1
    cum_in = np.zeros(n + 1, np.int64)  # comparison patients (code >= 0) among the first i
    cum_t = np.zeros(n + 1, np.int64)  # treated (code 1) among the first i
    in_e = np.empty(n, np.int64)
    for i in range(n):
        in_e[i] = code[i] >= 0
        cum_in[i + 1] = cum_in[i] + in_e[i]
        cum_t[i + 1] = cum_t[i] + (code[i] == 1)
    # per replicate, in follow-up order: follow-up, calendar end, position, event, code
    f_s = np.empty(n)
    end_s = np.empty(n)
    pos_s = np.empty(n, np.int64)
    ev_s = np.empty(n, np.int64)
    code_s = np.empty(n, np.int64)
    end_e = np.empty(n)  # calendar end in entry order
    done_in = np.empty(n + 1, np.int64)  # finished comparison patients among the first i (follow-up order)
    done_t = np.empty(n + 1, np.int64)
    ev_at = np.empty(n, np.int64)  # follow-up-order index of each event
    for r in range(R):
        e = entry[r]
        for i in range(n):
            p = keys[r, i] & mask
            f_s[i] = follow[r, p]
            end_s[i] = e[p] + follow[r, p]
            pos_s[i] = p
            ev_s[i] = is_event[r, p]
            code_s[i] = code[p]
            end_e[i] = e[i] + follow[r, i]
            if i > 0 and e[i] < e[i - 1]:
                raise ValueError("entry times must be sorted along the patients (randomisation order)")
        for k in range(K):
            c = cuts[r, k]
            m = np.searchsorted(e, c)  # entered strictly before the cut-off
            at_in, at_t = cum_in[m], cum_t[m]
            # finished by c (event or censored), counted in follow-up order; the events listed.
            # Flags are added, not branched on: finished or not is a coin toss the branch
            # predictor cannot learn; scalar running sums avoid a store-to-load chain
            done_in[0] = done_t[0] = 0
            d = n_in = n_t = 0
            for i in range(n):
                ok = (code_s[i] >= 0) & (pos_s[i] < m) & (end_s[i] <= c)
                n_in += ok
                n_t += ok * code_s[i]
                done_in[i + 1] = n_in
                done_t[i + 1] = n_t
                ev_at[d] = i
                d += ok & ev_s[i]
            o_in = o_t = 0  # still followed at c with c - entry < t: out of the risk set at t
            q = m - 1  # pointer down the entry order
            u = v = 0.0
            for j in range(d):
                i = ev_at[j]
                t = f_s[i]
                while q >= 0 and e[q] > c - t:
                    still = in_e[q] & (end_e[q] > c)
                    o_in += still
                    o_t += still * code[q]
                    q -= 1
                lo = i
                while lo > 0 and f_s[lo - 1] == t:  # tied follow-up: the risk set starts at the first
                    lo -= 1
                hi = i + 1
                while hi < n and f_s[hi] == t:
                    hi += 1
                at_risk = at_in - done_in[lo] - o_in
                f = (at_t - done_t[lo] - o_t) / at_risk
                u += code_s[i] - f
                if hi - lo == 1:
                    v += f * (1 - f)
                else:  # events tied at t share this risk set (Breslow); hypergeometric variance
                    tied = 0
                    for g in range(lo, hi):
                        tied += (code_s[g] >= 0) & (pos_s[g] < m) & (end_s[g] <= c) & ev_s[g]
                    if at_risk > 1:
                        v += f * (1 - f) * (at_risk - tied) / (at_risk - 1)
                if keep:
                    treated[r, k, j] = code_s[i]
                    share[r, k, j] = f
            U[r, k] = u
            V[r, k] = v
            events[r, k] = d
            entered[r, k] = at_in
            if k < K - 1 and v > 0 and not lower[k] <= u / np.sqrt(v) < upper[k]:
                break
    return U, V, events, entered, treated, share


def _follow_up_order(follow: np.ndarray) -> np.ndarray:
    """Each row's patient positions in follow-up order, as int64 keys whose low bits are
    the position (``key & (2**b - 1)``, 2**b >= n).

    The position rides in the lowest b mantissa bits of the (non-negative) follow-up
    time, which keeps its float order, so one SIMD float sort replaces an argsort at half
    the cost. Follow-up times within 2**(b - 52) of each other (relative) may come out
    swapped — continuous times practically never are; exactly tied ones (real data) keep
    position order and are found tied by their exact values.
    """
    R, n = follow.shape
    bits = max(int(n - 1).bit_length(), 1)
    keys = follow.view(np.int64) & ~np.int64((1 << bits) - 1)
    keys |= np.arange(n, dtype=np.int64)
    keys.view(np.float64).sort(axis=1)
    return keys


def risk_sets(raw: dict[str, np.ndarray], cuts: np.ndarray, code: np.ndarray, keep: bool = False,
              stop: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    r"""Log-rank sums and the risk sets of every event, for R trials at K cut-offs.

    ``raw`` holds entry (sorted along the patients), follow-up and is_event (R, n);
    ``cuts`` the calendar cut-offs (R, K); ``code`` per patient 1 = treated, 0 = control,
    -1 = not in this comparison. At cut-off c a patient entered at e is followed for
    min(follow, c - e) and is at risk at time t while that is >= t.

    One sort of the follow-up times per replicate serves every cut-off: the finished
    patients (e + follow <= c) leave the risk set in follow-up order and the ones still
    followed at c in reverse entry order (c - e), so each look is one merge of the two
    orders, O(n), not a sort. Ties share their risk set (Breslow); the log-rank variance
    is hypergeometric, :math:`V = \sum_j d_j f_j (1 - f_j)(n_j - d_j)/(n_j - 1)`.

    Returns U, V, events, entered (R, K) and, with ``keep``, treated flags and treated
    shares f of each event's risk set, (R, K, n) padded with zeros after ``events``.
    ``stop=(lower, upper)`` (K,) bounds on z = U / sqrt(V): a replicate whose z leaves
    [lower, upper) at an interim look is not followed further (U and V NaN after it),
    as a stopped trial is not; the caller keeps these bounds outside its own stopping
    rule's, so that it also stops there.
    """
    follow = np.ascontiguousarray(raw["follow"], dtype=np.float64)
    entry = _entries({"entry": np.asarray(raw["entry"], dtype=np.float64), "follow": follow})
    is_event = np.ascontiguousarray(raw["is_event"], bool)
    if (follow < 0).any():
        raise ValueError("follow-up times must be >= 0")
    code = np.ascontiguousarray(code, dtype=np.int64)
    cuts = np.ascontiguousarray(cuts, dtype=np.float64)
    K = cuts.shape[1]
    lower, upper = (np.full(K, -np.inf), np.full(K, np.inf)) if stop is None else (np.asarray(b, float) for b in stop)
    parts = []
    for rows in _blocks(*follow.shape):
        parts.append(_risk_set_kernel(entry[rows], follow[rows], is_event[rows], _follow_up_order(follow[rows]),
                                      code, cuts[rows], keep, upper, lower))
    names = ("U", "V", "events", "entered") + (("treated", "share") if keep else ())
    return {name: np.concatenate([part[i] for part in parts]) for i, name in enumerate(names)}


def comparison_risk_sets(view: dict) -> dict:
    """`risk_sets` of one look's comparison (``view``, see `insilico.trials.looks`) at every
    look, computed once per chunk and shared by the looks and the risk-set tests."""
    j = view["comparison"]
    cache = view["risk_cache"]
    if j not in cache:
        arm = view["arm_all"]
        code = np.where(arm == j, 1, np.where(arm == 0, 0, -1))
        cache[j] = risk_sets(view["raw_times"], view["cuts"], code, view["keep_risk_sets"], view["stop"])
    return cache[j]


def _blocks(R: int, n: int, cells: int = 1 << 16) -> list[slice]:
    """Row blocks of about ``cells`` patients: a block's sort keys and the kernel's
    reads stay in the processor's cache (about 15 % faster than whole chunks)."""
    step = max(cells // max(n, 1), 1)
    return [slice(lo, min(lo + step, R)) for lo in range(0, R, step)]


def _observed(time: np.ndarray, event: np.ndarray, arm: np.ndarray, keep: bool) -> dict:
    """`risk_sets` of observed data: everybody entered at 0 and followed to ``time``."""
    time = np.asarray(time, dtype=np.float64)
    raw = {"entry": np.zeros_like(time), "follow": time, "is_event": np.asarray(event).astype(bool)}
    return risk_sets(raw, np.full((time.shape[0], 1), np.inf), np.asarray(arm), keep)


def logrank(time: np.ndarray, event: np.ndarray, arm: np.ndarray, **d) -> dict[str, np.ndarray]:
    """Log-rank test of observed (R, n) times and events; arm (n,) 0/1."""
    return logrank_at(_observed(time, event, arm, False), 0, **d)


def logrank_at(risk: dict, k: int, **d) -> dict[str, np.ndarray]:
    """The log-rank test at look k of `risk_sets`: z = U / sqrt(V), Peto's log hazard
    ratio U / V with se 1 / sqrt(V)."""
    V = risk["V"][:, k]
    V = np.where(V > 0, V, np.nan)
    return finish(risk["U"][:, k] / V, 1 / np.sqrt(V), None, **d)


def cox_score(time: np.ndarray, event: np.ndarray, arm: np.ndarray, iterations: int = 25,
              **d) -> dict[str, np.ndarray]:
    """Cox PH log hazard ratio of observed (R, n) times and events (`cox_at`)."""
    return cox_at(_observed(time, event, arm, True), 0, iterations, **d)


def cox_at(risk: dict, k: int, iterations: int = 25, **d) -> dict[str, np.ndarray]:
    """Cox PH log hazard ratio (Newton from 0, Breslow ties) with Wald interval at look k
    of `risk_sets` (kept risk sets); p-value of the score test.

    With f the treated share of a risk set, the treated share weighted by the hazard
    ratio r = e^beta is p = r f / (1 - f + r f); score = sum(d_1 - p), information =
    sum p (1 - p), over the events.
    """
    width = max(int(risk["events"][:, k].max(initial=0)), 1)
    treated, f = risk["treated"][:, k, :width], risk["share"][:, k, :width]
    mask = (np.arange(width)[None, :] < risk["events"][:, k, None]).astype(np.float64)
    beta = np.zeros(treated.shape[0])
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
    out = finish(beta, 1 / np.sqrt(np.where(info > 0, info, np.nan)), None, **d)
    U = (treated - f * mask).sum(axis=1)  # the score test at beta = 0 is the log-rank test (Breslow variance)
    V = (f * (1 - f) * mask).sum(axis=1)
    score_test = finish(U / np.where(V > 0, V, np.nan), 1 / np.sqrt(np.where(V > 0, V, np.nan)), None, **d)
    out["p_value"], out["decision"] = score_test["p_value"], score_test["decision"]
    return out


def schoenfeld_power(hazard_ratio: float, events: int, allocation: float, alpha: float) -> float:
    """Schoenfeld's approximation: Phi(sqrt(d p (1 - p)) |log HR| - z_{1-alpha}), p = share treated."""
    from scipy import stats

    p = allocation
    return float(stats.norm.cdf(np.sqrt(events * p * (1 - p)) * abs(np.log(hazard_ratio)) - stats.norm.ppf(1 - alpha)))
