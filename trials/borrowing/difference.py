"""Pr(theta_t - theta_c > delta) for pairs of mixture posteriors, vectorised over replicates:
exact for normal pairs, quadrature for beta and gamma pairs (a checked cumulative rule, with
betainc at every node as the fallback), deduplicated over identical posteriors."""

from __future__ import annotations

import numpy as np
from scipy import special

from .base import MixtureBase, as_float
from .mixtures import BetaMixture, Mixture, NormalMixture
from .quadrature import (
    CUM_BLOCK,
    CUM_NODES,
    CUM_PANELS,
    CUM_ROUNDING,
    CUM_STRETCH,
    CUM_TOL,
    N_NODES_DIFF,
    TAIL_NEGLIGIBLE,
    beta_logit_range,
    gamma_log_range,
    panel_rule,
    sinh_grid,
)


def _pairs(post_t: MixtureBase, post_c: MixtureBase):
    """Broadcast two batched mixtures and flatten to (M, Kt) and (M, Kc) arrays."""
    shape = np.broadcast_shapes(post_t.batch_shape, post_c.batch_shape)
    t = post_t.broadcast_to(shape)
    c = post_c.broadcast_to(shape)
    m = int(np.prod(shape))
    flat = [x.reshape(m, -1) for x in (t.weights, *t._params(), c.weights, *c._params())]
    return shape, flat


def _beta_diff_pairs(a1, b1, a2, b2, delta):
    r"""Pr(X1 - X2 > delta) for X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2); 1-d arrays.

    One-dimensional integral over the density :math:`f_N` of one of the two betas:

    * over X1: :math:`\int f_{X_1}(u)\, I_{u-\delta}(a_2, b_2)\, du`;
    * over :math:`U = 1 - X_2 \sim \mathrm{Beta}(b_2, a_2)`: with
      :math:`\Pr(X_1 > 1 - u + \delta) = I_{u-\delta}(b_1, a_1)`,
      :math:`\int f_U(u)\, I_{u-\delta}(b_1, a_1)\, du`.

    Both read :math:`\int f_N(u)\, I_{u-\delta}(A, B)\, du` with ``I`` the regularised
    incomplete beta function (clipped to [0, 1]).  The cumulative rule
    (`_beta_diff_cumulative`) first takes as :math:`f_N` the beta with the larger
    :math:`a + b`: on the logit scale a beta's log density has curvature
    :math:`(a+b)\,\sigma(z)\sigma(-z)`, so the other density is the flatter one at every
    point of the grid.  Rows it does not accept (a density not resolved, a kink at
    :math:`u = \delta` inside the range) are tried over the other beta, whose range may
    not contain the kink, and the rest recomputed with `_beta_diff_betainc`.
    """
    prob = np.full(a1.size, np.nan)
    larger_first = a1 + b1 >= a2 + b2
    for over_x1 in (larger_first, ~larger_first):
        todo = np.isnan(prob)
        if not np.any(todo):
            break
        x1 = over_x1[todo]
        a1t, b1t, a2t, b2t = a1[todo], b1[todo], a2[todo], b2[todo]
        prob[todo] = _batch_invariant(
            _beta_diff_cumulative,
            np.where(x1, a1t, b2t),
            np.where(x1, b1t, a2t),
            np.where(x1, a2t, b1t),
            np.where(x1, b2t, a1t),
            delta[todo],
        )
    redo = np.isnan(prob)
    if np.any(redo):
        prob[redo] = _batch_invariant(_beta_diff_betainc, a1[redo], b1[redo], a2[redo], b2[redo], delta[redo])
    return prob


def _batch_invariant(kernel, *cols):
    """``kernel(*cols)`` on 1-d columns (the margin last), each row's result a function of
    that row alone.

    The kernels choose their grid (or the form of the integrand) per call from the
    margins, so rows with and without a margin go to separate calls; and numpy reduces a
    (nodes, 1) array in another order than a wider one, so a single row is evaluated as
    two copies of itself.  Results must not depend on how pairs are batched
    (``prob_diff_greater`` with and without ``dedupe``, or replicate by replicate).
    """
    out = np.empty(cols[0].size)
    margin = cols[-1] != 0
    for rows in (~margin, margin):
        n = np.count_nonzero(rows)
        if n:
            sub = [c[rows] for c in cols]
            out[rows] = kernel(*(np.repeat(c, 2) for c in sub) if n == 1 else sub)[:n]
    return out


