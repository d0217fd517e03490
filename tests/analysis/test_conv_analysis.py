# SPDX-License-Identifier: MIT
"""The analysis on convolutional ensembles: categories, filters, entropy and perturbation of kernel entries."""
import pytest
import torch
from torch import nn

import ensemble_nets as en
from ensemble_nets.analysis import categorize, entropy_table, perturbation_curves
from ensemble_nets.analysis.categories import IMPORTANT, INACTIVE, UNIMPORTANT, VARIABLE, filter_table, input_activity
from ensemble_nets.models import EnsembleCNN


def _set(layer, pi, m, xi):
    with torch.no_grad():
        layer.pi.copy_(pi)
        layer.m.copy_(m)
        layer.xi.copy_(xi)


def _planted_cnn():
    """Four classes, image ``(4, 2, 2)``: class i lights channel i everywhere.

    One 2x2 convolution, 4 -> 4 channels, output 1x1 = the logits (a plain nn.Sequential: no
    sample_network method). Filter o holds 4 important entries ``(o, o, :, :)`` with m = 1 (logit o
    = 4 / sqrt(16) = 1 on class o); the 48 other entries are variable with m = 0 (pi = 1/2, xi = 0):
    every sampled value is 0, so deleting them cannot change a logit. Deleting all 16 important
    entries makes every logit 0: argmax 0, right on class 0 only, error 3/4.
    """
    conv = en.SpikeSlabConv2d(4, 4, 2, dtype=torch.float64)
    diagonal = torch.zeros(4, 4, 2, 2, dtype=torch.bool)
    for o in range(4):
        diagonal[o, o] = True
    _set(conv, torch.where(diagonal, 0.0, 0.5), diagonal.double(), torch.zeros(4, 4, 2, 2))
    model = nn.Sequential(conv, nn.Flatten())
    x = torch.zeros(4, 4, 2, 2, dtype=torch.float64)
    for i in range(4):
        x[i, i] = 1.0
    return model, (x, torch.arange(4)), diagonal


def test_planted_kernel_entries_raise_the_error_as_computed():
    model, data, _ = _planted_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    curves = perturbation_curves(model, data, 1, fractions=[0.0, 0.5, 1.0], n_networks=3,
                                 perturbations=["delete_important", "delete_variable", "delete_variable_matched"])
    error = curves.groupby(["perturbation", "fraction"])["error"]
    assert error.max()[("delete_important", 0.0)] == 0.0
    assert (error.min()[("delete_important", 1.0)], error.max()[("delete_important", 1.0)]) == (0.75, 0.75)
    for control in ("delete_variable", "delete_variable_matched"):
        assert error.max()[(control, 0.5)] == 0.0 and error.max()[(control, 1.0)] == 0.0
    n = curves.groupby(["perturbation", "fraction"])["n_perturbed"].first()
    assert n[("delete_important", 0.5)] == 8 and n[("delete_variable", 1.0)] == 16  # as many as important
    half = curves[(curves["perturbation"] == "delete_important") & (curves["fraction"] == 0.5)]
    assert half["error"].between(0.0, 0.75).all() and half["abs_weight_mean"].eq(1.0).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_categories_and_filters_of_a_planted_cnn():
    model, _, diagonal = _planted_cnn()
    conv = model[0]
    with torch.no_grad():
        conv.pi[3] = 1.0  # filter 3 wholly unimportant
    categories = categorize(model)
    labels = categories.labels["layer1"]
    assert labels.shape == (4, 4, 2, 2)
    assert (labels[:3][diagonal[:3]] == IMPORTANT).all() and (labels[3] == UNIMPORTANT).all()
    assert (labels[:3][~diagonal[:3]] == VARIABLE).all()
    counts = categories.table.set_index("category")["count"]
    assert (counts["important"], counts["unimportant"], counts["variable"]) == (12, 16, 36)
    filters = filter_table(categories).iloc[0]
    assert (filters["n_filters"], filters["n_entries"], filters["wholly_unimportant"]) == (4, 16, 1)
    assert (filters["any_important"], filters["wholly_important"], filters["wholly_variable"]) == (3, 0, 0)
    table = entropy_table(model).set_index("category")
    assert table.loc["all", "count"] == 64
    assert table.loc["important", "entropy_mean"] == 0.0 and table.loc["unimportant", "entropy_mean"] == 0.0
    assert table.loc["variable", "spike_mean"] == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_inactive_channels_of_a_grouped_convolution_and_of_a_dead_filter():
    torch.manual_seed(0)
    first = en.SpikeSlabConv2d(4, 4, 3, padding=1, groups=2)
    second = en.SpikeSlabConv2d(4, 2, 3)
    with torch.no_grad():
        first.pi[2] = 1.0  # output channel 2 never fires: second's entries reading channel 2 are inactive
    model = nn.Sequential(first, nn.ReLU(), second)
    x = torch.rand(20, 4, 6, 6)
    x[:, 1] = 0.0  # input channel 1 is dark on every example
    x[:5, 3, 0, 0] = 0.0  # channel 3 is dark at some pixels only: still active
    activity = input_activity(model, x)
    assert activity["layer1"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert activity["layer2"][2] == 0.0 and (activity["layer2"][[0, 1, 3]] > 0).all()
    labels = categorize(model, data=x).labels
    # groups = 2: output channels 0, 1 read input channels 0, 1 (local index 1 = channel 1)
    assert (labels["layer1"][:2, 1] == INACTIVE).all() and not (labels["layer1"][:2, 0] == INACTIVE).any()
    assert not (labels["layer1"][2:] == INACTIVE).any()
    assert (labels["layer2"][:, 2] == INACTIVE).all() and not (labels["layer2"][:, [0, 1, 3]] == INACTIVE).any()
    with pytest.raises(ValueError, match="shape=\"image\""):
        categorize(model, data=x.flatten(1))


def test_a_converted_cnn_is_sampled_by_the_function_and_crn_holds():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    model = en.to_ensemble(plain, xi_init=0.05)
    assert not hasattr(model, "sample_network")
    x, y = torch.randn(64, 1, 12, 12), torch.randint(0, 4, (64,))
    curves = perturbation_curves(model, (x, y), "layer1", fractions=[0.0], n_networks=2, seed=3)
    at_zero = curves.groupby("network")["error"]
    assert (at_zero.min() == at_zero.max()).all()  # f = 0: every perturbation gives the same networks
    for k in range(2):  # and those are en.sample_network draws with the documented seeds
        net = en.sample_network(model, torch.Generator().manual_seed(3 * 1_000_003 + k))
        expected = (net(x).argmax(-1) != y).double().mean().item()
        assert at_zero.min()[k] == expected


def test_ensemble_cnn_layers_are_analysed_in_order():
    torch.manual_seed(0)
    model = EnsembleCNN(input_shape=(1, 12, 12), channels=(2, 3), hidden=8, n_classes=4, kernel_size=3)
    table = categorize(model).table
    assert list(table["module"].unique()) == ["0", "3", "7", "9"]
    assert table.groupby("layer")["count"].sum().tolist() == [2 * 9, 3 * 2 * 9, 8 * 3, 4 * 8]  # 12 -> 10 -> 5 -> 3 -> 1: fc1 reads 3
    x, y = torch.rand(16, 1, 12, 12), torch.randint(0, 4, (16,))
    curves = perturbation_curves(model, (x, y), 2, fractions=[1.0], n_networks=1, train_data=x,
                                 perturbations=["delete_random"])
    assert curves["n_perturbed"].iloc[0] <= 54
