"""Multiple-testing procedures for several treatment-vs-control comparisons, vectorised over
replicates: each takes one-sided (or two-sided) p-values ``p`` of shape (R, m), one column per
comparison, and returns the rejections (R, m) as int8 at family-wise error ``alpha``.

* Holm (1979): step-down Bonferroni; the closed test with Bonferroni intersection tests.
* Hochberg (1988): step-up; reject every H_(j) with j <= the largest i such that
  p_(i) < alpha / (m - i + 1). FWER control under positive dependence (PRDS), which the
  common control of many-to-one comparisons gives.
* Closed testing with Simes intersection tests (Hommel 1988): H_j is rejected when every
  intersection of hypotheses containing j is rejected by Simes' test, p_(i:S) < i alpha / |S|
  for some i. Enumerates the 2^m - 1 intersections (m is the number of treatment arms).
* Graphical procedure (Bretz et al. 2009): initial weights w (sum 1) and a transition matrix G
  (zero diagonal, rows summing to at most 1); reject any H_j with p_j < w_j alpha, pass its
  weight on along G, update the graph, repeat. Holm is the graph with w = 1/m and
  g_jl = 1/(m - 1).
* Dunnett's single-step test needs no p-value procedure: each comparison is tested at the
  per-comparison level 1 - Phi(c) of the equicorrelated critical value c
  (`insilico.trials.gsd.dunnett_critical_value`).

NaN p-values (an analysis that could not be computed) are never rejected.
"""

from __future__ import annotations

import itertools

import numpy as np


def _clean(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"p-values must have shape (replicates, comparisons), got {p.shape}")
    return np.where(np.isnan(p), np.inf, p)


def _steps(p: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(order of the p-values, whether the i-th smallest passes alpha / (m - i)), i from 0."""
    order = np.argsort(p, axis=1, kind="stable")
    m = p.shape[1]
    return order, np.take_along_axis(p, order, axis=1) < alpha / (m - np.arange(m))


def _in_place(order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rejections given in p-value order, back in comparison order."""
    out = np.zeros(keep.shape, dtype=np.int8)
    np.put_along_axis(out, order, keep.astype(np.int8), axis=1)
    return out


def holm(p: np.ndarray, alpha: float) -> np.ndarray:
    order, ok = _steps(_clean(p), alpha)
    return _in_place(order, np.cumprod(ok, axis=1))  # step down: stop at the first failure


def hochberg(p: np.ndarray, alpha: float) -> np.ndarray:
    order, ok = _steps(_clean(p), alpha)
    m = ok.shape[1]
    # step up: the largest passing step rejects it and every smaller p-value
    last = np.where(ok.any(axis=1), m - 1 - np.argmax(ok[:, ::-1], axis=1), -1)
    return _in_place(order, np.arange(m)[None, :] <= last[:, None])


def closed_simes(p: np.ndarray, alpha: float) -> np.ndarray:
    p = _clean(p)
    R, m = p.shape
    survives = np.ones((R, m), dtype=bool)  # every intersection containing j rejected so far
    for size in range(1, m + 1):
        thresholds = alpha * np.arange(1, size + 1) / size
        for subset in itertools.combinations(range(m), size):
            ps = np.sort(p[:, subset], axis=1)
            rejected = (ps < thresholds).any(axis=1)
            survives[:, subset] &= rejected[:, None]
    return survives.astype(np.int8)


def check_graph(weights, transitions, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The graph as arrays, or a ValueError saying what is wrong with it."""
    w = np.asarray(weights, dtype=float)
    G = np.asarray(transitions, dtype=float)
    if w.shape != (m,):
        raise ValueError(f"graph weights: one per treatment-vs-control comparison ({m}), got {len(w)}")
    if np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
        raise ValueError(f"graph weights must be >= 0 and sum to 1, got {w.tolist()} (sum {w.sum():g})")
    if G.shape != (m, m):
        raise ValueError(f"graph transitions: an {m} x {m} matrix, got shape {G.shape}")
    if np.any(np.diag(G) != 0):
        raise ValueError(f"graph transitions: the diagonal must be 0 (no weight to itself), got {np.diag(G).tolist()}")
    if np.any(G < 0) or np.any(G.sum(axis=1) > 1 + 1e-9):
        raise ValueError("graph transitions: entries >= 0, each row summing to at most 1")
    return w, G


def graph(p: np.ndarray, alpha: float, weights, transitions) -> np.ndarray:
    p = _clean(p)
    R, m = p.shape
    w0, G0 = check_graph(weights, transitions, m)
    w = np.repeat(w0[None, :], R, axis=0)
    G = np.repeat(G0[None, :, :], R, axis=0)
    active = np.ones((R, m), dtype=bool)
    off_diagonal = ~np.eye(m, dtype=bool)[None]
    for _ in range(m):  # at most m rejections; the order of rejection does not change the result
        can = active & (p < w * alpha)
        r = np.flatnonzero(can.any(axis=1))
        if not len(r):
            break
        j = np.argmax(can[r], axis=1)  # one rejectable hypothesis per replicate
        n = np.arange(len(r))
        g_j = G[r, j, :]  # g_{j l}: where j's weight goes
        g_to_j = G[r, :, j]  # g_{l j}
        stay = active[r] & (np.arange(m)[None, :] != j[:, None])
        w[r] = np.where(stay, w[r] + w[r, j][:, None] * g_j, 0.0)
        # g_lk <- (g_lk + g_lj g_jk) / (1 - g_lj g_jl); 0 on the diagonal and where 1 - g_lj g_jl = 0
        den = 1 - g_to_j * g_j
        new = (G[r] + g_to_j[:, :, None] * g_j[:, None, :]) / np.where(den > 1e-12, den, np.inf)[:, :, None]
        keep = stay[:, :, None] & stay[:, None, :] & off_diagonal
        G[r] = np.where(keep, new, 0.0)
        active[r[n], j] = False
    return (~active).astype(np.int8)