def _beta_cdf_at_end(a, b, log_beta, v, vc, side: int) -> np.ndarray:
    r""":math:`I_v(a, b)` at the left (``side=-1``) or right (``+1``) end of a grid; ``vc = 1 - v``.

    Outside (0, 1) it is 0 or 1.  Beyond the logit mode :math:`a/(a+b)`, on the side of
    the end, the density :math:`\phi(y)` of :math:`y = \operatorname{logit} v` is
    log-concave and so lies under its tangent: the mass beyond :math:`y` is at most
    :math:`\phi(y)/|(\log\phi)'(y)|`, :math:`(\log\phi)'(y) = a - (a+b)v`.  Where that
    bound is below ``TAIL_NEGLIGIBLE`` the value is 0 (left) or 1 (right) without a
    ``betainc`` call.
    """
    out = np.where(v <= 0, 0.0, np.where(vc <= 0, 1.0, np.nan))
    rest = np.isnan(out)
    a, b, lb, v, vc = a[rest], b[rest], log_beta[rest], v[rest], vc[rest]
    with np.errstate(divide="ignore"):
        bound = np.exp(a * np.log(v) + b * np.log(vc) - lb) / np.abs(a - (a + b) * v)
    tail = (side * (v - a / (a + b)) > 0) & (bound < TAIL_NEGLIGIBLE)
    val = np.full(v.shape, 0.5 + 0.5 * side)
    val[~tail] = special.betainc(a[~tail], b[~tail], v[~tail])
    out[rest] = val
    return out


def _beta_diff_cumulative(an, bn, ca, cb, delta):
    r""":math:`\int f_N(u)\, I_{u-\delta}(A, B)\, du` by the cumulative rule; 1-d arrays
    (``an, bn`` the parameters of :math:`f_N`, ``ca, cb`` those of ``I``).

    The grid is sinh-mapped as in `sinh_grid`, on the logit scale around the mode of
    :math:`f_N` and over its range (`beta_logit_range`), with ``CUM_PANELS`` panels of
    ``CUM_NODES`` Gauss-Legendre nodes on each side and ``CUM_STRETCH`` curvature
    scales as the sinh scale.  On it,

    * :math:`f_N(z) = \exp(a\ell_1 + b\ell_2)/B(a, b)`, with :math:`\ell_1 = \log\sigma(z)`
      and :math:`\ell_2 = \log\sigma(-z)`;
    * :math:`h(z) = \frac{d}{dz} I_{\sigma(z)-\delta}(A, B)`, for :math:`\delta = 0` the
      logit-scale density of Beta(A, B);
    * ``I`` at the nodes is its value at the left end of the grid
      (`_beta_cdf_at_end`) plus the integrals of the polynomials interpolating :math:`h`
      panel by panel (`panel_rule`).

    So the cost is two densities per node and at most two ``betainc`` calls per pair,
    instead of one ``betainc`` per node.

    Acceptance.  The rule must reproduce two known masses: :math:`\sum W f_N = 1` (the range
    leaves out < 1e-15) and :math:`I_{lo} + \sum W h = I_{hi}` (end values again from
    `_beta_cdf_at_end`).  A density the grid does not resolve, or a kink of
    :math:`I_{u-\delta}` at :math:`u = \delta` (or :math:`1 + \delta`) inside the range,
    shows in these residuals; a row is accepted when their sum is below ``CUM_TOL`` plus
    the rounding floor ``CUM_ROUNDING * eps * (|log B(a, b)| + |log B(A, B)|)``.  This is
    a check, not a proof; tests/test_borrowing.py measures the error of accepted rows
    against ``scipy.integrate.quad``.

    Returns the probabilities, NaN where a row is not accepted.
    """
    # fewer Newton steps leave the range a little wider, never narrower
    z_mode, scale, dlo, dhi = beta_logit_range(an, bn, newton_steps=4)
    half = 0.5 * CUM_STRETCH * scale  # z = z_mode + 2 * half * sinh(t)
    t_lo = -np.arcsinh(dlo / (2 * half))
    t_hi = np.arcsinh(dhi / (2 * half))
    log_bf = special.betaln(an, bn)
    log_bg = special.betaln(ca, cb)
    # I at the grid ends, with 1 - u from expit(-z) so that it keeps its digits
    z_lo, z_hi = z_mode - dlo, z_mode + dhi
    i_lo = _beta_cdf_at_end(ca, cb, log_bg, special.expit(z_lo) - delta, special.expit(-z_lo) + delta, -1)
    i_hi = _beta_cdf_at_end(ca, cb, log_bg, special.expit(z_hi) - delta, special.expit(-z_hi) + delta, 1)
    prob = np.empty(an.size)
    resid = np.empty(an.size)
    bounds = list(range(0, an.size, CUM_BLOCK)) + [an.size]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]  # no block of a single pair (see `_batch_invariant`)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        blk = slice(lo, hi)
        prob[blk], f_mass, i_end = _cumulative_block(
            an[blk], bn[blk], ca[blk], cb[blk], delta[blk], z_mode[blk], half[blk], t_lo[blk], t_hi[blk],
            log_bf[blk], log_bg[blk], i_lo[blk],
        )
        resid[blk] = np.abs(f_mass - 1.0) + np.abs(i_end - i_hi[blk])
    tol = CUM_TOL + CUM_ROUNDING * np.finfo(float).eps * (np.abs(log_bf) + np.abs(log_bg))
    return np.where(resid <= tol, prob, np.nan)  # a NaN residual is not accepted either


