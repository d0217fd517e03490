# SPDX-License-Identifier: MIT
import torch

import ensemble_nets as en
from ensemble_nets.training.optim import project_


def _out_of_bounds(layer):
    with torch.no_grad():
        layer.pi.fill_(0.5)
        layer.xi.fill_(0.1)
        layer.pi[0, 0] = 1.5
        layer.pi[0, 1] = -0.25
        layer.xi[1, 2] = -3.0


def test_project_projects_a_bare_layer():
    layer = en.SpikeSlabLinear(4, 3)
    _out_of_bounds(layer)
    assert project_(layer).item() == 3
    assert layer.pi[0, 0].item() == 1.0 and layer.pi[0, 1].item() == 0.0 and layer.xi[1, 2].item() == 0.0
    assert project_(layer).item() == 0  # already inside: nothing moves


def test_project_counts_every_layer_of_a_model_once():
    model = en.EnsembleMLP((4, 3, 2))
    for layer in model.linear_layers:
        _out_of_bounds(layer)
    assert project_(model).item() == 6
    assert all(layer.pi.min() >= 0 and layer.pi.max() <= 1 and layer.xi.min() >= 0 for layer in model.linear_layers)


def test_project_of_a_model_without_constraints_moves_nothing():
    assert project_(torch.nn.Linear(3, 2)).item() == 0
