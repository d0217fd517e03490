# SPDX-License-Identifier: MIT
"""On-line teacher-student learning: how far the simulation lies from the ODE theory.

Both functions take the generalization error eps_g at recorded alphas = t/d, of the simulation
(averaged over example streams) and of the ODE of :mod:`ensemble_nets.analysis.theory.online`::

    rel_err(alpha) = |<eps_sim>(alpha) - eps_ode(alpha)| / eps_ode(alpha)

counted where ``alpha >= 1`` and ``eps_ode > floor * eps_ode(0)`` (below the floor the relative
error measures finite-size noise, not the theory).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["discrepancy", "discrepancy_curve"]


def discrepancy(alpha: np.ndarray, eps_sim: np.ndarray, eps_ode: np.ndarray, *, floor: float) -> dict:
    """Median, mean and max of ``rel_err`` over the counted alphas, their number and range."""
    mask = (alpha >= 1.0) & (eps_ode > floor * eps_ode[0])
    rel = np.abs(eps_sim[mask] - eps_ode[mask]) / eps_ode[mask]
    return {"eps_floor": floor, "n_alphas": int(mask.sum()),
            "alpha_range": [float(alpha[mask].min()), float(alpha[mask].max())] if mask.any() else None,
            "rel_err_median": float(np.median(rel)) if mask.any() else None,
            "rel_err_mean": float(rel.mean()) if mask.any() else None,
            "rel_err_max": float(rel.max()) if mask.any() else None}


def discrepancy_curve(metrics: pd.DataFrame, *, floor: float | None = None) -> pd.DataFrame:
    """``alpha``, ``rel_err`` and ``counted`` (eps_ode above the absolute ``floor``) at every alpha > 0.

    ``metrics`` has the columns ``alpha``, ``eps_g_sim_mean`` and ``eps_g_ode`` (a run's metrics.csv).
    """
    m = metrics[metrics["alpha"] > 0]
    rel = (m["eps_g_sim_mean"] - m["eps_g_ode"]).abs() / m["eps_g_ode"]
    counted = m["eps_g_ode"] > floor if floor is not None else np.ones(len(m), bool)
    return pd.DataFrame({"alpha": m["alpha"].to_numpy(), "rel_err": rel.to_numpy(), "counted": np.asarray(counted)})
