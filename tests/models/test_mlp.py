# SPDX-License-Identifier: MIT
import pytest
import torch
from torch import nn

from ensemble_nets.models import MLP, EnsembleMLP, build_model


def test_ensemble_mlp_structure_and_logits():
    model = EnsembleMLP((20, 8, 6, 3))
    assert [type(m).__name__ for m in model] == ["SpikeSlabLinear", "ReLU", "SpikeSlabLinear", "ReLU",
                                                 "SpikeSlabLinear"]
    assert model(torch.randn(5, 20)).shape == (5, 3)
    assert len(model.linear_layers) == 3


def test_sample_network_computes_that_member():
    torch.manual_seed(1)
    model = EnsembleMLP((12, 7, 4), bias=True)
    with torch.no_grad():
        for layer in model.linear_layers:
            layer.pi.uniform_(0, 1)
            layer.xi.uniform_(0, 0.3)
            layer.bias.normal_()
    net = model.sample_network(torch.Generator().manual_seed(5))
    assert all(type(m) in (nn.Linear, nn.ReLU) for m in net)
    weights = [layer.sample_weight(torch.Generator().manual_seed(5)) for layer in model.linear_layers[:1]]
    x = torch.randn(3, 12)
    first = x @ weights[0].t() / 12 ** 0.5 + model.linear_layers[0].bias
    assert torch.allclose(net[0](x), first, atol=1e-6)


def test_sample_network_follows_q():
    model = EnsembleMLP((300, 300, 2))
    layer = model.linear_layers[0]
    with torch.no_grad():
        layer.pi.fill_(0.4)
        layer.m.fill_(1.5)
        layer.xi.fill_(0.09)
    w = model.sample_network(torch.Generator().manual_seed(0))[0].weight * 300 ** 0.5
    present = w != 0
    assert abs(present.float().mean().item() - 0.6) < 0.01
    assert abs(w[present].mean().item() - 1.5) < 0.01
    assert abs(w[present].var().item() - 0.09) < 0.005


def test_mean_network_equals_eval_mean_mode():
    model = EnsembleMLP((10, 6, 3)).eval()
    with torch.no_grad():
        for layer in model.linear_layers:
            layer.pi.uniform_(0, 1)
    model.eval_mode = "mean"
    x = torch.randn(4, 10)
    assert torch.allclose(model.mean_network()(x), model(x), atol=1e-6)


def test_plain_mlp_matches_its_plain_network():
    model = MLP((10, 6, 3))
    x = torch.randn(4, 10)
    assert torch.allclose(model.plain_network()(x), model(x), atol=1e-6)


@pytest.mark.parametrize("cls", [EnsembleMLP, MLP])
def test_build_model_round_trip(cls):
    model = cls((9, 5, 2), activation="tanh")
    rebuilt = build_model(model.model_args)
    rebuilt.load_state_dict(model.state_dict())
    assert type(rebuilt) is cls and rebuilt.model_args == model.model_args


def test_bad_sizes_and_kinds():
    with pytest.raises(ValueError, match="sizes must list"):
        EnsembleMLP((784,))
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP((4, 2), activation="gelu2")
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model({"kind": "transformer"})


def test_copies_leave_the_global_rng_alone():
    model = EnsembleMLP((12, 7, 4))
    state = torch.get_rng_state()
    model.sample_network(torch.Generator().manual_seed(0))
    model.mean_network()
    assert torch.equal(torch.get_rng_state(), state)


def test_model_args_are_json_and_keep_layer_choices():
    import json

    model = EnsembleMLP((6, 3), dtype=torch.float64, gbp="autograd")
    model.eval_mode = "mean"
    args = json.loads(json.dumps(model.model_args))
    assert args["gbp"] == "autograd" and args["eval_mode"] == "mean" and "dtype" not in args
