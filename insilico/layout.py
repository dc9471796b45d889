"""The study output folder that ``insilico run`` writes, and where its files go in the package.

::

    <out>/run.json                      stage keys, seeds, input hashes, versions, commit
    <out>/study/**                      the study file and every file it references
    <out>/validation/                   `insilico validate`: records.json, assessment.json,
                                        figures/, generator/, simulation.nc, report/,
                                        synthetic_cohort.csv (only through the privacy gate)
    <out>/twins/twins.csv               drug-response twins of the study's patients
    <out>/simulations/<design>.nc       the study's further designs
    <out>/reports/*.html, *.pdf         the credibility and simulation reports
    <out>/<package file>                the submission package
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from insilico.reports.tolerances import ASSESSMENT, POSTERIOR, RECORDS, RESULTS


@dataclass(frozen=True)
class StudyFolder:
    """The paths of one study output folder."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def study(self) -> Path:
        return self.root / "study"

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    @property
    def generator(self) -> Path:
        return self.validation / "generator"

    @property
    def records(self) -> Path:
        return self.validation / "records.json"

    @property
    def assessment(self) -> Path:
        return self.validation / "assessment.json"

    @property
    def simulation(self) -> Path:
        return self.validation / "simulation.nc"

    @property
    def figures(self) -> Path:
        return self.validation / "figures"

    @property
    def twins(self) -> Path:
        return self.root / "twins" / "twins.csv"

    @property
    def simulations(self) -> Path:
        return self.root / "simulations"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


# package path <- path in the study output folder
OUT_PATHS = {RESULTS: "validation/simulation.nc", POSTERIOR: "validation/generator/posterior.nc",
             RECORDS: "validation/records.json", ASSESSMENT: "validation/assessment.json"}
GENERATOR_FILES = ("spec.yaml", "posterior.nc", "generator.json")
# patient-level outputs: packaged only when the plan allows patient rows and the caller asks
PATIENT_OUTPUTS = {"validation/synthetic_cohort.csv": ("data/synthetic_cohort.csv", "synthetic cohort"),
                   "twins/twins.csv": ("data/twins.csv", "drug-response twins of real patients")}
