# SPDX-License-Identifier: MIT
"""experiments/analyze_run.py: the files it writes, and clear errors for missing or incomplete runs."""
import json

import pandas as pd
import pytest

from ensemble_nets.analysis import PERTURBATIONS, load_inference_data
from ensemble_nets.data import read_idx
from ensemble_nets.training.runs import CHECKPOINT, load_checkpoint, save_checkpoint
from tests.common import load_script

FILES = ("categories.csv", "entropy.csv", "perturbation.csv", "perturbation_summary.csv", "ensemble_accuracy.csv",
         "ensemble_per_example.csv", "calibration.csv", "summary.json", "inference_data.nc")


def test_writes_tables_and_inference_data(analyzed_tiny_run, mnist_root):
    n_test = len(read_idx(mnist_root / "t10k-labels-idx1-ubyte.gz"))  # the run is analysed on all of them
    folder = analyzed_tiny_run / "analysis"
    for name in FILES:
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_networks"] == 4 and summary["n_examples"] == n_test
    assert summary["accuracy_hdi_low"] <= summary["accuracy_mean"] <= summary["accuracy_hdi_high"]
    assert set(summary["categories"]) == {"layer1", "layer2"}
    curves = pd.read_csv(folder / "perturbation_summary.csv")
    assert len(curves) == 2 * len(PERTURBATIONS) * 3 and set(curves["fraction"]) == {0.0, 0.5, 1.0}
    assert len(pd.read_csv(folder / "ensemble_per_example.csv")) == n_test
    idata = load_inference_data(folder / "inference_data.nc")
    assert idata.posterior["w_layer1"].shape == (1, 4, 50)
    assert not list(folder.glob(".*.tmp"))


def test_missing_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit, match="does not exist.*run_mnist.py"):
        load_script("analyze_run").main([str(tmp_path / "nowhere")])


def test_folder_without_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit, match="no checkpoint"):
        load_script("analyze_run").main([str(tmp_path / "run")])


def test_incomplete_run(analyzed_tiny_run, tmp_path):
    import shutil

    run = tmp_path / "cut"
    shutil.copytree(analyzed_tiny_run, run)
    payload = load_checkpoint(run / CHECKPOINT)
    payload["train_config"]["epochs"] = 5  # as if stopped after 2 of 5 epochs
    save_checkpoint(run / CHECKPOINT, {k: v for k, v in payload.items() if k != "format"})
    with pytest.raises(SystemExit, match="incomplete: 2 of 5 epochs.*--resume"):
        load_script("analyze_run").main([str(run)])


@pytest.mark.parametrize("bad, match", [(["--n-networks", "1"], "--n-networks"), (["--layers", "layer7"], "layer"),
                                        (["--fractions", "2"], "--fractions")])
def test_bad_options_fail_before_writing(analyzed_tiny_run, bad, match):
    before = {p.name: p.stat().st_mtime_ns for p in (analyzed_tiny_run / "analysis").iterdir()}
    with pytest.raises(SystemExit, match=match):
        load_script("analyze_run").main([str(analyzed_tiny_run), *bad])
    assert {p.name: p.stat().st_mtime_ns for p in (analyzed_tiny_run / "analysis").iterdir()} == before
