"""The fitted virtual-patient generator: save, load, sample cohorts, twins.

A generator (fitted by `insilico.virtual_patients.fitting.fit`) draws virtual cohorts
(`Generator.sample_cohort`), scores real or virtual patients (`prognostic_score`) and
produces counterfactual drug-response twins (`counterfactual`). The statistical model is
written out in `insilico.virtual_patients.model`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from insilico.common.errors import InputError
from insilico.common.files import load_tree
from insilico.common.jsonable import jsonable

from . import kernels
from .effects import TreatmentEffect
from .encoding import (
    Encoder,
    design_matrix,
    design_offsets,
)
from .spec import GeneratorSpec

SPEC_FILE, POSTERIOR_FILE, META_FILE = "spec.yaml", "posterior.nc", "generator.json"


NEW_STUDY = "new"


_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(15)


_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


class GeneratorLoadError(InputError):
    """A saved generator is incomplete, or its spec does not match its posterior."""


# ---------------------------------------------------------------------- the generator
class Generator:
    """A fitted generator of one population's patients under the control condition."""

    def __init__(self, spec: GeneratorSpec, posterior, meta: dict):
        self.spec = spec
        self.posterior = posterior
        self.meta = meta
        self.encoders = [Encoder(**{**e, "range": tuple(e["range"]) if e.get("range") else None})
                         for e in meta["encoders"]]
        self.offsets = design_offsets(self.encoders)
        self.studies: list[str] = list(meta["studies"])
        self.family = spec.outcome.family.value
        post = posterior["posterior"].to_dataset()
        self.params = {name: _stack_draws(post[name].values) for name in post.data_vars}
        self.n_draws = next(iter(self.params.values())).shape[0]
        self.survival = spec.outcome.survival
        cuts = meta["outcome_scale"].get("cuts")
        self._cuts = np.asarray(cuts) if cuts is not None else None

    # ------------------------------------------------------------------ draws
    def params_at(self, i: int) -> dict[str, np.ndarray]:
        """Every parameter at posterior draw `i` (chains stacked), as `draw_trial` takes them."""
        return {k: v[i] for k, v in self.params.items()}

    @property
    def hierarchical(self) -> bool:
        return "tau" in self.params

    def _alpha(self, p: dict, study: str | None, rng: np.random.Generator | None) -> float:
        """Study intercept: an existing study's, a new study's (drawn), or the mean."""
        if study is None or not self.hierarchical:
            if study not in (None, NEW_STUDY) and study not in self.studies:
                raise InputError(f"unknown study {study!r}; fitted studies: {self.studies or ['(none)']} or 'new'")
            return float(p["mu"])
        if study == NEW_STUDY:
            return float(p["mu"] + p["tau"] * rng.standard_normal())
        if study not in self.studies:
            raise InputError(f"unknown study {study!r}; fitted studies: {self.studies} or 'new'")
        return float(p["mu"] + p["tau"] * p["study_z"][self.studies.index(study)])

    # ------------------------------------------------------------------ cohorts
    def sample_cohort(self, n: int, seed: int | np.random.Generator, study: str = NEW_STUDY,
                      parameter_draws: int = 1) -> pd.DataFrame:
        """Draw a virtual cohort of n patients: covariates and control outcome.

        By default one posterior draw is taken for the whole cohort (and, for
        ``study="new"``, one new-study intercept): cohorts then differ as replicate
        trials would, parameter uncertainty included. ``parameter_draws=k`` splits the
        cohort over k posterior draws (each with its own new-study intercept) and so
        approximates the posterior predictive population, as used for fidelity checks.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive whole number, got {n}")
        if int(parameter_draws) != parameter_draws or not 1 <= parameter_draws <= n:
            raise ValueError(f"parameter_draws must be a whole number in [1, n], got {parameter_draws}")
        rng = np.random.default_rng(seed)
        sizes = np.diff(np.linspace(0, int(n), int(parameter_draws) + 1).round().astype(int))
        parts = [self._draw_part(int(m), study, rng) for m in sizes]
        values = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        out = self._covariate_frame(values, int(n), study)
        y = np.concatenate([p[1] for p in parts])
        for col, v in self._outcome_columns(y, rng).items():
            out[col] = v
        return out

    def posterior_mean(self) -> dict[str, np.ndarray]:
        """Every parameter at its posterior mean (a plug-in alternative to a random draw)."""
        return {k: v.mean(axis=0) for k, v in self.params.items()}

    def _draw_part(self, n: int, study: str, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
        """n patients under one posterior draw: covariate values and internal outcome."""
        values, y, _ = self.draw_trial(n, np.zeros(n), study, rng)
        return values, y

    def draw_trial(self, n: int, shift: np.ndarray, study: str, rng: np.random.Generator,
                   params: dict | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
        """One trial's patients under one posterior draw, array in, array out.

        ``shift`` (n,) is each patient's link-scale shift on the model's internal scale
        (treatment effect and drift; for normal outcomes in units of the outcome sd).
        ``params`` fixes the parameters (e.g. `posterior_mean`) instead of a random draw.
        Returns covariate values (model form), the internal outcome and the design D.
        """
        p = params if params is not None else self.params_at(int(rng.integers(self.n_draws)))
        alpha = self._alpha(p, study, rng)
        D, values = kernels.draw_covariates(p, self.encoders, self.offsets, n, rng)
        eta = alpha + D @ p["beta"] + shift
        y = kernels.outcome_from_noise(self.family, eta, kernels.outcome_noise(self.family, n, rng), p, self._cuts)
        return values, y, D

    def _covariate_frame(self, values: dict[str, np.ndarray], n: int, study: str | None) -> pd.DataFrame:
        cols: dict[str, object] = {}
        if self.spec.id:
            cols[self.spec.id] = _virtual_ids(n)
        if self.spec.study:
            cols[self.spec.study] = np.full(n, study if study is not None else NEW_STUDY, dtype=object)
        for enc in self.encoders:
            v = values[enc.name]
            if enc.type in ("binary", "categorical"):
                levels = _typed_levels(enc.levels)
                numeric = all(isinstance(x, int) for x in levels)
                cols[enc.name] = np.asarray(levels, dtype=np.int64 if numeric else object)[v]
            elif enc.type == "continuous" and enc.integer:
                cols[enc.name] = np.round(v).astype(np.int64)
            else:
                cols[enc.name] = v
        return pd.DataFrame(cols, copy=False)

    def _outcome_columns(self, y: np.ndarray, rng: np.random.Generator, suffix: str = "",
                         censor_draw: tuple | None = None) -> dict[str, np.ndarray]:
        o, sc = self.spec.outcome, self.meta["outcome_scale"]
        if self.family == "normal":
            return {o.column + suffix: sc["y_mean"] + sc["y_sd"] * y}
        if self.family == "bernoulli":
            levels = _typed_levels(sc["levels"])
            return {o.column + suffix: np.asarray(levels, dtype=object)[y] if levels != [0, 1] else y}
        if self.family == "poisson":
            return {o.column + suffix: y}
        t = y * sc["time_unit"]
        c = censor_draw if censor_draw is not None else self.censoring_times(len(t), rng)
        obs_t, event = np.minimum(t, c), (t <= c).astype(np.int64)
        return {o.time + suffix: obs_t, o.event + suffix: event}

    def censoring_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """End-of-follow-up and dropout censoring times (data's time unit)."""
        sc = self.meta["outcome_scale"]
        c = np.full(n, sc["administrative"], dtype=float)
        if sc["dropout_rate"] > 0:
            c = np.minimum(c, rng.exponential(1.0 / sc["dropout_rate"], n))
        return c

    # ------------------------------------------------------------------ twins
    def design(self, df: pd.DataFrame) -> np.ndarray:
        """Encode real or virtual patients exactly as the fitting data were encoded."""
        missing_cols = [e.name for e in self.encoders if e.name not in df.columns]
        if missing_cols:
            raise InputError(f"the data lack covariate columns {missing_cols}")
        na = [e.name for e in self.encoders if df[e.name].isna().any()]
        if na:
            raise InputError(f"covariates {na} have missing values; a twin needs every covariate")
        return design_matrix(df, self.encoders)

    def prognostic_score(self, df: pd.DataFrame) -> np.ndarray:
        """Posterior mean of each patient's expected control outcome.

        * normal: expected outcome in outcome units;
        * bernoulli: probability of the event; poisson: expected count — both averaged
          over a new study's intercept (the between-study distribution, 15-point
          Gauss–Hermite quadrature), i.e. the population-level prediction;
        * survival: expected log hazard relative to the average fitting-data patient,
          (D_i - mean D) · beta: 0 is an average patient, +0.5 a hazard e^0.5 times as high.
        """
        return self.prognostic_score_design(self.design(df))

    def prognostic_score_design(self, D: np.ndarray) -> np.ndarray:
        """`prognostic_score` of patients already encoded as a design matrix D."""
        P = self.params
        if self.family == "normal":
            sc = self.meta["outcome_scale"]
            return sc["y_mean"] + sc["y_sd"] * (P["mu"].mean() + D @ P["beta"].mean(axis=0))
        if self.survival:
            return (D - np.asarray(self.meta["design_mean"])) @ P["beta"].mean(axis=0)
        A, w = self._alpha_nodes(NEW_STUDY)
        if self.family == "poisson":
            return self._blocked(D, lambda lin: np.exp(lin[:, :, None] + A[None]) @ w)
        return self._blocked(D, lambda lin: special.expit(lin[:, :, None] + A[None]) @ w)

    def _alpha_nodes(self, study: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Study intercepts as quadrature nodes per posterior draw: (draws, m) and weights (m,).

        A new study integrates over N(mu, tau) with 15-point Gauss-Hermite quadrature; a
        fitted study, or a model without a study hierarchy, is a single node.
        """
        P = self.params
        if not self.hierarchical or study is None:
            return P["mu"][:, None], np.ones(1)
        if study == NEW_STUDY:
            return P["mu"][:, None] + P["tau"][:, None] * _GH_NODES[None, :], _GH_WEIGHTS
        if study not in self.studies:
            raise InputError(f"unknown study {study!r}; fitted studies: {self.studies} or 'new'")
        return (P["mu"] + P["tau"] * P["study_z"][:, self.studies.index(study)])[:, None], np.ones(1)

    def _blocked(self, D: np.ndarray, per_block, block: int = 500) -> np.ndarray:
        """Posterior mean over draws of per_block(D_block @ beta^T), patients in blocks."""
        out = np.empty(D.shape[0])
        for lo in range(0, D.shape[0], block):
            lin = D[lo:lo + block] @ self.params["beta"].T  # (block, draws)
            out[lo:lo + block] = per_block(lin).mean(axis=1)
        return out

    def predictive_cdf(self, df: pd.DataFrame, study: str | None = NEW_STUDY, seed: int = 0) -> np.ndarray:
        """Posterior-predictive CDF of each patient's observed outcome (the PIT value).

        Uniform on (0, 1) when the model is right; survival times are right-censored on
        this scale (use the event column with `validation.fidelity.pit_coverage`).
        Discrete outcomes get the randomised PIT (seeded).
        """
        D = self.design(df)
        A, w = self._alpha_nodes(study)
        o, sc, P = self.spec.outcome, self.meta["outcome_scale"], self.params
        if self.family == "normal":
            y = (df[o.column].to_numpy(dtype=float) - sc["y_mean"]) / sc["y_sd"]
            cdf = lambda lin, yb: special.ndtr((yb[:, None, None] - lin[:, :, None] - A[None])  # noqa: E731
                                               / P["sigma"][None, :, None]) @ w
            return self._blocked_with(D, y, cdf)
        if self.survival:
            t = df[o.time].to_numpy(dtype=float) / sc["time_unit"]
            theta = P["frailty_var"][None, :, None] if "frailty_var" in P else None
            cdf = lambda lin, tb: 1 - kernels.survival_from_cumhaz(  # noqa: E731
                kernels.baseline_cumhaz(self.family, tb, P, self._cuts)[:, :, None] * np.exp(lin[:, :, None] + A[None]),
                theta,
            ) @ w
            return self._blocked_with(D, t, cdf)
        rng = np.random.default_rng(seed)
        if self.family == "bernoulli":
            y = Encoder(o.column, "binary", levels=sc["levels"]).codes(df[o.column]).astype(float)
            p1 = self._blocked(D, lambda lin: special.expit(lin[:, :, None] + A[None]) @ w)
            lo, hi = np.where(y == 1, 1 - p1, 0.0), np.where(y == 1, 1.0, 1 - p1)
        else:
            from scipy import stats

            y = df[o.column].to_numpy(dtype=float)
            cdf = lambda lin, yb: stats.poisson.cdf(yb[:, None, None], np.exp(lin[:, :, None] + A[None])) @ w  # noqa: E731
            hi = self._blocked_with(D, y, cdf)
            lo = self._blocked_with(D, y - 1, cdf)
        return lo + rng.random(len(y)) * (hi - lo)

    def _blocked_with(self, D: np.ndarray, v: np.ndarray, f, block: int = 500) -> np.ndarray:
        out = np.empty(D.shape[0])
        for lo in range(0, D.shape[0], block):
            lin = D[lo:lo + block] @ self.params["beta"].T
            out[lo:lo + block] = f(lin, v[lo:lo + block]).mean(axis=1)
        return out

    def individual_effect(self, df: pd.DataFrame, effect: TreatmentEffect) -> np.ndarray:
        """delta_i on the link scale (outcome units for normal outcomes)."""
        delta = effect.base(df).astype(float)
        encs = {e.name: e for e in self.encoders}
        for name, m in effect.modifiers.items():
            enc = encs.get(name)
            if enc is None:
                raise InputError(f"effect modifier '{name}' is not a covariate of this generator")
            if enc.type in ("continuous", "count"):
                delta += m * (df[name].to_numpy(dtype=float) - self.meta["raw_means"][name])
            elif enc.type == "binary":
                delta += m * enc.codes(df[name])
            else:
                raise InputError(f"effect modifier '{name}' is categorical; use a binary indicator instead")
        return delta

    def counterfactual(self, df: pd.DataFrame, effect: TreatmentEffect, seed: int | np.random.Generator,
                       study: str = NEW_STUDY) -> pd.DataFrame:
        """Drug-response twins: each patient's outcome under control and under treatment.

        Both potential outcomes share one posterior draw, one study intercept and the
        same random noise (and censoring times), so their difference is the treatment
        effect alone. Adds ``<outcome>_control``, ``<outcome>_treated`` (for survival,
        time and event of each), ``effect_link`` and ``prognostic_score``.
        """
        rng = np.random.default_rng(seed)
        D = self.design(df)
        delta = self.individual_effect(df, effect)
        p = self.params_at(int(rng.integers(self.n_draws)))
        eta0 = self._alpha(p, study, rng) + D @ p["beta"]
        shift = delta / self.meta["outcome_scale"]["y_sd"] if self.family == "normal" else delta
        noise = kernels.outcome_noise(self.family, len(df), rng)
        censor_draw = self.censoring_times(len(df), rng) if self.survival else None
        out = df.copy()
        for suffix, eta in (("_control", eta0), ("_treated", eta0 + shift)):
            y = kernels.outcome_from_noise(self.family, eta, noise, p, self._cuts)
            for col, v in self._outcome_columns(y, rng, suffix, censor_draw).items():
                out[col] = v
        out["effect_link"] = delta
        out["prognostic_score"] = self.prognostic_score(df)
        return out

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> Path:
        """Write spec.yaml, posterior.nc (posterior + sampler stats) and generator.json."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / SPEC_FILE).write_text(self.spec.to_yaml())
        self.posterior.to_netcdf(d / POSTERIOR_FILE, engine="netcdf4")
        (d / META_FILE).write_text(json.dumps(self.meta, indent=2, default=jsonable))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        d = located(directory)
        for f in (SPEC_FILE, POSTERIOR_FILE, META_FILE):
            if not (d / f).is_file():
                raise GeneratorLoadError(f"{d}: not a saved generator ({f} is missing); run 'insilico fit' first")
        spec = GeneratorSpec.from_yaml(d / SPEC_FILE)
        meta = json.loads((d / META_FILE).read_text())
        posterior = load_tree(d / POSTERIOR_FILE)
        recorded = posterior.attrs.get("spec_hash")
        if not (spec.hash() == meta.get("spec_hash") == recorded):
            raise GeneratorLoadError(
                f"{d}: spec.yaml (hash {spec.hash()[:12]}) does not match the posterior it sits beside "
                f"(fitted with spec hash {str(recorded)[:12]}); refit with 'insilico fit' after changing a spec"
            )
        return cls(spec, posterior, meta)


# a generator folder named by a design -> this process's copy of the files a client shipped
_SHIPPED: dict[str, Path] = {}


def generator_files(directory: str | Path) -> dict[str, bytes]:
    """A saved generator's files, to ship to processes that do not share this filesystem."""
    d = Path(directory)
    return {name: (d / name).read_bytes() for name in (SPEC_FILE, POSTERIOR_FILE, META_FILE)}


def receive_files(directory: str | Path, files: dict[str, bytes]) -> Path:
    """Make shipped ``files`` this process's generator for ``directory``: written once per content
    under the temporary folder; `located` (hence `Generator.load`, `saved_spec`) reads them."""
    digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"insilico-generator-{digest}"
    if not (folder / META_FILE).is_file():
        work = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
        for name, data in files.items():
            (work / Path(name).name).write_bytes(data)
        try:
            work.rename(folder)  # atomic: another worker process may be writing the same content
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
    _SHIPPED[str(directory)] = folder
    return folder


def located(directory: str | Path) -> Path:
    """Where this process reads the generator ``directory``: its shipped copy, else the folder itself."""
    return _SHIPPED.get(str(directory), Path(directory))


def saved_spec(directory: str | Path) -> GeneratorSpec:
    """The spec of a saved generator, read without loading its posterior."""
    d = located(directory)
    if not (d / SPEC_FILE).is_file():
        raise GeneratorLoadError(f"{d}: not a saved generator ({SPEC_FILE} is missing); run 'insilico fit' first")
    return GeneratorSpec.from_yaml(d / SPEC_FILE)


def _virtual_ids(n: int) -> np.ndarray:
    """'V0000001', 'V0000002', ... built from digit code points (a list comprehension of
    f-strings costs more than drawing the patients)."""
    width = max(7, len(str(n)))
    i = np.arange(1, n + 1, dtype=np.int64)
    cp = np.empty((n, width + 1), dtype=np.uint32)
    cp[:, 0] = ord("V")
    for k in range(width):
        cp[:, width - k] = 48 + (i // 10**k) % 10
    return cp.view(f"<U{width + 1}").ravel().astype(object)


def _stack_draws(values: np.ndarray) -> np.ndarray:
    """(chain, draw, ...) -> (chain*draw, ...)."""
    return values.reshape(values.shape[0] * values.shape[1], *values.shape[2:])


def _typed_levels(levels: list[str]) -> list:
    """Level labels back in their natural type (1 not '1') when every label is numeric."""
    for cast in (int, float):
        try:
            return [cast(v) for v in levels]
        except ValueError:
            continue
    return list(levels)