def _beta_density_on_logit(l1, l2, a, b, log_beta, jac, out, tmp) -> None:
    """out = Beta(a, b) density at u = expit(z) times du/dz (``jac``), from
    l1 = log u and l2 = log(1 - u); in place (``tmp`` is scratch)."""
    np.multiply(l1, a, out=out)
    np.multiply(l2, b, out=tmp)
    out += tmp
    out -= log_beta
    np.exp(out, out=out)
    out *= jac


def _cumulative_block(an, bn, ca, cb, delta, z_mode, half, t_lo, t_hi, log_bf, log_bg, i_lo):
    """Node work of `_beta_diff_cumulative` for one block of pairs, on (nodes, pairs)
    arrays: the probability, the mass of f_N and I at the right end of the grid."""
    s, q = panel_rule(CUM_NODES)
    gl_w = q[-1][:, None]
    cuts = [t_lo * (1.0 - k / CUM_PANELS) for k in range(CUM_PANELS)]
    cuts += [t_hi * (k / CUM_PANELS) for k in range(CUM_PANELS + 1)]
    shifted = bool(np.any(delta))
    shape = (CUM_NODES, an.size)
    e, e_inv, z, jac, l1, l2, f, h, tmp = (np.empty(shape) for _ in range(9))
    prob = np.zeros(an.size)
    f_mass = np.zeros(an.size)
    cum = i_lo.copy()  # I at the left end of the current panel
    for t0, t1 in zip(cuts[:-1], cuts[1:], strict=True):
        length = t1 - t0
        np.multiply.outer(s, length, out=e)
        e += t0
        np.exp(e, out=e)
        np.divide(1.0, e, out=e_inv)
        np.subtract(e, e_inv, out=z)
        z *= half
        z += z_mode
        np.add(e, e_inv, out=jac)
        jac *= half * length
        # l1 = log expit(z) = min(z, 0) - log1p(exp(-|z|)), l2 = l1 - z
        np.abs(z, out=tmp)
        np.negative(tmp, out=tmp)
        np.exp(tmp, out=tmp)
        np.log1p(tmp, out=tmp)
        np.minimum(z, 0.0, out=l1)
        l1 -= tmp
        np.subtract(l1, z, out=l2)
        _beta_density_on_logit(l1, l2, an, bn, log_bf, jac, f, tmp)
        f *= gl_w
        if shifted:
            # h = Beta(A, B) density at v = u - delta times du/dz = u (1 - u), 0 off (0, 1)
            v = np.exp(l1) - delta
            vc = np.exp(l2) + delta
            with np.errstate(divide="ignore", invalid="ignore"):
                log_h = (ca - 1) * np.log(v) + (cb - 1) * np.log(vc) + l1 + l2 - log_bg
            np.exp(np.where((v > 0) & (vc > 0), log_h, -np.inf), out=h)
            h *= jac
        else:
            _beta_density_on_logit(l1, l2, ca, cb, log_bg, jac, h, tmp)
        # rows 0..m-1: integral of the interpolant from the panel start to each node; row
        # m: over the whole panel.  einsum, not BLAS, whose rounding depends on the number
        # of pairs: results must not depend on how pairs are batched (``dedupe``)
        part = np.einsum("jk,kc->jc", q, h)
        f_panel = f.sum(axis=0)
        part[:-1] *= f
        prob += cum * f_panel + part[:-1].sum(axis=0)
        f_mass += f_panel
        cum += part[-1]
    return prob, f_mass, cum


