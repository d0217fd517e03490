# SPDX-License-Identifier: MIT
"""experiments/mode_width_sweep.py: P_min, the log fit, and resumable cells."""
import math

import pandas as pd
import pytest

from tests.common import load_script


@pytest.fixture(scope="module")
def sweep():
    return load_script("mode_width_sweep")


def _cells(p_min_of_width):
    """Plain at 0.95; MDL accuracy 0.95 from P_min(N) on, 0.5 below."""
    rows = []
    for width, p_min in p_min_of_width.items():
        rows.append({"width": width, "n_modes": -1, "seed": 0, "test_acc": 0.95, "n_parameters": 1000 * width})
        for p in (1, 2, 4, 8, 16, 32):
            rows.append({"width": width, "n_modes": p, "seed": 0, "test_acc": 0.95 if p >= p_min else 0.5,
                         "n_parameters": p * width})
    return pd.DataFrame(rows)


def test_p_min_and_fits(sweep):
    planted = {25: 2, 50: 4, 100: 8, 200: 16, 400: 16, 800: 16}
    table = sweep.p_min_table(_cells(planted), tolerance=0.01)
    assert dict(zip(table.width, table.p_min)) == planted
    assert table.parameter_fraction.iloc[0] == pytest.approx(2 / 1000)
    fit = sweep.fit_log(table)
    assert fit["preferred"] == "saturating" and fit["saturating"]["n_star"] == pytest.approx(200)
    # exactly logarithmic data: the log fit is exact
    log_cells = _cells({25: 1, 50: 2, 100: 4})
    log_table = sweep.p_min_table(log_cells, tolerance=0.0)
    exact = sweep.fit_log(log_table.assign(p_min=[1 + 2 * math.log(w) for w in log_table.width]))
    assert exact["log"]["b"] == pytest.approx(2.0) and exact["log"]["sse"] < 1e-9
    # a width that never reaches the plain accuracy is NaN, not a fake P_min
    missing = sweep.p_min_table(_cells({25: 64}), tolerance=0.01)
    assert math.isnan(missing.p_min.iloc[0])


def test_cells_are_skipped_when_finished(sweep, mnist_root, tmp_path):
    argv = ["--widths", "8", "--modes", "2", "--epochs", "1", "--n-train", "200", "--n-test", "200",
            "--data-root", str(mnist_root), "--backend", "serial", "--out", str(tmp_path)]
    sweep.main(argv)
    first = pd.read_csv(tmp_path / "cells.csv")
    assert set(first.status) == {"done"} and len(first) == 2  # the plain network and P = 2
    assert (tmp_path / "cells" / "w8-p2-s0" / "summary.json").is_file()
    assert (tmp_path / "cells" / "w8-p2-s0" / "run" / "checkpoint.pt").is_file()
    sweep.main(argv)
    again = pd.read_csv(tmp_path / "cells.csv")
    assert set(again.status) == {"skipped"}
    assert again.test_acc.tolist() == first.test_acc.tolist()
