"""Metrics: what a check returns before the plan grades it into evidence records."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: metric name -> {"check", "value", "sub_model", and optionally "artifact", "table", "detail"}
Metrics = dict[str, dict]


def metric(check: str, value, sub_model: str = "virtual_patient_generation", **extra) -> dict:
    """One metric of a check: a float value (None when undefined or not finite)."""
    v = None if value is None else float(value)
    return {"check": check, "value": None if v is not None and not np.isfinite(v) else v,
            "sub_model": sub_model, **extra}


def summary(d: dict) -> dict:
    """JSON-safe copy of a metrics dict for a record's detail (frames and long arrays left out)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (pd.DataFrame, pd.Series)):
            continue
        if isinstance(v, np.ndarray):
            if v.size > 50:
                continue
            v = v.tolist()
        if isinstance(v, (np.floating, np.integer, np.bool_)):
            v = v.item()
        out[k] = v
    return out