def _beta_diff_betainc(a1, b1, a2, b2, delta, n_nodes=N_NODES_DIFF):
    r"""Pr(X1 - X2 > delta) for beta pairs with ``betainc`` at every node; 1-d arrays.

    Integrates :math:`\int f_N(u)\, I_{u-\delta}(A, B)\, du` of `_beta_diff_pairs` over the
    narrower (smaller variance) of the two betas, whose quadrature grid then also
    resolves the other's smoother distribution function, on the logit scale over the
    sinh-mapped Gauss-Legendre grid of ``sinh_grid``.  About 0.3 us per ``betainc``
    call: the fallback of the cumulative rule.
    """
    sd1sq = a1 * b1 / ((a1 + b1) ** 2 * (a1 + b1 + 1))
    sd2sq = a2 * b2 / ((a2 + b2) ** 2 * (a2 + b2 + 1))
    first = sd1sq <= sd2sq
    an = np.where(first, a1, b2)
    bn = np.where(first, b1, a2)
    ca = np.where(first, a2, b1)
    cb = np.where(first, b2, a1)
    z_mode, scale, dlo, dhi = beta_logit_range(an, bn)
    # I_{u - delta} is clipped at u = delta (delta > 0) or u = 1 + delta (delta < 0): a
    # kink in the integrand (a jump in slope when A = 1), so split the grid there
    with np.errstate(divide="ignore", invalid="ignore"):
        z_kink = special.logit(np.where(delta > 0, delta, 1.0 + delta))
    # near the kink I_v(A, B) ~ v^A (delta > 0) or 1 - (1-v)^B (delta < 0)
    singular = np.where(delta > 0, ca, cb) < 1
    z, wz = sinh_grid(z_mode, scale, dlo, dhi, n_nodes, None if np.all(delta == 0) else z_kink, singular)
    an1 = an[:, None]
    bn1 = bn[:, None]
    log_dens = an1 * special.log_expit(z) + bn1 * special.log_expit(-z) - special.betaln(an, bn)[:, None]
    v = np.clip(special.expit(z) - delta[:, None], 0.0, 1.0)
    g = special.betainc(ca[:, None], cb[:, None], v)
    return np.sum(np.exp(log_dens) * wz * g, axis=-1)


def _gamma_diff_pairs(a1, b1, a2, b2, delta, n_nodes=N_NODES_DIFF):
    r"""Pr(X1 - X2 > delta) for gamma (shape, rate) variables; 1-d arrays.

    ``delta = 0`` is exact in closed form: with :math:`X_i = G_i/b_i`,
    :math:`G_i\sim\mathrm{Gamma}(a_i, 1)` independent, :math:`G_1/(G_1+G_2)\sim
    \mathrm{Beta}(a_1, a_2)` and :math:`X_1 > X_2 \iff G_1/(G_1+G_2) > b_1/(b_1+b_2)`, so

    .. math:: \Pr(X_1 > X_2) = I_{b_2/(b_1+b_2)}(a_2, a_1).

    Otherwise by quadrature over the narrower density (:func:`_gamma_diff_quad`).
    """
    out = special.betainc(a2, a1, b2 / (b1 + b2))
    nz = delta != 0
    if np.any(nz):
        out[nz] = _gamma_diff_quad(a1[nz], b1[nz], a2[nz], b2[nz], delta[nz], n_nodes)
    return out


