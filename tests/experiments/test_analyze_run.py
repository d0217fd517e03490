# SPDX-License-Identifier: MIT
"""experiments/analyze_run.py: the files it writes, several runs summarized, clear errors for bad input."""
import json

import pandas as pd
import pytest

from ensemble_nets.analysis import PERTURBATIONS, load_inference_data
from ensemble_nets.data import read_idx
from ensemble_nets.training.runs import CHECKPOINT, load_checkpoint, save_checkpoint
from ensemble_nets.analysis import PERTURBATIONS
from tests.common import load_script

TRAIN = ["--dataset", "mnist5k", "--n-train", "600", "--sizes", "784", "24", "10", "--epochs", "2",
         "--batch-size", "100", "--n-eval-networks", "2", "--device", "cpu", "--no-progress"]
QUICK = ["--n-networks", "2", "--perturb-networks", "2", "--fractions", "0.5", "1", "--max-weights", "10",
         "--no-progress"]

FILES = ("categories.csv", "categories_inactive.csv", "parameter_histograms.csv", "entropy.csv", "perturbation.csv", "perturbation_summary.csv", "ensemble_accuracy.csv",
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
    assert len(PERTURBATIONS) == 8 and set(curves["perturbation"]) == set(PERTURBATIONS)
    assert len(pd.read_csv(folder / "ensemble_per_example.csv")) == n_test
    idata = load_inference_data(folder / "inference_data.nc")
    assert idata.posterior["w_layer1"].shape == (1, 4, 50)
    assert "log_likelihood" not in idata.groups()  # reference objective: no az.loo on any split
    assert not list(folder.glob(".*.tmp"))
    for score in ("lppd", "nll", "brier", "nll_members_mean", "brier_members_mean"):
        assert isinstance(summary[score], float), score
    assert summary["lppd"] == pytest.approx(-summary["nll"] * summary["n_examples"])
    assert summary["categories_tol"] == {"pi_low": 0.0, "pi_high": 0.0, "xi": 0.0}
    gaps = pd.read_csv(folder / "gaps.csv")  # one run: intervals over its sampled networks
    assert set(gaps["fraction"]) == {0.5, 1.0} and (gaps["interval_over"] == "networks").all()
    assert (gaps["n_networks"] == 2).all() and (gaps["low"] <= gaps["mean"]).all()


def test_inactive_connections_are_the_dead_pixels_of_the_training_split(analyzed_tiny_run, mnist_root):
    from ensemble_nets.data import load_dataset

    folder = analyzed_tiny_run / "analysis"
    x_train = load_dataset("mnist5k", mnist_root, download=False).x_train[:600]  # the run's --n-train 600
    dead_pixels = int((x_train == 0).all(0).sum())
    assert dead_pixels > 0
    categories = pd.read_csv(folder / "categories.csv").set_index(["layer", "category"])
    assert categories.loc[("layer1", "inactive"), "count"] == 24 * dead_pixels  # every hidden unit's connection
    summary = json.loads((folder / "summary.json").read_text())
    active = summary["categories_active"]["layer1"]
    assert set(active) == {"important", "unimportant", "variable"} and sum(active.values()) == pytest.approx(1.0)
    n_active = 24 * (784 - dead_pixels)
    assert active["variable"] == pytest.approx(categories.loc[("layer1", "variable"), "count"] / n_active)
    breakdown = pd.read_csv(folder / "categories_inactive.csv")
    assert breakdown[breakdown["layer"] == "layer1"]["count"].sum() == 24 * dead_pixels
    histograms = pd.read_csv(folder / "parameter_histograms.csv")
    assert set(histograms["quantity"]) == {"pi", "1-pi", "xi"}
    assert histograms.groupby(["layer", "quantity"])["count"].sum().loc[("layer1", "pi")] == 24 * 784
    entropy = pd.read_csv(folder / "entropy.csv").set_index(["layer", "category"])
    assert entropy.loc[("layer1", "inactive"), "count"] == 24 * dead_pixels


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
                                        (["--fractions", "2"], "--fractions"),
                                        (["--tol", "0.7"], "--tol.*0.5")])
def test_bad_options_fail_before_writing(analyzed_tiny_run, bad, match):
    before = {p.name: p.stat().st_mtime_ns for p in (analyzed_tiny_run / "analysis").iterdir()}
    with pytest.raises(SystemExit, match=match):
        load_script("analyze_run").main([str(analyzed_tiny_run), *bad])
    assert {p.name: p.stat().st_mtime_ns for p in (analyzed_tiny_run / "analysis").iterdir()} == before


