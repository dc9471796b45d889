"""Quadrature for posterior-probability integrals: Gauss-Legendre panels on sinh-stretched grids over
the logit (beta) or log (gamma) scale, with the ranges that hold all but a negligible mass."""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

#: Gauss-Legendre nodes (two panels of 24; three when delta != 0) of the per-replicate
#: gamma difference integrals and of the betainc-at-every-node beta rule
#: (`_beta_diff_betainc`).  On the stress set of tests/test_borrowing.py the error against
#: scipy.integrate.quad is ~1e-12 for delta = 0 and < 1e-9 for delta != 0, U-shaped
#: prior-only betas (a, b < 1) included.
N_NODES_DIFF = 48


#: Cumulative beta rule (`_beta_diff_cumulative`): Gauss-Legendre nodes per panel, panels
#: on each side of the mode, and the scale of its sinh map in logit curvature scales.
CUM_NODES = 16


CUM_PANELS = 2


CUM_STRETCH = 3.0


#: Its rows are kept when the mass residual is below ``CUM_TOL`` plus
#: ``CUM_ROUNDING * eps * (|log B(a, b)| + |log B(A, B)|)``, the rounding floor of the
#: log densities (measured residuals of resolved rows reach ~80 eps |log B|); others are
#: recomputed with `_beta_diff_betainc`.
CUM_TOL = 1e-12


CUM_ROUNDING = 100.0


#: Tail mass below which a grid end is treated as the end of the support.
TAIL_NEGLIGIBLE = 1e-15


#: Pairs per block: keeps the (nodes, pairs) work arrays of the cumulative rule in cache.
CUM_BLOCK = 512


#: Nodes for one-off integrals (ESS); accuracy over speed.
N_NODES_FINE = 256


#: Drop of the log density (from its mode) at which the integration range is cut.
#: exp(-36) ~ 2e-16: the mass left out is far below double precision of a probability.
LOG_DROP = 36.0


_GL_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _GL_CACHE:
        _GL_CACHE[n] = np.polynomial.legendre.leggauss(n)
    return _GL_CACHE[n]


