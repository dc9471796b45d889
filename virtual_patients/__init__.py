"""Bayesian virtual-patient generators (`insilico.virtual_patients`).

A `spec.GeneratorSpec` says what is modelled; `fitting.fit` fits the PyMC model of
`model` to patient-level data; a `generator.Generator` draws virtual cohorts and
drug-response twins (`effects`) with the numpy kernels of `kernels`. Imports only
`insilico.common`.
"""
