# SPDX-License-Identifier: MIT
"""analysis/width_sweep.py: P_min and the log / saturating fits on planted grids."""
import math

import pandas as pd
import pytest

from ensemble_nets.analysis.width_sweep import fit_log, p_min_table


def _cells(p_min_of_width):
    """Plain at 0.95; MDL accuracy 0.95 from P_min(N) on, 0.5 below."""
    rows = []
    for width, p_min in p_min_of_width.items():
        rows.append({"width": width, "n_modes": -1, "seed": 0, "test_acc": 0.95, "n_parameters": 1000 * width})
        for p in (1, 2, 4, 8, 16, 32):
            rows.append({"width": width, "n_modes": p, "seed": 0, "test_acc": 0.95 if p >= p_min else 0.5,
                         "n_parameters": p * width})
    return pd.DataFrame(rows)


def test_p_min_and_fits():
    planted = {25: 2, 50: 4, 100: 8, 200: 16, 400: 16, 800: 16}
    table = p_min_table(_cells(planted), tolerance=0.01)
    assert dict(zip(table.width, table.p_min)) == planted
    assert table.parameter_fraction.iloc[0] == pytest.approx(2 / 1000)
    fit = fit_log(table)
    assert fit["preferred"] == "saturating" and fit["saturating"]["n_star"] == pytest.approx(200)
    # exactly logarithmic data: the log fit is exact
    log_cells = _cells({25: 1, 50: 2, 100: 4})
    log_table = p_min_table(log_cells, tolerance=0.0)
    exact = fit_log(log_table.assign(p_min=[1 + 2 * math.log(w) for w in log_table.width]))
    assert exact["log"]["b"] == pytest.approx(2.0) and exact["log"]["sse"] < 1e-9
    # a width that never reaches the plain accuracy is NaN, not a fake P_min
    missing = p_min_table(_cells({25: 64}), tolerance=0.01)
    assert math.isnan(missing.p_min.iloc[0])




def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="tolerance"):
        p_min_table(_cells({25: 2}), tolerance=-0.1)
    with pytest.raises(ValueError, match="plain cell"):
        p_min_table(_cells({25: 2}).query("n_modes > 0"), tolerance=0.0)
