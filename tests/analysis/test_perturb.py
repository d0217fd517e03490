# SPDX-License-Identifier: MIT

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.analysis import PERTURBATIONS, categorize, perturbation_curves, summarize_perturbations
from ensemble_nets.analysis.perturb import _perturb_, quantile_match


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_original_model_is_untouched(trained_ensemble, test_split):
    before = _snapshot(trained_ensemble)
    mode = trained_ensemble.eval_mode
    state = torch.get_rng_state()
    perturbation_curves(trained_ensemble, test_split, 1, fractions=[0.5, 1.0], n_networks=2)
    after = trained_ensemble.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert trained_ensemble.eval_mode == mode and not trained_ensemble.training
    assert torch.equal(torch.get_rng_state(), state)  # seeded generators only: the global stream is left alone


def test_counts_and_common_random_numbers(trained_ensemble, test_split):
    curves = perturbation_curves(trained_ensemble, test_split, "layer2", fractions=[0.0, 0.5, 1.0], n_networks=3,
                                 seed=4)
    counts = categorize(trained_ensemble).table.set_index(["layer", "category"])["count"]
    full = curves[curves["fraction"] == 1.0].groupby("perturbation")["n_perturbed"].first()
    n_important, n_unimportant = counts[("layer2", "important")], counts[("layer2", "unimportant")]
    n_variable = counts[("layer2", "variable")]
    assert full["delete_important"] == n_important
    assert full["randomize_unimportant"] == n_unimportant
    for kind in ("delete_variable", "delete_variable_matched", "delete_largest_variable"):
        assert full[kind] == min(n_important, n_variable)
    assert full["randomize_variable"] == min(n_unimportant, n_variable)
    assert full["randomize_important"] == min(n_unimportant, n_important)
    assert full["delete_random"] == n_important
    # f = 0 perturbs nothing, and network k is the same draw under every perturbation
    start = curves[curves["fraction"] == 0.0].pivot(index="network", columns="perturbation", values="error")
    assert (start.nunique(axis=1) == 1).all()
    summary = summarize_perturbations(curves)
    assert len(summary) == len(PERTURBATIONS) * 3 and (summary["n_networks"] == 3).all()
    # the magnitude controls do what they say: matched |W| close to the important ones', largest above it
    half = curves[curves["fraction"] == 0.5].groupby("perturbation")["abs_weight_mean"].mean()
    assert half["delete_largest_variable"] >= half["delete_variable_matched"] >= half["delete_variable"]


def test_deleting_important_connections_hurts_more_than_random_ones(trained_ensemble, test_split):
    curves = perturbation_curves(trained_ensemble, test_split, 1, fractions=[1.0], n_networks=3,
                                 perturbations=["delete_important", "delete_random", "delete_variable"])
    error = curves.groupby("perturbation")["error"].mean()
    assert error["delete_important"] > error["delete_random"] + 0.05
    assert error["delete_important"] > error["delete_variable"] + 0.05


def _planted_network():
    """4 inputs -> 5 hidden -> 3 classes, every error computable by hand.

    Layer 1: hidden i = x_i for i < 4 (important diagonal, m = 2, times 1/sqrt(4)); the other connections
    into units 0..3 unimportant; unit 4 takes four variable connections with |W| = 0.5, 1, 2, 3 and feeds
    nothing. Layer 2: units 0, 1 vote for class 1, units 2, 3 for class 2 (important); the rest unimportant.
    Test example e_j has label 1 (j < 2) or 2: when hidden unit j is deleted every logit is 0 and argmax
    says class 0, a sure error. So deleting n diagonal connections gives error n / 4 exactly.
    """
    model = en.EnsembleMLP((4, 5, 3), dtype=torch.float64)
    first, second = model.linear_layers
    with torch.no_grad():
        first.pi.fill_(1.0); first.xi.zero_(); first.m.zero_()
        for i in range(4):
            first.pi[i, i], first.m[i, i] = 0.0, 2.0
        first.pi[4], first.xi[4] = 0.5, 0.1
        first.m[4] = torch.tensor([1.0, 2.0, 4.0, 6.0])  # |W| = (1 - pi) |m| = 0.5, 1, 2, 3
        second.pi.fill_(1.0); second.xi.zero_(); second.m.zero_()
        for unit, label in ((0, 1), (1, 1), (2, 2), (3, 2)):
            second.pi[label, unit], second.m[label, unit] = 0.0, 4.0
    x = torch.eye(4, dtype=torch.float64).repeat(25, 1)  # (100, 4): e_0, e_1, e_2, e_3, e_0, ...
    y = torch.tensor([1, 1, 2, 2]).repeat(25)
    return model, (x, y)


