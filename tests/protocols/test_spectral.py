# SPDX-License-Identifier: MIT
"""protocols/spectral.py: the learning-rate rule, the config's checks, the budgets."""
import math

import pytest

from ensemble_nets.protocols.spectral import (
    BUDGETS,
    MAIN_RUN,
    TRANSFER_RUN,
    SpectralConfig,
    jobs,
    make_model,
    missing_runs,
    stage_lr,
    standard_lr,
    transfer_cells,
    transfer_dir,
    transfer_lrs,
)


def test_standard_rate_matches_the_narrowest_hidden_layer():
    assert standard_lr(1.0, [256, 64, 1024]) == pytest.approx(1 / 8)
    assert stage_lr("spectral", 2.0, [64]) == 2.0 and stage_lr("spectral_paper", 2.0, [64]) == 2.0
    assert stage_lr("standard", 2.0, [16, 64]) == pytest.approx(2.0 / math.sqrt(16))


def test_config_refuses_unknown_stages_and_negative_decay():
    with pytest.raises(ValueError, match="stages"):
        SpectralConfig(stages=("coord", "sweeep"))
    with pytest.raises(ValueError, match="weight_decay"):
        SpectralConfig(weight_decay=-1.0)
    with pytest.raises(ValueError, match="model kind"):
        make_model("cnn", 8)
    with pytest.raises(ValueError, match="transfer_final_window"):
        SpectralConfig(transfer_steps=10, transfer_final_window=20)


def test_quick_budget_is_smaller_than_paper():
    quick, paper = BUDGETS["quick"], BUDGETS["paper"]
    assert max(quick.coord_widths) < max(paper.coord_widths) and max(quick.sweep_widths) < max(paper.sweep_widths)
    assert paper == SpectralConfig()


def test_paper_transfer_grid_covers_six_widths_200_steps_and_both_parametrizations():
    paper = BUDGETS["paper"]
    cells = transfer_cells(paper)
    assert paper.transfer_widths == (64, 128, 256, 512, 1024, 2048) and paper.transfer_steps >= 200
    assert len(cells) == len({c["name"] for c in cells}) == paper.transfer_seeds * 6 * 2 * len(paper.transfer_lrs)
    assert [c["seed"] for c in cells] == sorted(c["seed"] for c in cells)  # seed by seed: a cut run keeps whole seeds
    spectral, standard = transfer_lrs(paper, "spectral"), transfer_lrs(paper, "standard")
    for grid in (spectral, standard):  # log-spaced, factor 2
        assert len(grid) >= 7 and all(b / a == pytest.approx(2.0) for a, b in zip(grid, grid[1:]))
    assert transfer_lrs(SpectralConfig(transfer_standard_lrs=None), "standard") == tuple(
        lr / 8 for lr in SpectralConfig().transfer_lrs)  # default mapping: lr / sqrt(min width 64)
    assert transfer_dir("runs/spectral").as_posix() == "runs/spectral-transfer"


def test_jobs_run_the_main_stages_and_the_transfer_grid(tmp_path):
    assert set(missing_runs(tmp_path)) == {MAIN_RUN, TRANSFER_RUN}
    main, grid = jobs(tmp_path, BUDGETS["quick"])
    assert main.cells[0]["config"]["stages"] == ("coord", "sweep")
    assert grid.out_dir == tmp_path / TRANSFER_RUN and len(grid.cells) == len(transfer_cells(BUDGETS["quick"]))
