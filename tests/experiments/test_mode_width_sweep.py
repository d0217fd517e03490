# SPDX-License-Identifier: MIT
"""experiments/mode_width_sweep.py: resumable cells (the P_min statistics: tests/analysis/test_width_sweep.py)."""
import pandas as pd
import pytest

from tests.common import load_script


@pytest.fixture(scope="module")
def sweep():
    return load_script("mode_width_sweep")


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


def test_bad_grid_is_refused(sweep):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--widths", "0"])
    with pytest.raises(SystemExit):
        sweep.parse_args(["--seeds", "-1"])