def test_several_runs_are_summarized_with_intervals_over_seeds(analyzed_tiny_run, tmp_path, mnist_root):
    import shutil

    runs = [tmp_path / "default-ensemble-s0", tmp_path / "default-ensemble-s1"]
    shutil.copytree(analyzed_tiny_run, runs[0])
    load_script("run_mnist").main([*TRAIN, "--seed", "1", "--data-root", str(mnist_root), "--out", str(runs[1])])
    load_script("analyze_run").main([*map(str, runs), *QUICK])
    out = tmp_path / "default-ensemble-seeds"  # the default: the first run's name without -s0
    gaps = pd.read_csv(out / "gaps.csv")
    assert set(gaps["layer"]) == {"layer1", "layer2"} and set(gaps["fraction"]) == {0.5, 1.0}
    assert (gaps["n_runs"] == 2).all() and (gaps["interval_over"] == "runs").all()
    assert (gaps["low"] <= gaps["mean"]).all() and (gaps["mean"] <= gaps["high"]).all()
    # each run's gap is its paired difference over sampled networks, read back from its own perturbation.csv
    per_run = pd.read_csv(out / "gaps_per_run.csv")
    means = []
    for run in runs:
        curves = pd.read_csv(run / "analysis" / "perturbation.csv")
        at = curves[(curves["layer"] == "layer1") & (curves["fraction"] == 1.0)].pivot(
            index="network", columns="perturbation", values="error")
        expected = (at["delete_important"] - at["delete_variable_matched"]).mean()
        row = per_run[(per_run["run"] == str(run)) & (per_run["layer"] == "layer1") & (per_run["fraction"] == 1.0)
                      & (per_run["target"] == "delete_important") & (per_run["control"] == "delete_variable_matched")]
        assert row["mean"].item() == pytest.approx(expected)
        means.append(expected)
    row = gaps[(gaps["layer"] == "layer1") & (gaps["fraction"] == 1.0) & (gaps["control"] == "delete_variable_matched")]
    assert row["mean"].item() == pytest.approx(sum(means) / 2)
    categories = pd.read_csv(out / "categories.csv")
    assert {"all", "active"} == set(categories["among"]) and (categories["n_runs"] == 2).all()
    summary = json.loads((out / "summary.json").read_text())
    accuracies = [json.loads((run / "analysis" / "summary.json").read_text())["accuracy_mean"] for run in runs]
    assert summary["n_runs"] == 2 and summary["mean"]["accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert accuracies[0] != accuracies[1]  # two seeds, two trainings


def test_runs_of_different_architectures_fail_before_writing(analyzed_tiny_run, tmp_path, mnist_root):
    other = tmp_path / "wide-s0"
    load_script("run_mnist").main(["--dataset", "mnist5k", "--n-train", "200", "--sizes", "784", "8", "10",
                                   "--epochs", "1", "--batch-size", "100", "--n-eval-networks", "2", "--device",
                                   "cpu", "--no-progress", "--data-root", str(mnist_root), "--out", str(other)])
    before = {p.name: p.stat().st_mtime_ns for p in (analyzed_tiny_run / "analysis").iterdir()}
    with pytest.raises(SystemExit, match="different architectures.*one configuration"):
        load_script("analyze_run").main([str(analyzed_tiny_run), str(other), *QUICK])
    assert not (other / "analysis").exists()
    assert {p.name: p.stat().st_mtime_ns for p in (analyzed_tiny_run / "analysis").iterdir()} == before


def test_several_runs_need_the_gap_fractions(analyzed_tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "default-ensemble-s1"
    shutil.copytree(analyzed_tiny_run, copy)
    with pytest.raises(SystemExit, match=r"f = 0.5 and 1.*lacks \[1.0\]"):
        load_script("analyze_run").main([str(analyzed_tiny_run), str(copy), "--fractions", "0", "0.5"])
    with pytest.raises(SystemExit, match="given twice"):
        load_script("analyze_run").main([str(analyzed_tiny_run), str(analyzed_tiny_run)])


def test_default_aggregate_folder_drops_the_seed_suffix():
    from pathlib import Path

    from ensemble_nets.protocols.ensemble import default_aggregate_out

    assert default_aggregate_out(Path("runs/default-ensemble-s0")) == Path("runs/default-ensemble-seeds")
    assert default_aggregate_out(Path("runs/elbo-s12")) == Path("runs/elbo-seeds")
    assert default_aggregate_out(Path("runs/my-run")) == Path("runs/my-run-seeds")


def test_elbo_run_is_read_at_a_chosen_tolerance_with_training_log_likelihood(tmp_path, mnist_root):
    run = tmp_path / "default-elbo-s0"
    load_script("run_mnist").main(["--dataset", "mnist5k", "--n-train", "300", "--sizes", "784", "8", "10",
                                   "--epochs", "1", "--batch-size", "100", "--n-eval-networks", "2", "--device",
                                   "cpu", "--no-progress", "--objective", "elbo", "--data-root", str(mnist_root),
                                   "--out", str(run)])
    summary = load_script("analyze_run").main([str(run), *QUICK, "--layers", "layer2"])
    tol = summary["categories_tol"]
    assert set(tol) == {"pi_low", "pi_high", "xi"}
    assert 0.0 < tol["pi_low"] <= 0.02 and 0.0 < tol["pi_high"] <= 0.02 and 0.0 < tol["xi"] <= 0.02  # the caps
    assert tol != {"pi_low": 1e-6, "pi_high": 1e-6, "xi": 1e-6}  # not the margin
    assert json.loads((run / "summary.json").read_text())["categories_tol"] == tol  # training reads it alike
    idata = load_inference_data(run / "analysis" / "inference_data.nc")
    assert "log_likelihood" in idata.groups()
    assert idata.log_likelihood["y_train"].shape[-1] == 300  # the run's training examples, not the 10,000 test digits
