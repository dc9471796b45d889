"""The V&V checks that join packages: each a function of plain inputs returning metrics.

A metric is ``{"check", "value", "sub_model", ...}`` (`insilico.checks.metrics.metric`);
`insilico.stages.validate` turns them into evidence records graded by the plan.
"""
