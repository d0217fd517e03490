# SPDX-License-Identifier: MIT
import math

import pytest
import torch

from ensemble_nets.analysis import CATEGORIES, categorize, connection_categories
from ensemble_nets.analysis.categories import LABELS, input_activity
from ensemble_nets.analysis.tolerance import Tolerance, choose_tolerance, parameter_histograms
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


def test_separate_bounds():
    pi = torch.tensor([0.01, 0.01, 0.99, 0.97, 0.5])
    xi = torch.tensor([0.001, 0.05, 0.3, 0.3, 0.001])
    labels = [CATEGORIES[i] for i in connection_categories(pi, xi, tol=Tolerance(pi_low=0.02, pi_high=0.02, xi=0.02))]
    assert labels == ["important", "variable", "unimportant", "variable", "variable"]
    from dataclasses import asdict

    as_json = asdict(Tolerance(pi_low=0.02, pi_high=0.02, xi=0.02))
    expected = connection_categories(pi, xi, tol=Tolerance(**as_json))
    assert torch.equal(connection_categories(pi, xi, tol=as_json), expected)
    with pytest.raises(ValueError, match="pi_low"):
        Tolerance(pi_low=0.6)
    with pytest.raises(ValueError, match="keys"):
        connection_categories(pi, xi, tol={"pi": 0.1})
    with pytest.raises(ValueError, match="tol"):
        connection_categories(pi, xi, tol=-1.0)


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
    assert "fraction_active" not in result.table and result.active is None
    with pytest.raises(RuntimeError, match="data"):
        result.fractions(among="active")


def _planted_elbo_layer(seed=0):
    """pi and xi held near the boundary (log-uniform in [1e-6, 1e-5]) for planted categories, interior elsewhere."""
    g = torch.Generator().manual_seed(seed)
    model = EnsembleMLP((40, 50))
    layer = model.linear_layers[0]
    near = lambda n: 10 ** (-6 + torch.rand(n, generator=g))  # noqa: E731
    kind = torch.randint(0, 3, (50, 40), generator=g)  # planted: 0 important, 1 unimportant, 2 variable
    with torch.no_grad():
        layer.pi.copy_(0.1 + 0.8 * torch.rand(50, 40, generator=g))
        layer.xi.copy_(0.1 + torch.rand(50, 40, generator=g))
        n0, n1 = int((kind == 0).sum()), int((kind == 1).sum())
        layer.pi[kind == 0], layer.xi[kind == 0] = near(n0), near(n0)
        layer.pi[kind == 1] = 1 - near(n1).float()
    return model, kind


def test_tolerance_from_the_data_recovers_planted_categories():
    model, kind = _planted_elbo_layer()
    labels = categorize(model, tol=1e-6).labels["layer1"]
    assert (labels == 2).float().mean() > 0.95  # at the ELBO margin nearly everything reads "variable"
    tol = choose_tolerance(model, prior_variance=1.0)
    assert 1e-5 <= tol.pi_low <= 0.02 and 1e-5 <= tol.xi <= 0.02
    assert torch.equal(categorize(model, tol=tol).labels["layer1"], kind)


def test_parameter_histograms_count_the_boundary_apart():
    model, kind = _planted_elbo_layer()
    with torch.no_grad():
        model.linear_layers[0].pi[0, :5] = 0.0  # five exactly on the boundary
    hist = parameter_histograms(model, bins=20)
    pi = hist[(hist.quantity == "pi")]
    assert pi["count"].sum() == 2000 and pi[pi.bin_low == -math.inf]["count"].item() == 5
    assert pi[(pi.bin_high > -6) & (pi.bin_low < -5)]["count"].sum() >= (kind == 0).sum().item() - 5
    assert set(hist.quantity) == {"pi", "1-pi", "xi"} and (hist.groupby("quantity")["count"].sum() == 2000).all()


