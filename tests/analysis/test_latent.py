# SPDX-License-Identifier: MIT
"""Latent-space dimension and class-subspace overlap on planted data."""
import pytest
import torch
from torch import nn

import ensemble_nets as en
from ensemble_nets.analysis.latent import class_subspace_overlap, latent_table, participation_ratio


def test_participation_ratio_of_planted_low_rank_data():
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(50, 3, generator=g))
    h = torch.randn(4000, 3, generator=g) @ basis.T  # 3 equal directions in 50 dimensions
    assert participation_ratio(h) == pytest.approx(3.0, rel=0.05)
    scales = torch.tensor([1.0, 1.0, 0.0])  # 2 equal directions
    assert participation_ratio((torch.randn(4000, 3, generator=g) * scales) @ basis.T) == pytest.approx(2, rel=0.05)
    assert participation_ratio(torch.ones(10, 4)) == 0.0


def test_class_subspace_overlap_orthogonal_versus_shared():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2).repeat_interleave(300)
    orth = torch.zeros(600, 4)
    orth[:300, :2] = torch.randn(300, 2, generator=g)
    orth[300:, 2:] = torch.randn(300, 2, generator=g)
    assert class_subspace_overlap(orth, y, n_components=2) < 0.05
    same = torch.zeros(600, 4)
    same[:, :2] = torch.randn(600, 2, generator=g)
    assert class_subspace_overlap(same, y, n_components=2) > 0.95


def test_latent_table_per_layer():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 12, generator=g), torch.randint(0, 3, (300,), generator=g)
    for model in (en.ModeMLP((12, 8, 6, 3), 2), en.MLP((12, 8, 6, 3)), en.EnsembleMLP((12, 8, 6, 3))):
        table = latent_table(model, (x, y), n_components=2)
        assert table.width.tolist() == [12, 8, 6, 3] and table.kind.tolist() == ["input", "hidden", "hidden", "output"]
        assert ((table.pr_dimension >= 0) & (table.pr_dimension <= table.width + 1e-9)).all()
    # an MDL hidden layer with P = 2 modes: its preactivation has rank <= 2
    model = en.ModeMLP((12, 8, 3), 2, activation="identity")
    assert latent_table(model, (x, y), n_components=2).pr_dimension.iloc[1] <= 2.0 + 1e-6
    assert isinstance(model.plain_network()[0], nn.Linear)
