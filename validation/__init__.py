"""Verification and validation evidence (`insilico.validation`).

Data contracts and suites on Great Expectations (`contract`, `suites`, `results_suite`,
`gx`), MCMC diagnostics and SBC, fidelity, outcome, privacy, applicability and twin-agreement
metrics, evidence records, the credibility plan and the V&V 40 assessment. Works on plain
pandas / xarray / ArviZ objects and evidence records; imports only `insilico.common`.
"""
