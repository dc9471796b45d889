"""MCMC convergence diagnostics of a posterior (calculation verification).

Thresholds follow REGULATORY.md: rank-normalised R-hat < 1.01, bulk and tail ESS >= 400,
no divergent transitions.
"""

from __future__ import annotations

import numpy as np

RHAT_MAX, ESS_MIN = 1.01, 400


def _extreme(result, reduce) -> float:
    ds = result.to_dataset() if hasattr(result, "to_dataset") else result
    vals = [reduce(np.asarray(ds[v].values, dtype=float)) for v in ds.data_vars if ds[v].size]
    return float(reduce(np.array(vals)))


def mcmc_diagnostics(posterior) -> dict[str, float]:
    """Worst-case R-hat and ESS over every parameter, and the divergence count.

    ``posterior`` is the DataTree returned by PyMC (groups posterior, sample_stats).
    """
    import warnings

    import arviz as az

    ds = posterior["posterior"].to_dataset()
    # constants (a reference level fixed at 0) have no R-hat/ESS: leave them out
    post = ds.drop_vars([v for v in ds.data_vars if float(ds[v].std()) == 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _diagnostics(az, post, posterior)


def _diagnostics(az, post, posterior) -> dict[str, float]:
    stats = posterior["sample_stats"].to_dataset() if "sample_stats" in posterior.children else None
    divergences = int(stats["diverging"].values.sum()) if stats is not None and "diverging" in stats else 0
    return {
        "max_rhat": _extreme(az.rhat(post), np.nanmax),
        "min_ess_bulk": _extreme(az.ess(post, method="bulk"), np.nanmin),
        "min_ess_tail": _extreme(az.ess(post, method="tail"), np.nanmin),
        "divergences": divergences,
        "chains": int(post.sizes["chain"]),
        "draws": int(post.sizes["draw"]),
    }


def converged(diag: dict[str, float]) -> bool:
    return (diag["max_rhat"] < RHAT_MAX and diag["min_ess_bulk"] >= ESS_MIN
            and diag["min_ess_tail"] >= ESS_MIN and diag["divergences"] == 0)


def posterior_summary(posterior):
    """ArviZ summary table (mean, sd, 94% ETI, ESS, R-hat) as a DataFrame.

    Constant entries (a reference level fixed at 0) have no R-hat: NaN, without warnings.
    """
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return az.summary(posterior["posterior"], ci_prob=0.94, ci_kind="eti")