def _gamma_diff_quad(a1, b1, a2, b2, delta, n_nodes=N_NODES_DIFF):
    r"""Pr(X1 - X2 > delta) for gamma variables by quadrature; 1-d arrays.

    Over the narrower density: X1 narrower,
    :math:`\int f_{X_1}(x) P(a_2, b_2(x-\delta)^+)\,dx`; X2 narrower,
    :math:`\int f_{X_2}(y) [1 - P(a_1, b_1 (y+\delta)^+)]\,dy` with ``P`` the regularised
    lower incomplete gamma function.  Log-scale sinh grid.
    """
    sd1sq = a1 / b1**2
    sd2sq = a2 / b2**2
    first = sd1sq <= sd2sq
    an = np.where(first, a1, a2)
    bn = np.where(first, b1, b2)
    ca = np.where(first, a2, a1)
    cb = np.where(first, b2, b1)
    shift = np.where(first, -delta, delta)
    z_mode, scale, dlo, dhi = gamma_log_range(an, bn)
    # the incomplete gamma is clipped where x + shift = 0: split the grid at that kink
    with np.errstate(divide="ignore", invalid="ignore"):
        z_kink = np.log(np.where(-shift > 0, -shift, np.nan))
    # near the kink P(A, B y) ~ y^A: cluster nodes there when A < 1
    z, wz = sinh_grid(z_mode, scale, dlo, dhi, n_nodes, None if np.all(delta == 0) else z_kink, ca < 1)
    an1 = an[:, None]
    bn1 = bn[:, None]
    x = np.exp(z)
    log_dens = an1 * (z + np.log(bn1)) - bn1 * x - special.gammaln(an1)
    gi = special.gammainc(ca[:, None], cb[:, None] * np.maximum(x + shift[:, None], 0.0))
    g = np.where(first[:, None], gi, 1.0 - gi)
    return np.sum(np.exp(log_dens) * wz * g, axis=-1)


#: Component pairs whose joint weight is below this are skipped: the probability they
#: would add is at most their weight, so the total error is at most Kt*Kc*1e-13.
_PAIR_WEIGHT_FLOOR = 1e-13


def _mixture_diff(wt, p1t, p2t, wc, p1c, p2c, delta, kernel):
    m, kt = wt.shape
    kc = wc.shape[1]
    wpair = (wt[:, :, None] * wc[:, None, :]).reshape(m, kt * kc)
    keep = wpair > _PAIR_WEIGHT_FLOOR
    row = np.broadcast_to(np.arange(m)[:, None], keep.shape)[keep]
    jt = np.broadcast_to(np.repeat(np.arange(kt), kc)[None, :], keep.shape)[keep]
    jc = np.broadcast_to(np.tile(np.arange(kc), kt)[None, :], keep.shape)[keep]
    prob = kernel(p1t[row, jt], p2t[row, jt], p1c[row, jc], p2c[row, jc], delta[row])
    out = np.bincount(row, weights=wpair[keep] * prob, minlength=m)
    # renormalise by the kept weight: exact when nothing was dropped
    return np.clip(out / np.bincount(row, weights=wpair[keep], minlength=m), 0.0, 1.0)


