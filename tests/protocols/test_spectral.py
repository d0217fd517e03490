# SPDX-License-Identifier: MIT
"""protocols/spectral.py: the learning-rate rule, the config's checks, the budgets."""
import math

import pytest

from ensemble_nets.protocols.spectral import BUDGETS, SpectralConfig, make_model, stage_lr, standard_lr


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


def test_quick_budget_is_smaller_than_paper():
    quick, paper = BUDGETS["quick"], BUDGETS["paper"]
    assert max(quick.coord_widths) < max(paper.coord_widths) and max(quick.sweep_widths) < max(paper.sweep_widths)
    assert paper == SpectralConfig()
