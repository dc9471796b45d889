"""insilico-trials: regulatory-grade in-silico clinical trials.

One namespace over the project's layers (see ARCHITECTURE.md):

* `insilico.common` — errors, atomic files, hashing, JSON, the strict spec base;
* `insilico.virtual_patients` — Bayesian virtual-patient generators and twins;
* `insilico.trials` — trial designs, analysis methods, the simulation engine;
* `insilico.validation` — data contracts, V&V metrics, evidence, credibility assessment;
* `insilico.reports` — figures, HTML/PDF reports, the submission-package format;
* the application layer (`insilico.cli`, `insilico.stages`, `insilico.tracking`) joins them.
"""



def __getattr__(name: str) -> str:
    # the installed distribution's version, read when asked for (importlib.metadata is slow to import)
    if name != "__version__":
        raise AttributeError(f"module 'insilico' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("insilico-trials")
    except PackageNotFoundError:  # a checkout that was never installed
        return "0+unknown"