def test_planted_important_connections_raise_the_error_by_the_computed_amount():
    model, data = _planted_network()
    curves = perturbation_curves(model, data, 1, fractions=[0.0, 0.25, 0.5, 1.0], n_networks=3, seed=2)
    error = curves.groupby(["perturbation", "fraction"])["error"]
    for f in (0.0, 0.25, 0.5, 1.0):
        assert (error.min()[("delete_important", f)], error.max()[("delete_important", f)]) == (f, f)
        for control in ("delete_variable", "delete_variable_matched", "delete_largest_variable",
                        "randomize_variable"):
            assert error.max()[(control, f)] == 0.0  # unit 4 feeds nothing: these controls cannot hurt
    rows = curves[curves["fraction"] == 0.5].groupby("perturbation")["abs_weight_mean"].mean()
    assert rows["delete_important"] == pytest.approx(2.0)
    assert rows["delete_variable_matched"] == pytest.approx(2.5)  # |W| 2 and 3: the two at or above 2
    assert rows["delete_largest_variable"] == pytest.approx(2.5)
    # randomize_important: the four diagonal connections take N(0, 1) values; a negative one kills its unit.
    # The values are the first ones of the per-network value stream (seed * 1_000_003 + 7919 k + 2).
    full = curves[(curves["perturbation"] == "randomize_important") & (curves["fraction"] == 1.0)]
    for k, observed in zip(full["network"], full["error"]):
        stream = torch.Generator().manual_seed(2 * 1_000_003 + 7919 * k + 2)
        values = torch.randn(12, generator=stream, dtype=torch.float64)[:4]  # 12 unimportant connections
        assert observed == (values < 0).double().mean().item()


def test_quantile_match_on_a_planted_pool():
    pool = torch.tensor([3.0, 0.5, 2.0, 1.0, 2.0, 5.0])
    picked = quantile_match(torch.tensor([2.0, 2.0, 0.1]), pool)
    # 0.1 takes the smallest (0.5, index 1); the two 2.0s take both 2.0s (indices 2, 4), in pool order
    assert picked.tolist() == [2, 4, 1]
    top_three = pool[quantile_match(torch.tensor([9.0, 9.0, 9.0]), pool)]
    assert sorted(top_three.tolist()) == [2.0, 3.0, 5.0]
    assert sorted(quantile_match(torch.full((6,), 1.0), pool).tolist()) == list(range(6))
    g = torch.Generator().manual_seed(0)
    targets, wide = torch.rand(200, generator=g) + 1, torch.rand(5000, generator=g) * 3
    matched = wide[quantile_match(targets, wide)]
    assert len(set(quantile_match(targets, wide).tolist())) == 200
    assert (matched.sort().values - targets.sort().values).abs().max() < 0.01  # the pool has room: exact quantiles
    with pytest.raises(ValueError, match="pool"):
        quantile_match(torch.ones(7), pool)


def test_train_data_removes_inactive_connections_from_the_pools():
    model, data = _planted_network()
    x_train = torch.eye(4, dtype=torch.float64)
    x_train[:, 3] = 0.0  # input 3 never fires in training: (3, 3) and (4, 3) are inactive
    curves = perturbation_curves(model, data, 1, fractions=[1.0], n_networks=1, train_data=x_train,
                                 perturbations=["delete_important", "delete_variable", "delete_random"])
    n = curves.set_index("perturbation")["n_perturbed"]
    assert n["delete_important"] == 3 and n["delete_variable"] == 3 and n["delete_random"] == 3
    assert curves.set_index("perturbation").loc["delete_important", "error"] == 0.75


def test_perturb_sets_the_law():
    layer = en.SpikeSlabLinear(4, 3)
    chosen = torch.tensor([0, 5, 11])
    _perturb_(layer, "randomize_unimportant", chosen, torch.tensor([0.5, -1.0, 2.0, 7.0]))
    assert (layer.pi.view(-1)[chosen] == 0).all() and (layer.xi.view(-1)[chosen] == 0).all()
    assert layer.m.view(-1)[chosen].tolist() == [0.5, -1.0, 2.0]
    _perturb_(layer, "delete_random", chosen)
    assert (layer.pi.view(-1)[chosen] == 1).all()
    with pytest.raises(ValueError, match="known"):
        _perturb_(layer, "shuffle", chosen)


def test_bad_arguments_fail_clearly(trained_ensemble, test_split):
    with pytest.raises(ValueError, match="layer must be one of"):
        perturbation_curves(trained_ensemble, test_split, 5)
    with pytest.raises(ValueError, match="fractions"):
        perturbation_curves(trained_ensemble, test_split, 1, fractions=[1.5])
    with pytest.raises(ValueError, match="delete_variable_matched"):  # the message lists the known names
        perturbation_curves(trained_ensemble, test_split, 1, perturbations=["shuffle"])
    with pytest.raises(ValueError, match="n_networks"):
        perturbation_curves(trained_ensemble, test_split, 1, n_networks=0)
    with pytest.raises(TypeError):
        perturbation_curves(trained_ensemble, test_split, 1, [0.5])  # options are keyword-only
