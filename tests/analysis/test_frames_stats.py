# SPDX-License-Identifier: MIT
"""analysis/frames.py and analysis/stats.py: parameter and spring-block frames, Spearman."""
import math

import numpy as np
import pytest
import torch

import ensemble_nets as en
from ensemble_nets.analysis.frames import parameter_frame, spring_block_frames
from ensemble_nets.analysis.stats import spearman


def test_parameter_frame_has_one_row_per_connection_with_design_moments():
    model = en.EnsembleMLP((6, 5, 3))
    with torch.no_grad():
        layer = model.layers[0] if hasattr(model, "layers") else next(iter(m for _, m in en.spike_slab_layers(model)))
        layer.pi.zero_()
        layer.xi.zero_()
        layer.pi[0, 0] = 1.0
    frame = parameter_frame(model)
    assert len(frame) == 6 * 5 + 5 * 3 and list(frame["layer"].unique()) == ["layer1", "layer2"]
    mean = (1 - frame["pi"]) * frame["m"]
    variance = (1 - frame["pi"]) * (frame["xi"] + frame["pi"] * frame["m"] ** 2)
    assert np.allclose(frame["mean"], mean, atol=1e-6) and np.allclose(frame["variance"], variance, atol=1e-6)
    first = frame[frame["layer"] == "layer1"]
    assert first["category"].iloc[0] == "unimportant" and (first["category"].iloc[1:] == "important").all()


def test_spring_block_frames_shapes():
    curves, diagram = spring_block_frames((0.3, 0.6), (0.0, 1.0), n_blocks=4, n_steps=100)
    assert set(curves["noise"]) == {0.0, 1.0} and curves["block"].max() == 4
    assert len(diagram) == 4 and diagram["curvature"].notna().all()
    assert curves.groupby("noise")["load"].last().tolist() == pytest.approx([-1.0, -1.0])


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2], [2, 1])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])
