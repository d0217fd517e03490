# SPDX-License-Identifier: MIT
"""Phase-diagram script: a tiny grid end to end (stacked cells), resumable, and the claims tables."""
import json

from ensemble_nets.protocols.phase import pooled_mnist
from tests.common import load_script


def test_pooled_mnist_shape(mnist_root):
    data = pooled_mnist(str(mnist_root), 10, 256)
    assert data.x_train.shape == (256, 100) and data.x_test.shape[1] == 100
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1


def test_script_tiny_grid_resumes_and_prints_claims(mnist_root, tmp_path, capsys):
    script = load_script("phase_diagram")
    grid = tmp_path / "runs" / "phase-paper" / "linear-data_noise"
    argv = ["--data-root", str(mnist_root), "--alphas", "0", "1", "--levels", "0", "0.5", "--epochs", "2",
            "--seeds", "2", "--out", str(grid)]
    assert script.main(argv) == 0
    assert len(list(grid.glob("*/summary.json"))) == 8 and (grid / "grid.csv").is_file()
    summary = json.loads((grid / "a1-data_noise0.5-s1" / "summary.json").read_text())
    assert summary["cell"]["alpha"] == 1.0 and summary["cell"]["data_noise"] == 0.5
    assert len(summary["result"]["log_D_hs"]) == 9 and "c" in summary["result"] and "v" in summary["result"]
    assert len(list((grid / "_stacks").glob("*/summary.json"))) >= 1  # the stacks' bookkeeping
    stamp = (grid / "a0-data_noise0-s0" / "summary.json").stat().st_mtime
    assert script.main(argv) == 0  # second call: every cell skipped
    assert (grid / "a0-data_noise0-s0" / "summary.json").stat().st_mtime == stamp
    assert "Spearman" in capsys.readouterr().out
    out = tmp_path / "claims"
    assert script.main(["--claims", "--runs", str(tmp_path / "runs"), "--claims-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(a) concave" in printed and "(d)" in printed
    assert (out / "claim_c-c.csv").is_file() and (out / "claim_d-c.csv").is_file()


def test_script_refuses_unknown_knob(capsys):
    import pytest

    with pytest.raises(SystemExit):
        load_script("phase_diagram").main(["--knob", "label_noise"])
    assert "label_noise" in capsys.readouterr().err
