# SPDX-License-Identifier: MIT
"""The width-law sweep: cells of seeds trained at once, early stopping on validation, resumable grids."""
import pandas as pd
import pytest
import torch

from ensemble_nets.data import load_dataset
from ensemble_nets.protocols.width_law import WidthLawConfig, cells, run, run_cell, split_validation
from ensemble_nets.training.runs import load_checkpoint
from tests.common import load_script

TINY = dict(widths=(6, 10), modes=(1, 3), seeds=(0, 1), max_epochs=2, patience=1, n_validation=200, n_test=200,
            dataset="mnist5k")


def _config(tmp_path, **overrides):
    # an empty data_root: the embedded digits with a held-out test part, whatever lies around the checkout
    return WidthLawConfig.from_budget("quick", **{**TINY, "data_root": str(tmp_path / "no-mnist"), **overrides})


def test_sweep_table_and_resume_without_redoing(tmp_path):
    config = _config(tmp_path)
    table = run(config, tmp_path / "sweep", backend="serial", progress=False)
    assert len(table) == 2 * 3 * 2  # widths x (plain + 2 P) x seeds
    assert set(table["n_modes"]) == {-1, 1, 3}
    assert table["acc"].between(0.1, 1).all() and table["acc"].mean() > 0.3  # learnt something (chance: 0.1)
    assert table.loc[table["n_modes"] == -1, "acc"].mean() > 0.5
    assert (table["best_epoch"] <= table["epochs"]).all() and (table["epochs"] <= 2).all()
    assert table.loc[table["n_modes"] == -1, "n_parameters"].max() == 784 * 10 + 10 * 10 + 10 * 10
    assert pd.read_csv(tmp_path / "sweep" / "runs.csv").shape == table.shape
    assert set(table.loc[table["n_modes"] == -1, "lr"]) <= {0.03, 0.1} and (table.loc[table["n_modes"] > 0, "lr"]
                                                                             == 0.01).all()
    plain_runs = sorted(p.name for p in (tmp_path / "sweep" / "cells" / "w6-plain").iterdir() if p.is_dir())
    assert plain_runs == ["s0-lr0.03", "s0-lr0.1", "s1-lr0.03", "s1-lr0.1"]  # both rates, chosen on validation
    summaries = sorted((tmp_path / "sweep" / "cells").glob("*/summary.json"))
    assert len(summaries) == 6
    before = {p: p.stat().st_mtime_ns for p in summaries}
    again = run(config, tmp_path / "sweep", backend="serial", progress=False)
    assert {p: p.stat().st_mtime_ns for p in summaries} == before  # nothing redone
    pd.testing.assert_frame_equal(again, table)


def test_cell_killed_mid_way_resumes_from_its_checkpoints(tmp_path):
    config = _config(tmp_path, widths=(6,), modes=(3,), patience=5)
    cell = next(c for c in cells(_config(tmp_path, widths=(6,), modes=(3,), patience=5, max_epochs=1))
                if c["name"] == "w6-p3")
    cell_dir = tmp_path / "sweep" / "cells" / "w6-p3"
    run_cell(cell, cell_dir)  # as if killed after epoch 1: checkpoints, but no summary.json for the grid
    first = load_checkpoint(cell_dir / "s0" / "checkpoint.pt")["history"]
    assert len(first) == 1 and not (cell_dir / "summary.json").exists()
    run(config, tmp_path / "sweep", backend="serial", progress=False)
    history = load_checkpoint(cell_dir / "s0" / "checkpoint.pt")["history"]
    assert len(history) == 2 and history[0] == first[0]  # continued, not restarted
    assert (cell_dir / "summary.json").is_file() and not list(cell_dir.rglob(".*.tmp"))


def test_validation_comes_from_training_digits():
    data = load_dataset("mnist5k", None, download=False).subset(n_train=500, n_test=100)
    fit, final = split_validation(data, 100)
    assert fit.n_train == 400 and fit.n_test == 100 and final is data
    rows = {tuple(r) for r in data.x_train.numpy().round(6)}
    assert all(tuple(r) in rows for r in fit.x_test.numpy().round(6))  # validation rows are training rows
    assert not torch.equal(fit.x_test, data.x_test[:100])
    with pytest.raises(ValueError, match="n_validation"):
        split_validation(data, 500)


def test_budgets_and_bad_options():
    paper = WidthLawConfig.from_budget("paper")
    assert paper.widths == (25, 50, 100, 200, 400, 800) and len(paper.modes) == 13 and paper.max_epochs >= 100
    assert len(cells(paper)) == 6 * 14
    with pytest.raises(ValueError, match="unknown budget"):
        WidthLawConfig.from_budget("huge")
    with pytest.raises(ValueError, match="unknown width-law options"):
        WidthLawConfig.from_budget("quick", epochs=3)
    with pytest.raises(ValueError, match="distinct positive"):
        WidthLawConfig(modes=(2, 2))


def test_script_writes_the_tables(tmp_path):
    out = tmp_path / "out"
    argv = ["--budget", "quick", "--widths", "6", "10", "14", "--modes", "1", "3", "--seeds", "0", "1",
            "--max-epochs", "1", "--patience", "1", "--n-validation", "200", "--n-test", "200", "--dataset",
            "mnist5k", "--data-root", str(tmp_path / "no-mnist"), "--backend", "serial", "--n-boot", "50",
            "--out", str(out), "--no-progress"]
    assert load_script("width_law").main(argv) == 0
    for name in ("runs", "pmin", "fits", "curves", "verdict"):
        assert (out / f"{name}.csv").is_file(), name
    pmin = pd.read_csv(out / "pmin.csv")
    assert set(pmin["width"]) == {6, 10, 14} and set(pmin["threshold"]) == {0.01, 0.02}
    assert load_script("width_law").main(["--out", str(out), "--analyze-only", "--n-boot", "50"]) == 0


def test_figure_family_reads_the_sweep_and_draws(tmp_path):
    from ensemble_nets.plotting.width_law import draw_figures
    from ensemble_nets.protocols.width_law import MAIN_RUN, figure_tables, jobs, missing_runs

    runs = tmp_path / "runs"
    assert MAIN_RUN in missing_runs(runs)
    with pytest.raises(FileNotFoundError, match="width_law.py --budget paper"):
        figure_tables(runs)
    config = _config(tmp_path)
    (job,) = jobs(runs, config)
    assert [cell["name"] for cell in job.cells] == [cell["name"] for cell in cells(config)]
    table = run(config, runs / MAIN_RUN, backend="serial", progress=False)
    assert missing_runs(runs) == {}
    tables = figure_tables(runs, n_boot=20)
    pd.testing.assert_frame_equal(tables["runs"].sort_values(["width", "n_modes", "seed"]).reset_index(drop=True),
                                  table.sort_values(["width", "n_modes", "seed"]).reset_index(drop=True))
    assert set(tables["laws"]) == {"plain", "best_mdl"}
    written = draw_figures(tables, tmp_path / "figures")
    assert {p.name for p in written} == {"width_law.png", "width_law.pdf"}
    assert all(p.stat().st_size > 1000 for p in written)
