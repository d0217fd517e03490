# SPDX-License-Identifier: MIT
"""analyze_conv.py: per-layer tables and perturbation of a CNN run, written beside it, never into it."""
import json

import pandas as pd
import pytest
import torch

from tests.common import load_script

TINY = ["--dataset", "mnist5k", "--n-train", "200", "--n-test", "100", "--epochs", "1", "--batch-size", "100",
        "--n-eval-networks", "2", "--no-progress", "--device", "cpu"]


def test_tables_of_a_tiny_cnn_run(tmp_path, mnist_root):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_script("run_mnist").main([*TINY, "--protocol", "cnn", "--data-root", str(mnist_root),
                                       "--out", str(tmp_path / "run")])
        before = sorted(p.name for p in (tmp_path / "run").iterdir())
        summary = load_script("analyze_conv").main([str(tmp_path / "run"), "--data-root", str(mnist_root),
                                                    "--out", str(tmp_path / "conv"), "--n-networks", "2",
                                                    "--n-test", "50", "--fractions", "1.0"])
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before  # nothing written into the run
    assert summary["layers"] == {"layer1": "conv1", "layer2": "conv2", "layer3": "fc1", "layer4": "fc2"}
    table = pd.read_csv(tmp_path / "conv" / "perturbation.csv")
    assert set(table["name"]) == {"conv1", "conv2", "fc1", "fc2"}
    assert len(table) == 1 + 4 * 3  # f = 0 once, then three perturbations per layer at f = 1
    deleted = table.set_index(["name", "perturbation"]).loc[("conv2", "delete_important")]
    variable = table.set_index(["name", "perturbation"]).loc[("conv2", "delete_variable")]
    assert deleted["n_perturbed"] == variable["n_perturbed"]  # as many variable entries as important ones
    filters = pd.read_csv(tmp_path / "conv" / "filters.csv")
    assert filters["n_filters"].tolist() == [16, 32, 128, 10]
    assert json.loads((tmp_path / "conv" / "summary.json").read_text())["n_test"] == 50


def test_refuses_to_write_into_the_run(tmp_path):
    with pytest.raises(SystemExit):
        load_script("analyze_conv").main([str(tmp_path), "--data-root", str(tmp_path), "--out", str(tmp_path)])
