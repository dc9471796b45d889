"""The analysis-method registry: one class per method, declaring what it is and doing it.

A method declares its ``name`` (the design's ``method:``), the endpoint ``families`` it
analyses, the ``parameters`` of an analysis it takes (``required`` ones must be given; any
other parameter given is an error),
and flags the design checks read: ``sequential`` (runs at group-sequential looks),
``external`` (needs external controls), ``decides_by_probability`` (success when a
posterior probability exceeds a threshold, which ``calibrate_to_alpha`` may calibrate),
``borrows`` (borrows information: prior ESS reported), ``needs_covariates`` (generator
patients only), ``parametric_only`` (parametric endpoints only) and ``mcmc`` (may run
with ``sampler: mcmc``). It implements `AnalysisMethod.analyse`, vectorised over the
replicates of a chunk, and `AnalysisMethod.describe`, its words in the simulation report.

What an analysis sees of one look of one comparison (``data``, a dict): the arm vector
``arm`` (0 control, 1 treatment); patient-level outcomes ``y`` (R, n) or, for
parametric normal/binary designs, per-arm ``summaries`` (``n_t``, ``mean_t``, ``ss_t``,
``n_c``, ...); generator patients' prognostic ``score`` and ``covariates(names)``;
survival follow-up ``time``/``event`` and ``risk_sets()`` (log-rank/Cox risk sets at
this look); external controls ``y_ext`` or ``time_ext``/``event_ext`` with covariates
``X``/``X_ext``; and ``family``, ``sigma``, ``exposure``, ``threshold``, ``look``.

Adding a method: a class here (or in a module of this package) decorated with
`register`; the design, the engine, the checks and the reports find it by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

#: every registered method, by name, in registration order
METHODS: dict[str, AnalysisMethod] = {}


def register(cls: type[AnalysisMethod]) -> type[AnalysisMethod]:
    """Class decorator: add one instance of `cls` to the registry under ``cls.name``."""
    if cls.name in METHODS:
        raise RuntimeError(f"analysis method {cls.name!r} is registered twice")
    METHODS[cls.name] = cls()
    return cls


def method_of(analysis: Any) -> AnalysisMethod:
    """The registered method of a design analysis (its ``method`` name or enum)."""
    return METHODS[getattr(analysis.method, "value", analysis.method)]


class AnalysisMethod(ABC):
    """Base class: the declarations every method makes, and the shared checks."""

    name: ClassVar[str]
    title: ClassVar[str]
    families: ClassVar[frozenset[str]]
    parameters: ClassVar[frozenset[str]] = frozenset()
    required: ClassVar[dict[str, str]] = {}  # parameter -> how a message names it
    sequential: ClassVar[bool] = False
    external: ClassVar[bool] = False
    decides_by_probability: ClassVar[bool] = False
    borrows: ClassVar[bool] = False
    needs_covariates: ClassVar[bool] = False
    parametric_only: ClassVar[bool] = False
    mcmc: ClassVar[bool] = False
    runs_on_summaries: ClassVar[bool] = False  # per-arm sufficient statistics are all it needs
    uses_follow_up: ClassVar[bool] = True      # time to event: reads each patient's follow-up at a look
    keeps_risk_sets: ClassVar[bool] = False    # needs the risk sets of every event time, not only sums
    stops_in_risk_sets: ClassVar[bool] = False  # its z is U / sqrt(V): stopped trials skip later looks

    def check(self, analysis: Any, design: Any, family: str | None) -> None:
        """Raise ValueError when `analysis` cannot run in `design`; ``family`` is the
        endpoint family, None while a generator is not resolved yet."""
        label = f"analysis '{analysis.name}'"
        for key, words in self.required.items():
            if getattr(analysis, key) is None:
                raise ValueError(f"{label}: {self.name} needs {words}")
        if family is not None and family not in self.families:
            raise ValueError(f"{label}: method {self.name} does not apply to a {family} endpoint")
        if self.external and design.external_control is None:
            raise ValueError(f"{label}: {self.name} needs an external_control")
        if self.needs_covariates and design.endpoint is not None:
            raise ValueError(f"{label}: {self.name} needs covariates: use patients from a generator")
        if self.parametric_only and design.patients is not None:
            raise ValueError(f"{label}: conjugate borrowing runs on parametric endpoints")
        if analysis.sampler == "mcmc" and not self.mcmc:
            raise ValueError(f"{label}: sampler: mcmc applies to Bayesian methods, not {self.name}")
        given = {k for k, f in type(analysis).model_fields.items()
                 if k not in ("name", "method") and getattr(analysis, k) != f.get_default(call_default_factory=True)}
        given -= self.parameters
        if given:
            takes = ", ".join(sorted(self.parameters)) or "no parameters"
            raise ValueError(f"{label}: {self.name} does not take {', '.join(sorted(given))} (it takes {takes})")

    @abstractmethod
    def analyse(self, analysis: Any, data: dict, common: dict, R: int, seed: int | None = None) -> dict:
        """The analysis of R replicates at one look: (R,) arrays of ``estimate``,
        ``std_error``, ``lower``, ``upper``, ``p_value``, ``decision``, ``posterior_prob``,
        ``prior_ess``, ``n_patients``, ``n_events``, ``stop_stage``. ``common`` holds
        ``alpha``, ``sided``, ``direction`` and ``level``; ``seed`` seeds an MCMC sampler."""

    def describe(self, analysis: Any, design: Any, family: str) -> str:
        """The analysis in the report's words: its title and the parameters it was given."""
        extra = self.details(analysis, design, family)
        return f"{analysis.name} ({self.title}{'; ' + '; '.join(extra) if extra else ''})"

    def details(self, analysis: Any, design: Any, family: str) -> list[str]:
        """Parameter phrases for `describe` (a method with parameters overrides this)."""
        return []

    def prior_ess(self, analysis: Any, design: Any, family: str) -> tuple[Any, float | None, str] | None:
        """(control prior or None, its ESS or None, how the ESS is defined) of a borrowing
        method, from the design alone (ESS None: known only from the simulation); None
        for a method that does not borrow, or whose prior is derived at simulation time."""
        return None

    def prior_text(self, analysis: Any, design: Any, family: str) -> str:
        """A borrowing method's prior on the control arm, in words."""
        return ""

    def prior_source(self, analysis: Any, design: Any) -> str:
        """Where a borrowing method's information comes from, in words."""
        return ""


