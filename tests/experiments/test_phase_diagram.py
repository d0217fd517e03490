# SPDX-License-Identifier: MIT
"""Phase-diagram cells and script: a tiny grid end to end (serial backend), resumable."""
import json

import pytest

from ensemble_nets.models import DeepMLP, build_model
from ensemble_nets.protocols.phase import pooled_mnist, run_phase_cell
from tests.common import load_script


def test_deep_mlp_blocks_and_rebuild():
    model = DeepMLP(100, 10, width=16, depth=3, alpha=0.2, dropout=0.1)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Dropout"] * 3 + ["Linear"]
    assert model[2].negative_slope == 0.2
    rebuilt = build_model(model.model_args)
    assert [type(m) for m in rebuilt] == [type(m) for m in model]
    with pytest.raises(ValueError, match="alpha"):
        DeepMLP(100, 10, alpha=1.5)


def test_pooled_mnist_shape(mnist_root):
    data = pooled_mnist(str(mnist_root), 10, 256)
    assert data.x_train.shape == (256, 100) and data.x_test.shape[1] == 100
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1


@pytest.mark.parametrize("model", ["linear", "spike_slab"])
def test_cell_learns_and_reports_load_curve(mnist_root, tmp_path, model):
    cell = {"model": model, "alpha": 0.0, "depth": 3, "width": 32, "n_train": 512, "steps": 60, "lr": 1e-2,
            "data_root": str(mnist_root), "xi_max": 0.1}
    result = run_phase_cell(cell, tmp_path)
    assert result["train_acc"] > 0.5 and result["test_acc"] > 0.3  # chance is 0.1
    assert len(result["log_D"]) == 4 and result["shape"] in ("concave", "linear", "convex")
    assert result["log_D"][-1] < result["log_D"][0]  # training separates the classes
    assert (tmp_path / "separation.csv").is_file()
    assert ("test_acc_mean_field" in result) == (model == "spike_slab")


def test_unknown_cell_key():
    with pytest.raises(ValueError, match="unknown phase-cell keys"):
        run_phase_cell({"alpah": 0.0})


def test_script_tiny_grid_resumes(mnist_root, tmp_path, capsys):
    script = load_script("phase_diagram")
    argv = ["--data-root", str(mnist_root), "--alphas", "0", "1", "--levels", "0", "0.3", "--steps", "3",
            "--backend", "serial", "--out", str(tmp_path)]
    assert script.main(argv) == 0
    assert len(list(tmp_path.glob("*/summary.json"))) == 4 and (tmp_path / "grid.csv").is_file()
    summary = json.loads((tmp_path / "a1-label_noise0.3-s0" / "summary.json").read_text())
    assert summary["cell"]["alpha"] == 1.0 and summary["cell"]["label_noise"] == 0.3
    assert script.main(argv) == 0  # second call: every cell skipped
    assert "Spearman" in capsys.readouterr().out
