"""Documents (`insilico.reports`): figures, the credibility and simulation reports (Jinja2 →
HTML → PDF), and the submission-package format with its re-run comparisons. Works on plain
data (contexts, evidence-record dicts, NetCDF results); imports only `insilico.common`.
"""
