# SPDX-License-Identifier: MIT
"""protocols/phase.py: the grid config and its cells."""
import pytest

from ensemble_nets.protocols.phase import BUDGETS, PhaseGridConfig, make_cells


def test_default_grid_is_coarse_and_full_is_the_reference():
    cells = make_cells(PhaseGridConfig())
    assert len(cells) == 9 and {c["steps"] for c in cells} == {150} and cells[0]["name"] == "a0-label_noise0-s0"
    full = make_cells(PhaseGridConfig(full=True))
    assert len(full) == 6 * 6 * 3 and {c["steps"] for c in full} == {1000}
    assert PhaseGridConfig(model="spike_slab").folder == "phase/spike_slab-xi_max"
    assert [c["batch_size"] for c in make_cells(PhaseGridConfig(knob="batch_size", alphas=(0.0,)))] == [2560, 256, 32]


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="spike_slab"):
        PhaseGridConfig(knob="xi_max")
    with pytest.raises(ValueError, match="alphas"):
        PhaseGridConfig(alphas=(0.0, 1.5))


def test_budgets_hold_grids():
    assert [c.folder for c in BUDGETS["quick"]] == ["phase/linear-label_noise"]
    assert len(BUDGETS["paper"]) == 3
