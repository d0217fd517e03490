# SPDX-License-Identifier: MIT
"""experiments/spectral_scaling.py at a tiny size, then make_figures.py --only spectral on its run folder."""
import json

import pandas as pd
import pytest

from tests.common import load_script

FIGURES = ("spectral_coord_check", "spectral_feature_change", "spectral_lr_transfer", "spectral_transfer_curves",
           "spectral_width_sweep")


@pytest.fixture(scope="module")
def spectral_run(tmp_path_factory, mnist_root):
    runs = tmp_path_factory.mktemp("runs")
    status = load_script("spectral_scaling").main([
        "--data-root", str(mnist_root), "--out", str(runs / "spectral"), "--coord-widths", "16", "32",
        "--coord-steps", "2", "--coord-examples", "200", "--coord-batch", "32", "--transfer-widths", "16", "32",
        "--transfer-lrs", "0.5", "2", "--transfer-standard-lrs", "0.05", "0.2", "--transfer-examples", "200",
        "--transfer-steps", "6", "--transfer-batch", "32", "--transfer-seeds", "2", "--transfer-final-window", "3",
        "--sweep-widths", "16", "32",
        "--sweep-epochs", "1", "--sweep-examples", "300", "--n-eval-networks", "2",
        "--variants", "standard", "spectral"])
    assert status == 0
    return runs


def test_run_folder_tables(spectral_run):
    run = spectral_run / "spectral"
    coord = pd.read_csv(run / "coord_check.csv")
    assert set(coord["variant"]) == {"standard", "spectral"}
    assert set(coord["model"]) == {"mlp", "ensemble", "modes"}
    slopes = pd.read_csv(run / "coord_slopes.csv")
    assert slopes["slope"].notna().all()
    transfer = pd.read_csv(run / "lr_transfer.csv")  # ensemble only: 2 seeds x 2 widths x 2 variants x 2 rates
    assert len(transfer) == 16 and set(transfer["model"]) == {"ensemble"} and set(transfer["seed"]) == {0, 1}
    assert sorted(transfer.loc[transfer["variant"] == "standard", "lr"].unique()) == [0.05, 0.2]
    cell = spectral_run / "spectral-transfer" / "ensemble-spectral-w32-lr2-s1"
    curve = pd.read_csv(cell / "metrics.csv")
    assert list(curve["step"]) == list(range(1, 7))
    final = json.loads((cell / "summary.json").read_text())["result"]["final_loss"]
    assert final == pytest.approx(curve["loss"].tail(3).mean())
    sweep = pd.read_csv(run / "width_sweep.csv")
    assert list(sweep["width"]) == [16, 32, 16, 32] and sweep["test_acc_mean_field"].between(0, 1).all()
    diag = pd.read_csv(run / "diagnostics.csv")
    assert {"w_norm", "dw_norm", "alignment", "stable_rank", "noise_norm"} <= set(diag.columns)
    summary = json.loads((run / "summary.json").read_text())
    assert {"coord_slopes", "lr_transfer_best", "width_sweep"} <= set(summary)
    assert {"l1", "dl1", "noise", "dnoise"} == set(slopes["value"])


def test_figures(spectral_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path / "figures"
    assert load_script("make_figures").main(["--runs", str(spectral_run), "--out", str(out), "--only", "spectral"]) == 0
    for name in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (out / f"{name}{suffix}").stat().st_size > 5_000


def test_bad_options_are_refused():
    with pytest.raises(SystemExit):
        load_script("spectral_scaling").parse_args(["--coord-lr", "-1"])
