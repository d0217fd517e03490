# SPDX-License-Identifier: MIT
"""Categories versus modes on planted structure."""
import numpy as np
import pytest
import torch

import ensemble_nets as en
from ensemble_nets.analysis.categories import LABELS, categorize
from ensemble_nets.analysis.compare import compare_categories_modes, rank_auc


def test_rank_auc_against_pairs():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])
    positive = torch.tensor([0, 0, 1, 1, 1], dtype=torch.bool)
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[positive] for n in scores[~positive]]
    assert rank_auc(scores, positive) == pytest.approx(float(sum(pairs)) / len(pairs))
    assert np.isnan(rank_auc(scores, torch.zeros(5, dtype=torch.bool)))


def test_spearman_and_ranks_match_scipy():
    from scipy.stats import rankdata, spearmanr

    from ensemble_nets.analysis.compare import _average_ranks, _spearman

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40).astype(float), rng.normal(size=40)
    np.testing.assert_allclose(_average_ranks(a), rankdata(a))
    assert _spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def _planted_ensemble(seed=0):
    """Layer 1: important connections = the support of one rank-one mode; the rest variable or absent."""
    g = torch.Generator().manual_seed(seed)
    model = en.EnsembleMLP((30, 20, 4))
    layer = model.linear_layers[0]
    rows, cols = torch.zeros(20, dtype=torch.bool), torch.zeros(30, dtype=torch.bool)
    rows[:6], cols[:10] = True, True
    block = rows[:, None] & cols[None, :]
    u, v = torch.rand(20, generator=g) + 1, torch.rand(30, generator=g) + 1
    with torch.no_grad():
        layer.m.copy_(0.3 * torch.randn(20, 30, generator=g))  # variable: small mean, pi = 0.5
        layer.pi.fill_(0.5)
        layer.xi.fill_(0.01)
        layer.m[block] = (5 * torch.outer(u, v))[block]
        layer.pi[block], layer.xi[block] = 0.0, 0.0
        absent = torch.rand(20, 30, generator=g) < 0.2
        absent &= ~block
        layer.pi[absent] = 1.0
    return model, block, absent


def test_important_connections_in_one_mode_give_auc_near_one():
    model, block, absent = _planted_ensemble()
    result = compare_categories_modes(model, ks=[1, 2, 20], top_fraction=0.3)
    auc = result.auc.set_index(["layer", "k", "positive", "negative"]).auc
    assert auc[("layer1", 1, "important", "variable")] > 0.95
    assert auc[("layer1", 1, "important", "rest")] > 0.95
    mass = result.mass.set_index(["layer", "k", "category"])
    assert mass.loc[("layer1", 1, "important"), "mass_share"] > 0.9  # the leading mode carries the block
    assert mass.loc[("layer1", 1, "important"), "reconstruction_fraction"] > 0.8
    assert np.isnan(mass.loc[("layer1", 1, "unimportant"), "mass_share"])  # mean weight 0: no mass
    assert mass.loc[("layer1", 20, "variable"), "mass_share"] == pytest.approx(1.0)  # full rank: all mass
    assert mass.loc[("layer1", 1, "important"), "connection_fraction"] == pytest.approx(block.double().mean().item())
    neurons = result.neurons.set_index(["layer", "side"])
    assert neurons.loc[("layer1", "out"), "jaccard"] == 1.0  # top 6 = 0.3 * 20 rows: exactly the block rows
    assert result.accuracy.empty and result.pixels.empty


def test_accuracy_table_and_mdl_pixels():
    model, _, _ = _planted_ensemble()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 30, generator=g)
    y = model.mean_network()(x).argmax(-1)
    result = compare_categories_modes(model, (x, y), mdl_model=en.ModeMLP((30, 8, 4), 3), ks=[1, 20])
    acc = result.accuracy
    assert set(acc.kept) == {"top_k_modes", "important", "important+variable", "all"}
    full = acc[(acc.kept == "all")].accuracy
    assert (full == 1.0).all()  # labels are the mean network's own outputs
    top = acc[(acc.kept == "top_k_modes") & (acc.k == 20) & (acc.layer == "layer1")].accuracy.iloc[0]
    assert top == pytest.approx(1.0)  # full rank is the layer itself
    assert len(result.pixels) == 1
    with pytest.raises(ValueError, match="input width"):
        compare_categories_modes(model, mdl_model=en.ModeMLP((31, 8, 4), 3))


def test_pixel_overlap_with_a_planted_mdl_network_is_exactly_one_third():
    """Ensemble: pixels 0..5 carry every important connection. MDL: only pixels 0, 1, 2, 10, 11, 12 load on
    its modes. Top 20% of 30 pixels = 6 on each side; overlap {0, 1, 2}, union 9 pixels: Jaccard 3 / 9."""
    model = en.EnsembleMLP((30, 20, 4))
    layer = model.linear_layers[0]
    with torch.no_grad():
        layer.pi.fill_(0.5); layer.xi.fill_(0.1)
        layer.pi[:, :6], layer.xi[:, :6] = 0.0, 0.0
    mdl = en.ModeMLP((30, 8, 4), 3)
    with torch.no_grad():
        mdl.modes0.zero_()
        for rank, pixel in enumerate((0, 1, 2, 10, 11, 12)):
            mdl.modes0[pixel] = 1.0 + rank  # distinct loadings, every one > 0
    result = compare_categories_modes(model, mdl_model=mdl, ks=[1], top_fraction=0.2)
    row = result.pixels.iloc[0]
    assert row["jaccard"] == pytest.approx(1 / 3) and row["chance"] == pytest.approx(0.2 / 1.8)


def test_inactive_connections_leave_the_auc_and_get_their_own_mass_rows():
    model, block, absent = _planted_ensemble()
    x_train = torch.rand(50, 30)
    x_train[:, 5:15] = 0.0  # inputs 5..14 never fire: 200 connections of layer 1 are inactive, 60 of the block
    plain = compare_categories_modes(model, ks=[1], top_fraction=0.3)
    result = compare_categories_modes(model, ks=[1], top_fraction=0.3, train_data=x_train)
    mass = result.mass.set_index(["layer", "k", "category"])
    assert mass.loc[("layer1", 1, "inactive"), "connection_fraction"] == pytest.approx(200 / 600)
    shares = result.mass[result.mass.layer == "layer1"].reconstruction_fraction.sum()
    assert shares == pytest.approx(1.0)  # the four labels split W_k's mass
    # the block's connections on inputs 5..9 are inactive: they leave the important class AND the "rest"
    auc = result.auc.set_index(["layer", "k", "positive", "negative"]).auc
    lab = categorize(model, data=x_train).labels["layer1"]
    layer = model.linear_layers[0]
    u, s, v = torch.linalg.svd(layer.weight.detach().double())
    score = (s[0] * torch.outer(u[:, 0], v[0])).abs()
    keep = lab != LABELS.index("inactive")
    assert auc[("layer1", 1, "important", "rest")] == pytest.approx(rank_auc(score[keep], (lab == 0)[keep]))
    assert rank_auc(score, lab == 0) < auc[("layer1", 1, "important", "rest")]  # counted as "rest" they would lower it
    assert "inactive" not in set(plain.mass.category)
