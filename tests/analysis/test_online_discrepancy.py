# SPDX-License-Identifier: MIT
"""analysis/online.py: the theory-simulation discrepancy on planted curves."""
import numpy as np
import pandas as pd
import pytest

from ensemble_nets.analysis.online import discrepancy, discrepancy_curve


def test_discrepancy_counts_only_alphas_above_one_and_the_floor():
    alpha = np.array([0.0, 0.5, 1.0, 10.0, 100.0])
    ode = np.array([1.0, 0.5, 0.1, 0.01, 1e-5])
    sim = ode * np.array([1.0, 3.0, 1.1, 1.2, 50.0])  # off by 200% before alpha 1 and 4900% below the floor
    result = discrepancy(alpha, sim, ode, floor=1e-3)
    assert result["n_alphas"] == 2 and result["alpha_range"] == [1.0, 10.0]
    assert result["rel_err_max"] == pytest.approx(0.2) and result["rel_err_median"] == pytest.approx(0.15)
    assert discrepancy(alpha, sim, ode, floor=10.0)["rel_err_median"] is None


def test_curve_marks_points_below_the_absolute_floor():
    metrics = pd.DataFrame({"alpha": [0.0, 1.0, 2.0], "eps_g_sim_mean": [1.0, 0.2, 0.002],
                            "eps_g_ode": [1.0, 0.1, 0.001]})
    curve = discrepancy_curve(metrics, floor=0.01)
    assert curve["alpha"].tolist() == [1.0, 2.0] and curve["counted"].tolist() == [True, False]
    assert curve["rel_err"].tolist() == pytest.approx([1.0, 1.0])