# ------------------------------------------------------------------ shared result parts
def nan(R: int) -> np.ndarray:
    return np.full(R, np.nan)


def patient_counts(res: dict, data: dict, R: int) -> dict:
    """`res` with the fields a patient-level analysis leaves to the engine filled in:
    no posterior probability or prior ESS, patients enrolled at the look, events seen."""
    res.setdefault("posterior_prob", nan(R))
    res.setdefault("prior_ess", nan(R))
    if "n_patients" not in res:
        res["n_patients"] = np.asarray(data.get("enrolled", np.full(R, len(data["arm"]))), dtype=float)
        res["n_events"] = data["event"].sum(axis=1).astype(float) if "event" in data else nan(R)
    res["stop_stage"] = np.ones(R)
    return res


def summary_counts(res: dict, summaries: dict, R: int, *, bayesian: bool = False) -> dict:
    """`res` of an analysis of per-arm summaries, with their patient count."""
    n = summaries["n_t"] + summaries["n_c"]
    if not bayesian:
        res.update(posterior_prob=nan(R), prior_ess=nan(R))
    return {**res, "n_patients": np.full(R, float(n)), "n_events": nan(R), "stop_stage": np.ones(R)}


def fmt(x: float) -> str:
    """A number as the report writes it."""
    return f"{float(x):.4g}"
