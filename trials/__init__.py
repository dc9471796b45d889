"""Trial designs and their simulation (`insilico.trials`).

A `design.TrialDesign` (parts in `components`) is simulated by `engine` over scenarios x
replicates: `patients` draws the trials, `looks` cuts them to each analysis look, the
methods of the registry (`methods`) analyse them with the vectorised kernels (`analyses`,
`survival`, `bayesian`, `mcmc`, `borrowing`, `external`), and `oc` reads off the operating
characteristics. Effect scales and scenario kinds are decided once, in `scales`.
Imports `insilico.common` and `insilico.virtual_patients`.
"""