@functools.cache
def panel_rule(m: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss-Legendre nodes on [0, 1] and the matrix that integrates their interpolant.

    Returns ``s`` (m,) and ``Q`` (m + 1, m): for values ``y`` at the nodes and ``p`` the
    polynomial of degree m - 1 through them, ``(Q @ y)[j]`` is :math:`\int_0^{s_j} p`
    and ``(Q @ y)[m]`` is :math:`\int_0^1 p`, the Gauss-Legendre sum (row m holds the
    weights).  With :math:`V_{jn} = P_n(x_j)` (Legendre, nodes :math:`x_j` on [-1, 1]),
    Gauss orthogonality gives :math:`V^{-1} = \operatorname{diag}(n + 1/2)\,V^T
    \operatorname{diag}(w)` exactly, so no matrix is inverted.
    """
    leg = np.polynomial.legendre
    x, w = leg.leggauss(m)
    vander_inv = (np.arange(m) + 0.5)[:, None] * leg.legvander(x, m - 1).T * w
    unit = np.eye(m)
    # antiderivative of P_n from -1, at the nodes
    anti = np.stack([leg.legval(x, leg.legint(unit[n], lbnd=-1)) for n in range(m)], axis=1)
    q = np.vstack([0.5 * anti @ vander_inv, 0.5 * w])
    s = 0.5 * (x + 1.0)
    s.flags.writeable = False
    q.flags.writeable = False
    return s, q


def sinh_grid(
    z_mode: np.ndarray,
    scale: np.ndarray,
    dz_lo: np.ndarray,
    dz_hi: np.ndarray,
    n_nodes: int,
    z_split: np.ndarray | None = None,
    grade: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Quadrature nodes and weights for :math:`\int_{z^*-\Delta_-}^{z^*+\Delta_+} \phi(z)\,dz`.

    The substitution :math:`z = z^* + s \sinh t` puts half the nodes within about one
    scale ``s`` of the mode and spreads the rest geometrically into the tails.  That suits
    log-concave densities (every beta on the logit scale, every gamma on the log scale):
    near the mode they look Gaussian, their tails decay exponentially, and in ``t`` both
    become a smooth bump on a short interval where Gauss-Legendre converges fast.

    The ``t`` interval is cut at the mode into two Gauss-Legendre panels of
    ``n_nodes // 2`` nodes.  With ``z_split`` (a point where the integrand has a kink)
    the interval is cut there as well, into three panels of ``n_nodes // 2`` nodes, so
    that every panel sees a smooth function; where the kink lies outside the range the
    longer half is cut in the middle instead.  ``grade`` (boolean, per row) marks kinks
    of the form :math:`(z - z_k)^A` with :math:`A < 1`, whose panels get nodes clustered
    at the kink.

    Returns arrays of shape ``z_mode.shape + (n_panels * (n_nodes // 2),)``.
    """
    u, w = _gauss_legendre(n_nodes // 2)
    t_lo = -np.arcsinh(dz_lo / scale)
    t_hi = np.arcsinh(dz_hi / scale)
    zero = np.zeros_like(t_lo)
    no = np.zeros(t_lo.shape, dtype=bool)
    if z_split is None:
        cuts = [t_lo, zero, t_hi]
        kink_at = [(no, no), (no, no)]  # (left end, right end) of each panel is the kink
    else:
        ts = np.arcsinh((z_split - z_mode) / scale)
        inside = (ts > t_lo) & (ts < t_hi)
        fallback = np.where(-t_lo > t_hi, 0.5 * t_lo, 0.5 * t_hi)
        ts = np.where(inside, ts, fallback)
        graded = inside if grade is None else inside & grade
        left = graded & (ts < 0)
        right = graded & (ts >= 0)
        cuts = [t_lo, np.minimum(ts, zero), np.maximum(ts, zero), t_hi]
        kink_at = [(no, left), (left, right), (right, no)]
    # Gauss-Legendre on s in [0, 1]; where ``grade`` is set, a panel end at the kink is
    # graded quadratically, t = t_k + L s^2, so that a singular (t - t_k)^A with A < 1
    # becomes s^(2A+1) (smooth for A = 1/2).  For A >= 1 grading would only coarsen the
    # rest of the panel.
    s01 = 0.5 * (u + 1.0)
    ts_, ws_ = [], []
    for (a, b), (kl, kr) in zip(zip(cuts[:-1], cuts[1:], strict=True), kink_at, strict=True):
        length = (b - a)[..., None]
        lin_t, lin_w = a[..., None] + length * s01, length * np.ones_like(s01)
        gl_t, gl_w = a[..., None] + length * s01**2, length * 2 * s01
        gr_t, gr_w = b[..., None] - length * (1 - s01) ** 2, length * 2 * (1 - s01)
        t_p = np.where(kl[..., None], gl_t, np.where(kr[..., None], gr_t, lin_t))
        w_p = np.where(kl[..., None], gl_w, np.where(kr[..., None], gr_w, lin_w))
        ts_.append(t_p)
        ws_.append(0.5 * w * w_p)
    t = np.concatenate(ts_, axis=-1)
    wt = np.concatenate(ws_, axis=-1)
    z = z_mode[..., None] + scale[..., None] * np.sinh(t)
    wz = wt * scale[..., None] * np.cosh(t)
    return z, wz


def beta_logit_range(a: np.ndarray, b: np.ndarray, drop: float = LOG_DROP, newton_steps: int = 10):
    r"""Mode, curvature scale and cut-off distances of Beta(a, b) on the logit scale.

    With :math:`z = \operatorname{logit} x` the density is
    :math:`\log f(z) = a z - (a+b)\log(1+e^z) - \log B(a,b)`, concave with mode
    :math:`z^* = \log(a/b)` and curvature :math:`ab/(a+b)` there.  Its fall from the mode
    after a step :math:`\Delta` is :math:`n\,c(\Delta)` with :math:`n=a+b`, :math:`p=a/n`,
    :math:`q=b/n` and :math:`c(\Delta) = \log(p e^\Delta + q) - p\Delta` (convex,
    :math:`c(0)=c'(0)=0`).  Newton's method solves :math:`n c(\Delta) = D` on each side
    starting outside the root (from the bounds :math:`c \ge q\Delta + \log p` and
    :math:`c \ge \log q - p\Delta`), so every iterate stays outside it: the range can only
    be too wide, never too narrow, whatever ``newton_steps``.
    """
    n = a + b
    lp = np.log(a / n)
    lq = np.log(b / n)
    p = a / n
    target = drop / n
    lpq = lp - lq

    def newton(delta: np.ndarray) -> np.ndarray:
        for _ in range(newton_steps):
            c = np.logaddexp(lp + delta, lq) - p * delta
            dc = special.expit(lpq + delta) - p
            delta = delta - (c - target) / dc
        return delta

    dz_hi = newton((target - lp) / (1.0 - p))
    dz_lo = -newton(-(target - lq) / p)
    scale = np.sqrt(1.0 / a + 1.0 / b)
    return lpq, scale, dz_lo, dz_hi


def gamma_log_range(a: np.ndarray, b: np.ndarray, drop: float = LOG_DROP):
    r"""Mode, scale and cut-off distances of Gamma(a, b) on the log scale.

    With :math:`z=\log\lambda`, :math:`\log f(z) = a z - b e^z + \text{const}`: mode
    :math:`\log(a/b)`, curvature :math:`a`, and fall :math:`a(e^\Delta - 1 - \Delta)` after a
    step :math:`\Delta`.  Newton from outside the root, as for the beta.
    """
    target = drop / a

    def newton(delta: np.ndarray) -> np.ndarray:
        for _ in range(10):
            em1 = np.expm1(delta)
            delta = delta - (em1 - delta - target) / em1
        return delta

    dz_hi = newton(np.log1p(target) + 1.0)
    dz_lo = -newton(-(target + 1.0))
    return np.log(a / b), 1.0 / np.sqrt(a), dz_lo, dz_hi
