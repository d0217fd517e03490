# SPDX-License-Identifier: MIT
import pytest
import torch

from ensemble_nets.analysis import CATEGORIES, categorize, connection_categories
from ensemble_nets.models import EnsembleMLP


def test_every_boundary_case():
    pi = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.5, 0.0, 1e-9, 1 - 1e-9], dtype=torch.float64)
    xi = torch.tensor([0.0, 0.1, 0.0, 0.3, 0.0, 1e-9, 0.0, 0.0], dtype=torch.float64)
    labels = [CATEGORIES[i] for i in connection_categories(pi, xi)]
    assert labels == ["important", "variable", "unimportant", "unimportant", "variable", "variable",
                      "variable", "variable"]
    relaxed = [CATEGORIES[i] for i in connection_categories(pi, xi, tol=1e-6)]
    assert relaxed == ["important", "variable", "unimportant", "unimportant", "variable", "important",
                       "important", "unimportant"]


def test_table_counts_and_fractions():
    model = EnsembleMLP((4, 3, 2))
    first, second = model.linear_layers
    with torch.no_grad():
        first.pi.zero_(); first.xi.zero_()
        first.pi[0, :2] = 1.0
        second.pi.fill_(0.5)
    result = categorize(model)
    fractions = result.fractions()
    assert fractions["layer1"] == pytest.approx({"important": 10 / 12, "unimportant": 2 / 12, "variable": 0.0})
    assert fractions["layer2"]["variable"] == 1.0
    assert result.table.groupby("layer")["count"].sum().tolist() == [12, 6]


def test_rejects_models_without_spike_slab_layers():
    with pytest.raises(ValueError, match="no spike-and-slab layers"):
        categorize(torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="tol"):
        connection_categories(torch.zeros(2), torch.zeros(2), tol=0.7)
