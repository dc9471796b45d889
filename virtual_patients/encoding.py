"""Turning patient tables into the numeric design the models work on, and back.

Every covariate gets an `Encoder` learned once from the fitting data and saved with the
generator, so that real patients, held-out patients and virtual patients are encoded
identically:

* continuous: z = (f(x) - mean) / sd with f the spec's transform (identity, log, log1p,
  or quantile: normal scores of the empirical CDF, a Gaussian-copula margin; a count
  covariate with the quantile transform is encoded this way too);
* count: z = (log1p(x) - mean) / sd as a predictor; modelled as negative binomial;
* binary: 0/1 indicator of the second level;
* categorical: K-1 treatment-coded dummies (first level is the reference).

The design matrix D of a patient is the concatenation of the predictor columns of all
covariates in spec order; covariate j is modelled given the columns of covariates < j.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from insilico.common.errors import InputError
from insilico.common.tables import level_key

from .spec import CovariateType, GeneratorSpec, Transform


@dataclass(frozen=True)
class Encoder:
    name: str
    type: str
    levels: list = field(default_factory=list)  # binary/categorical, in model order
    mean: float = 0.0  # of the transformed value (continuous/count)
    sd: float = 1.0
    transform: str = "none"
    range: tuple[float, float] | None = None
    integer: bool = False  # values are whole numbers in the data (reported back as such)
    knots: list = field(default_factory=list)  # quantile transform: quantiles at QUANTILE_PROBS

    @property
    def width(self) -> int:
        """Number of design columns this covariate contributes."""
        if self.type == "categorical":
            return len(self.levels) - 1
        return 1

    @property
    def column_names(self) -> list[str]:
        if self.type == "categorical":
            return [f"{self.name}[{lvl}]" for lvl in self.levels[1:]]
        return [self.name]

    # ---------------------------------------------------------------- forward
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Transformed-and-standardised value (continuous/count)."""
        if self.transform == "quantile":
            return (_normal_scores(np.asarray(x, dtype=float), self.knots) - self.mean) / self.sd
        return (_transform(x, self.transform if self.type == "continuous" else "log1p") - self.mean) / self.sd

    def inverse(self, z: np.ndarray) -> np.ndarray:
        if self.transform == "quantile":
            return _quantile_function(special.ndtr(z * self.sd + self.mean), self.knots)
        return _untransform(z * self.sd + self.mean, self.transform)

    def codes(self, values: pd.Series) -> np.ndarray:
        """Integer level codes (binary/categorical); -1 for values outside the levels."""
        lookup = {str(v): i for i, v in enumerate(self.levels)}
        return values.map(lambda v: lookup.get(level_key(v), -1)).to_numpy(dtype=np.int64)

    def design(self, values: pd.Series) -> np.ndarray:
        """Design columns, shape (n, width)."""
        if self.type in ("continuous", "count"):
            return self.forward(values.to_numpy(dtype=float))[:, None]
        codes = self.codes(values)
        if (codes < 0).any():
            bad = sorted({str(v) for v, c in zip(values, codes, strict=True) if c < 0})[:5]
            raise InputError(f"covariate '{self.name}': values {bad} are not among the fitted levels {self.levels}")
        if self.type == "binary":
            return codes[:, None].astype(float)
        return (codes[:, None] == np.arange(1, len(self.levels))[None, :]).astype(float)

    def to_dict(self) -> dict:
        return asdict(self)


# Interior probabilities only: the stored margin never holds a single patient's extreme value.
QUANTILE_PROBS = np.linspace(0.0025, 0.9975, 201)


def _quantile_function(p: np.ndarray, knots: list) -> np.ndarray:
    """Linear interpolation of the knots at probabilities p (np.interp on the uniform
    QUANTILE_PROBS grid, by direct indexing instead of a binary search)."""
    q = np.asarray(knots, dtype=float)
    step = QUANTILE_PROBS[1] - QUANTILE_PROBS[0]
    f = np.clip((np.asarray(p, dtype=float) - QUANTILE_PROBS[0]) / step, 0.0, len(q) - 1)
    i = np.minimum(f.astype(np.intp), len(q) - 2)
    f -= i
    return q[i] + f * (q[i + 1] - q[i])


def _normal_scores(x: np.ndarray, knots: list) -> np.ndarray:
    """Normal scores of x under the empirical CDF given by its quantile knots.

    Tied knots (a point mass, e.g. many zeros) map to the middle of their probability
    range, as mid-ranks would.
    """
    q = np.asarray(knots, dtype=float)
    uq, inv = np.unique(q, return_inverse=True)
    p_mid = np.bincount(inv, weights=QUANTILE_PROBS) / np.bincount(inv)
    p = np.interp(x, uq, p_mid) if len(uq) > 1 else np.full(np.shape(x), 0.5)
    return special.ndtri(p)


