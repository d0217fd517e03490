# SPDX-License-Identifier: MIT
import math

import pytest
import torch

from ensemble_nets.analysis import connection_entropy, entropy_table
from ensemble_nets.models import EnsembleMLP


def _planted():
    model = EnsembleMLP((3, 2, 2))
    first, second = model.linear_layers
    with torch.no_grad():
        first.pi.copy_(torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.2, 0.0]]))
        first.xi.copy_(torch.tensor([[0.0, 0.4, 0.1], [0.3, 0.0, 0.0]]))
        first.m.fill_(1.0)
        second.pi.zero_(); second.xi.zero_()
    return model


def _formula(pi, xi):
    spike = 0.0 if pi in (0.0, 1.0) else -(pi * math.log(pi) + (1 - pi) * math.log(1 - pi))
    slab = 0.0 if xi == 0 else (1 - pi) * 0.5 * math.log(2 * math.pi * math.e * xi)
    return spike + slab


def test_connection_entropy_matches_formula():
    h = connection_entropy(_planted())
    pis = [[0.0, 1.0, 0.5], [0.0, 0.2, 0.0]]
    xis = [[0.0, 0.4, 0.1], [0.3, 0.0, 0.0]]
    expected = [[_formula(p, x) for p, x in zip(rp, rx)] for rp, rx in zip(pis, xis)]
    assert h["layer1"].double().flatten().tolist() == pytest.approx(sum(expected, []), abs=1e-6)
    assert torch.equal(h["layer2"], torch.zeros(2, 2))  # all important: deterministic weights


def test_entropy_table_averages_per_category():
    table = entropy_table(_planted()).set_index(["layer", "category"])
    assert table.loc[("layer1", "all"), "count"] == 6
    assert table.loc[("layer1", "important"), "count"] == 2 and table.loc[("layer1", "important"), "entropy_mean"] == 0
    assert table.loc[("layer1", "unimportant"), "entropy_mean"] == 0
    variable = [_formula(0.5, 0.1), _formula(0.0, 0.3), _formula(0.2, 0.0)]
    assert table.loc[("layer1", "variable"), "entropy_mean"] == pytest.approx(sum(variable) / 3, abs=1e-6)
    row = table.loc[("layer1", "all")]
    assert row["spike_mean"] + row["slab_mean"] == pytest.approx(row["entropy_mean"])
    empty = table.loc[("layer2", "variable")]
    assert empty["count"] == 0 and math.isnan(empty["entropy_mean"])


def test_entropy_table_with_data_sets_inactive_connections_apart():
    model = _planted()
    x = torch.rand(20, 3) + 0.1
    x[:, 2] = 0.0  # input 2 never fires: connections (0, 2) and (1, 2) of layer 1 are inactive
    table = entropy_table(model, data=x).set_index(["layer", "category"])
    assert table.loc[("layer1", "inactive"), "count"] == 2
    assert table.loc[("layer1", "inactive"), "entropy_mean"] == pytest.approx(
        (_formula(0.5, 0.1) + _formula(0.0, 0.0)) / 2, abs=1e-6)
    # the variable class loses (0, 2); keeps (1, 0) and (1, 1)
    assert table.loc[("layer1", "variable"), "count"] == 2
    assert table.loc[("layer1", "variable"), "entropy_mean"] == pytest.approx(
        (_formula(0.0, 0.3) + _formula(0.2, 0.0)) / 2, abs=1e-6)
    assert table.loc[("layer1", "active"), "count"] == 4
    assert table.loc[("layer1", "important"), "count"] == 1