def test_tolerance_without_a_gap_is_the_cap():
    model = EnsembleMLP((30, 20))
    with torch.no_grad():
        layer = model.linear_layers[0]
        layer.pi.fill_(0.4)
        layer.xi.fill_(0.3)
    assert choose_tolerance(model, prior_variance=2.0, max_pi=0.02) == Tolerance(0.0, 0.0, 0.0)
    with torch.no_grad():
        layer.pi.copy_(torch.linspace(0.001, 0.01, 600).reshape(20, 30))  # one cluster, all below the cap
    assert choose_tolerance(model, prior_variance=2.0).pi_low <= 0.01
    with pytest.raises(ValueError, match="prior_variance"):
        choose_tolerance(model, prior_variance=0.0)


def _dead_pixel_model():
    """784-free toy: input 1 is always 0; hidden unit 2 has negative mean weights, so it is dead in the mean net."""
    model = EnsembleMLP((4, 3, 2))
    first, second = model.linear_layers
    with torch.no_grad():
        first.pi.zero_(); first.xi.zero_(); first.m.fill_(1.0)
        first.m[2] = -1.0  # hidden unit 2: ReLU(negative) = 0 on non-negative inputs
        first.pi[0, 0] = 1.0  # one unimportant connection on an active input
        first.xi[1, 1] = 0.2  # a variable connection on the dead input 1
        second.pi.fill_(0.5); second.xi.fill_(0.1)
    x = torch.rand(50, 4) + 0.1
    x[:, 1] = 0.0
    return model, x


def test_inactive_connections_are_labelled_and_excluded():
    model, x = _dead_pixel_model()
    activity = input_activity(model, x)
    assert torch.equal(activity["layer1"], torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    assert torch.equal(activity["layer2"], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    result = categorize(model, data=x)
    inactive = LABELS.index("inactive")
    assert (result.labels["layer1"][:, 1] == inactive).all()
    assert (result.labels["layer1"][:, [0, 2, 3]] != inactive).all()
    assert (result.labels["layer2"][:, 2] == inactive).all()
    table = result.table.set_index(["layer", "category"])
    # layer 1: 12 connections, 3 inactive; of the 9 active: 1 unimportant, 8 important
    assert table.loc[("layer1", "inactive"), "count"] == 3
    assert table.loc[("layer1", "important"), "fraction"] == pytest.approx(8 / 12)
    assert table.loc[("layer1", "important"), "fraction_active"] == pytest.approx(8 / 9)
    assert table.loc[("layer1", "unimportant"), "fraction_active"] == pytest.approx(1 / 9)
    assert math.isnan(table.loc[("layer1", "inactive"), "fraction_active"])
    assert result.fractions(among="active")["layer2"] == pytest.approx(
        {"important": 0.0, "unimportant": 0.0, "variable": 1.0})
    breakdown = result.inactive_breakdown().set_index(["layer", "category"])
    assert breakdown.loc[("layer1", "variable"), "count"] == 1  # the xi = 0.2 connection on the dead input
    assert breakdown.loc[("layer1", "important"), "count"] == 2
    assert breakdown.loc[("layer2", "variable"), "fraction_of_category"] == pytest.approx(1 / 3)
    assert torch.equal(categorize(model).labels["layer1"], result.base_labels["layer1"])


def test_data_forms_agree_and_bad_width_fails():
    from dataclasses import dataclass

    model, x = _dead_pixel_model()
    reference = categorize(model, data=x).labels

    @dataclass
    class Split:
        x_train: torch.Tensor

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(50, dtype=torch.long)),
                                         batch_size=7)
    for form in (Split(x), (x, torch.zeros(50)), loader):
        labels = categorize(model, data=form).labels
        assert all(torch.equal(labels[k], reference[k]) for k in reference)
    with pytest.raises(ValueError, match="first layer takes 4"):
        categorize(model, data=torch.rand(10, 5))


def test_rejects_models_without_spike_slab_layers():
    with pytest.raises(ValueError, match="no spike-and-slab layers"):
        categorize(torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="tol"):
        connection_categories(torch.zeros(2), torch.zeros(2), tol=0.7)