def distributional_scores(x: np.ndarray, enc: Encoder, seed: int) -> np.ndarray:
    """Standardised normal scores of the fitting data with ties spread at random.

    The distributional transform U = F(x-) + V (F(x) - F(x-)), V ~ U(0, 1), is exactly
    uniform even where the margin has point masses (many zeros), so the normal model of
    the scores fits the margin; the value itself enters other models through its
    (deterministic) mid-rank score. Seeded: the same data always give the same fit.
    """
    x = np.asarray(x, dtype=float)
    srt = np.sort(x)
    lo = np.searchsorted(srt, x, side="left") / len(x)
    hi = np.searchsorted(srt, x, side="right") / len(x)
    u = lo + np.random.default_rng(seed).random(len(x)) * (hi - lo)
    u = np.clip(u, QUANTILE_PROBS[0], QUANTILE_PROBS[-1])
    return (special.ndtri(u) - enc.mean) / enc.sd


def _transform(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "log":
        return np.log(x)
    if kind == "log1p":
        return np.log1p(x)
    return np.asarray(x, dtype=float)


def _untransform(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "log":
        return np.exp(x)
    if kind == "log1p":
        return np.expm1(x)
    return x


def learn_encoders(df: pd.DataFrame, spec: GeneratorSpec) -> list[Encoder]:
    """Learn each covariate's encoder from the (contract-checked, complete-case) data."""
    encoders = []
    for cov in spec.covariates:
        col = df[cov.name]
        if cov.type in (CovariateType.binary, CovariateType.categorical):
            if cov.levels is not None:
                levels = [level_key(v) for v in cov.levels]
            else:
                levels = sorted({level_key(v) for v in col}, key=_natural_key)
            if cov.type is CovariateType.binary and len(levels) != 2:
                raise InputError(f"binary covariate '{cov.name}' has {len(levels)} distinct values {levels}; "
                                 "declare its two levels in the spec")
            encoders.append(Encoder(cov.name, cov.type.value, levels=levels))
            continue
        x = col.to_numpy(dtype=float)
        if cov.transform is Transform.quantile:
            knots = np.quantile(x, QUANTILE_PROBS).tolist()
            t = _normal_scores(x, knots)
            encoders.append(Encoder(cov.name, "continuous", mean=float(t.mean()), sd=float(t.std(ddof=1)),
                                    transform="quantile", range=tuple(cov.range) if cov.range else None,
                                    integer=bool(np.all(np.mod(x, 1) == 0)), knots=knots))
            continue
        kind = cov.transform.value if cov.type is CovariateType.continuous else "log1p"
        if kind == "log" and (x <= 0).any():
            raise InputError(f"covariate '{cov.name}' has values <= 0; a log transform needs positive values")
        if kind == "log1p" and (x <= -1).any():
            raise InputError(f"covariate '{cov.name}' has values <= -1; a log1p transform needs values > -1")
        t = _transform(x, kind)
        sd = float(t.std(ddof=1)) if len(t) > 1 else 1.0
        if not np.isfinite(sd) or sd == 0:
            raise InputError(f"covariate '{cov.name}' is constant in the fitting data; drop it from the spec")
        encoders.append(
            Encoder(
                cov.name,
                cov.type.value,
                mean=float(t.mean()),
                sd=sd,
                transform=cov.transform.value if cov.type is CovariateType.continuous else "none",
                range=tuple(cov.range) if cov.range else None,
                integer=bool(np.all(np.mod(x, 1) == 0)),
            )
        )
    return encoders


def _natural_key(s: str) -> tuple:
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def design_matrix(df: pd.DataFrame, encoders: list[Encoder]) -> np.ndarray:
    """The full design matrix D, shape (n, P), columns in spec order."""
    if not encoders:
        return np.zeros((len(df), 0))
    return np.concatenate([enc.design(df[enc.name]) for enc in encoders], axis=1)


def design_offsets(encoders: list[Encoder]) -> list[int]:
    """Start column of each covariate in D (and the total width as a last entry)."""
    return list(np.concatenate([[0], np.cumsum([e.width for e in encoders])]).astype(int))


def design_names(encoders: list[Encoder]) -> list[str]:
    return [name for e in encoders for name in e.column_names]
