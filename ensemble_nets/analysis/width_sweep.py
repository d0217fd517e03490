# SPDX-License-Identifier: MIT
"""How many modes does a network of width N need? The P_min table of a width sweep and its fits.

With acc = final test accuracy averaged over seeds (cells of
:mod:`ensemble_nets.protocols.width_sweep`, ``n_modes = -1`` for the plain network)::

    P_min(N) = least P in the grid with acc_MDL(N, P) >= acc_plain(N) - tolerance

is fitted as ``P_min = a + b ln N`` (least squares) and against a saturating
``a + b ln min(N, N*)`` (breakpoint N* searched over the widths); both SSE and BIC
(``n ln(SSE / n) + k ln n``) are reported.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["fit_log", "p_min_table"]


def p_min_table(cells: pd.DataFrame, *, tolerance: float) -> pd.DataFrame:
    """Per width: the plain accuracy, P_min and the MDL accuracy there (means over seeds).

    ``cells`` has ``width``, ``n_modes`` (-1: plain), ``test_acc`` and ``n_parameters``. A width
    that never reaches the plain accuracy gets ``p_min = NaN``, not a fake value.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 (an accuracy difference), got {tolerance}")
    mean = cells.groupby(["width", "n_modes"], as_index=False)[["test_acc", "n_parameters"]].mean()
    rows = []
    for width, group in mean.groupby("width"):
        plain = group[group.n_modes < 0]
        mdl = group[group.n_modes > 0].sort_values("n_modes")
        if plain.empty or mdl.empty:
            raise ValueError(f"width {width} needs a plain cell (n_modes -1) and MDL cells; got n_modes "
                             f"{sorted(group.n_modes)}")
        target = plain.test_acc.iloc[0] - tolerance
        reached = mdl[mdl.test_acc >= target]
        best = mdl.loc[mdl.test_acc.idxmax()]
        row = {"width": width, "plain_acc": plain.test_acc.iloc[0], "plain_parameters": int(plain.n_parameters.iloc[0]),
               "target_acc": target, "p_min": float("nan"), "mdl_acc_at_p_min": float("nan"),
               "mdl_parameters_at_p_min": float("nan"), "best_mdl_acc": best.test_acc, "best_mdl_p": int(best.n_modes)}
        if len(reached):
            first = reached.iloc[0]
            row.update(p_min=int(first.n_modes), mdl_acc_at_p_min=first.test_acc,
                       mdl_parameters_at_p_min=int(first.n_parameters))
        rows.append(row)
    table = pd.DataFrame(rows)
    table["parameter_fraction"] = table.mdl_parameters_at_p_min / table.plain_parameters
    return table


def fit_log(pmin: pd.DataFrame) -> dict:
    """``P_min = a + b ln N`` against ``a + b ln min(N, N*)``: coefficients, SSE, BIC, the preferred one."""
    ok = pmin.dropna(subset=["p_min"])
    if len(ok) < 3:
        return {"n_widths": len(ok), "note": "fewer than 3 widths reached the plain accuracy: no fit"}
    x, y = np.log(ok.width.to_numpy(float)), ok.p_min.to_numpy(float)
    n = len(x)

    def line(xx):
        b, a = np.polyfit(xx, y, 1)
        return float(a), float(b), float(((y - a - b * xx) ** 2).sum())

    def bic(sse, k):
        return n * math.log(max(sse, 1e-12) / n) + k * math.log(n)

    a, b, sse = line(x)
    best = None
    for cap in x[1:-1]:  # saturation inside the range: at least one width on each side
        a2, b2, sse2 = line(np.minimum(x, cap))
        if best is None or sse2 < best[-1]:
            best = (float(math.exp(cap)), a2, b2, sse2)
    result = {"n_widths": n, "log": {"a": a, "b": b, "sse": sse, "bic": bic(sse, 2)}}
    if best is not None:
        result["saturating"] = {"n_star": best[0], "a": best[1], "b": best[2], "sse": best[3], "bic": bic(best[3], 3)}
        result["preferred"] = "saturating" if result["saturating"]["bic"] < result["log"]["bic"] else "log"
    return result