def _unique_rows(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of distinct rows and the inverse map, exactly.

    ``np.unique(axis=0)`` sorts structured rows and costs ~10 us per row; instead rows are
    grouped by a random projection (a 1-d float sort), and the grouping is verified
    bitwise-equal row by row, falling back to ``np.unique(axis=0)`` on a collision.
    """
    proj = key @ np.random.default_rng(20240531).standard_normal(key.shape[1])
    _, first, inverse = np.unique(proj, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not np.array_equal(key[first][inverse], key):  # pragma: no cover - collision
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    return first, inverse


def prob_diff_greater(post_t: Mixture, post_c: Mixture, delta=0.0, *, dedupe: bool = True) -> np.ndarray:
    r"""Posterior probability :math:`\Pr(\theta_t - \theta_c > \delta \mid \text{data})`.

    For independent mixtures :math:`\theta_t \sim \sum_j v_j f_j`,
    :math:`\theta_c \sim \sum_k w_k g_k`,

    .. math:: \Pr(\theta_t-\theta_c>\delta) = \sum_{j,k} v_j w_k
              \int f_j(x)\,[1 - G_k(x - \delta)]\,dx .

    * Normal mixtures: closed form, the difference of two normals is normal:
      :math:`\sum_{jk} v_j w_k\,\Phi\big((m_j - m_k - \delta)/\sqrt{s_j^2+s_k^2}\big)`.
    * Gamma mixtures with :math:`\delta = 0`: closed form per pair,
      :math:`\Pr(\lambda_j > \lambda_k) = I_{\beta_k/(\beta_j+\beta_k)}(\alpha_k, \alpha_j)`.
    * Beta mixtures: each pair's integral over one density on a sinh-mapped logit grid of
      64 nodes, the other's distribution function accumulated on the same grid from its
      density (`_beta_diff_cumulative`, ~2 us per pair).  Every pair is checked by two
      mass residuals; pairs that fail are integrated with ``betainc`` at 48 nodes
      instead (`_beta_diff_betainc`).  Error against ``scipy.integrate.quad`` < 1e-10 on
      random unique cases (measured ~1e-12 for power-prior and robust MAP posteriors),
      < 1e-8 on the test stress set of kinked and U-shaped cases.
    * Gamma mixtures with a margin: 48-node Gauss-Legendre rule on a sinh-mapped log
      scale over the narrower density (error < 1e-9 against ``scipy.integrate.quad``).

    Parameters
    ----------
    post_t, post_c : BetaMixture | NormalMixture | GammaMixture
        Posteriors (or priors) of the same family; batch shapes broadcast, e.g. ``(R,)``
        against ``()``.
    delta : float or array_like
        Margin, broadcasting against the batch shape.
    dedupe : bool
        Evaluate each distinct pair of posteriors once.  Binomial and Poisson data give
        at most ``(n_t+1)(n_c+1)`` distinct posteriors whatever the number of replicates,
        which makes chunks of simulated trials cheap; the result is identical.

    Returns
    -------
    numpy.ndarray
        Probabilities of the broadcast batch shape.
    """
    if type(post_t) is not type(post_c):
        raise TypeError(
            f"post_t and post_c must be the same mixture family, got {type(post_t).__name__} "
            f"and {type(post_c).__name__}"
        )
    shape, (wt, p1t, p2t, wc, p1c, p2c) = _pairs(post_t, post_c)
    d = np.broadcast_to(as_float("delta", delta), shape).reshape(-1)
    if isinstance(post_t, NormalMixture):
        mu = p1t[:, :, None] - p1c[:, None, :] - d[:, None, None]
        s = np.sqrt(p2t[:, :, None] ** 2 + p2c[:, None, :] ** 2)
        w = wt[:, :, None] * wc[:, None, :]
        return np.sum(w * special.ndtr(mu / s), axis=(1, 2)).reshape(shape)
    kernel = _beta_diff_pairs if isinstance(post_t, BetaMixture) else _gamma_diff_pairs
    cols = [wt, p1t, p2t, wc, p1c, p2c, d[:, None]]
    if dedupe and d.size > 1:
        key = np.concatenate(cols, axis=1)
        first, inverse = _unique_rows(key)
        if first.size < key.shape[0]:
            u = [c[first] for c in cols]
            res = _mixture_diff(u[0], u[1], u[2], u[3], u[4], u[5], u[6][:, 0], kernel)
            return res[inverse].reshape(shape)
    return _mixture_diff(wt, p1t, p2t, wc, p1c, p2c, d, kernel).reshape(shape)
