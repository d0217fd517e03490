# SPDX-License-Identifier: MIT
"""Mode layers and the MDL network: counts, sharing, the effective weight, rebuilding, training."""
import copy
import math

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.layers import ModeLinear, mode_init_std
from ensemble_nets.models import build_model
from ensemble_nets.training.optim import parameter_groups

SIZES = (784, 100, 100, 10)


def test_parameter_count_formula():
    assert en.ModeMLP.parameter_count(SIZES, 30) == 29_910 == 30 * (784 + 100 + 100 + 10) + 3 * 30
    assert en.ModeMLP(SIZES, 30).n_parameters == 29_910
    unshared = 30 * ((784 + 100 + 1) + (100 + 100 + 1) + (100 + 10 + 1))
    assert en.ModeMLP.parameter_count(SIZES, 30, shared=False) == unshared
    assert en.ModeMLP(SIZES, 30, shared=False).n_parameters == unshared


def test_shared_modes_are_one_tensor_with_gradients_from_both_sides():
    model = en.ModeMLP((6, 5, 4, 3), 2)
    first, second, third = model.linear_layers
    assert first.modes_out is model.modes1 and second.modes_in is model.modes1
    assert sum(p is model.modes1 for p in model.parameters()) == 1  # counted and optimized once
    assert len([k for k in model.state_dict() if "modes" in k]) == 4
    x = torch.randn(7, 6)
    model(x).pow(2).sum().backward()
    # the same loss through the effective weights as leaves: G_l = dL/dW^l
    w = [layer.weight.detach().requires_grad_() for layer in (first, second, third)]
    h = torch.relu(x @ w[0].T)
    h = torch.relu(h @ w[1].T)
    (h @ w[2].T).pow(2).sum().backward()
    g1, g2 = w[0].grad, w[1].grad
    with torch.no_grad():
        # W1 = xi1 S1 xi0^T -> G1 xi0 S1;  W2 = xi2 S2 xi1^T -> G2^T xi2 S2
        from_first = g1 @ model.modes0 * first.strengths
        from_second = g2.T @ model.modes2 * second.strengths
    torch.testing.assert_close(model.modes1.grad, from_first + from_second)
    assert from_first.abs().sum() > 0 and from_second.abs().sum() > 0


def test_effective_weight_is_the_product_and_forward_uses_it():
    layer = ModeLinear(7, 5, 3)
    expected = layer.modes_out @ torch.diag(layer.strengths) @ layer.modes_in.T
    torch.testing.assert_close(layer.weight, expected)
    x = torch.randn(4, 7)
    torch.testing.assert_close(layer(x), x @ expected.T)
    scaled = ModeLinear(7, 5, 3, scale_input=True)
    torch.testing.assert_close(scaled(x), x @ scaled.weight.T / math.sqrt(7))
    assert layer.bias is None and (layer.in_features, layer.out_features) == (7, 5)


def test_reference_initialization_scale():
    torch.manual_seed(1)
    model = en.ModeMLP(SIZES, 70)
    for l, n in enumerate(SIZES):
        std = getattr(model, f"modes{l}").std().item()
        assert abs(std / mode_init_std(n) - 1) < 0.1
    assert mode_init_std(100) == pytest.approx((100 * math.log(100)) ** (-1 / 6))
    # strengths use N = n_in (documented choice)
    assert abs(model.linear_layers[0].strengths.std().item() / mode_init_std(784) - 1) < 0.3


def test_plain_network_deepcopy_and_rebuild_agree():
    for shared in (True, False):
        model = en.ModeMLP((12, 8, 3), 4, shared=shared, scale_input=not shared)
        x = torch.randn(5, 12)
        torch.testing.assert_close(model.plain_network()(x), model(x))
        clone = copy.deepcopy(model)
        if shared:
            assert clone.linear_layers[0].modes_out is clone.modes1 and clone.modes1 is not model.modes1
        rebuilt = build_model(model.model_args)
        rebuilt.load_state_dict(model.state_dict())
        torch.testing.assert_close(rebuilt(x), model(x))


def test_decay_groups_hold_every_parameter_once():
    for shared in (True, False):
        model = en.ModeMLP((6, 5, 3), 2, shared=shared)
        groups = parameter_groups(model, weight_decay=1e-4)
        ids = [id(p) for g in groups for p in g["params"]]
        assert len(ids) == len(set(ids)) == len(list(model.parameters()))
        assert [g["name"] for g in groups] == ["decayed"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_modes"):
        en.ModeMLP((4, 3), 0)
    with pytest.raises(ValueError, match="own_modes"):
        ModeLinear(3, 2, 1).bind_modes(torch.zeros(3, 1), torch.zeros(2, 1))
    with pytest.raises(RuntimeError, match="bind_modes"):
        ModeLinear(3, 2, 1, own_modes=False)(torch.zeros(1, 3))


def test_trains_with_the_shared_trainer(tiny_mnist):
    config = en.ExperimentConfig.from_preset("mdl-reference", n_modes=10, train={"epochs": 2, "device": "cpu"})
    torch.manual_seed(0)
    model = config.build_model()
    assert model.kind == "mdl" and model.n_modes == 10
    result = en.train(model, tiny_mnist, config.train, progress=False)
    assert result.summary["model"] == "mdl"
    assert result.summary["n_parameters"] == en.ModeMLP.parameter_count(SIZES, 10)
    assert result.history[-1]["test_acc_mean_field"] > 0.5  # chance is 0.1
    assert result.history[-1]["test_acc_sampled_std"] == 0.0
